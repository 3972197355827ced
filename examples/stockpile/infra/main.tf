# The biome's infrastructure. Only Terraform's built-in resources, so it runs
# anywhere with no provider to download; a real project puts its buckets,
# queues and DNS records here. sandpit passes `sha`, `env` and `biome`.

variable "sha" {
  type        = string
  description = "The 40-hex commit being deployed: every resource is traceable to it."
}

variable "env" {
  type = string
}

variable "biome" {
  type        = string
  description = "The biome's name, or \"\" for the environment's base."
}

variable "bucket_prefix" {
  type = string
}

locals {
  owner  = var.biome == "" ? var.env : "${var.env}-${var.biome}"
  bucket = "${var.bucket_prefix}-${local.owner}"
}

# Stands for the bucket: its input is what a real one would be named and tagged.
resource "terraform_data" "bucket" {
  input = {
    name = local.bucket
    sha  = var.sha
  }
}

output "bucket" {
  value = terraform_data.bucket.output.name
}

output "deployed_sha" {
  value = terraform_data.bucket.output.sha
}

output "access_key" {
  value     = "key-${sha1(local.bucket)}"
  sensitive = true
}
