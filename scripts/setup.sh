#!/usr/bin/env bash
# Installs what sandpit's demo and tests need on a fresh Debian machine that has the Rust
# toolchain, git and python3. Safe to run again: it only installs what is missing.
set -euo pipefail

need_packages=()
command -v git >/dev/null 2>&1 || need_packages+=(git)
command -v python3 >/dev/null 2>&1 || need_packages+=(python3)
command -v sha256sum >/dev/null 2>&1 || need_packages+=(coreutils)
command -v zip >/dev/null 2>&1 || need_packages+=(zip)
command -v cc >/dev/null 2>&1 || need_packages+=(gcc)
# PostgreSQL's server binaries: sandpit runs an embedded instance per environment from them.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_packages+=(postgresql)
fi

# PostgreSQL's client: `sandpit psql` runs it (and its tests do).
command -v psql >/dev/null 2>&1 || need_packages+=(postgresql-client)

if [ ${#need_packages[@]} -gt 0 ]; then
  echo "setup: installing ${need_packages[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not on PATH; install the Rust toolchain (rustup) first" >&2
  exit 1
fi

# Python packages, in a virtual environment of the project's own (never the system's):
# ONNX Runtime's shared library (the model endpoint loads it), and what the tests compare with.
venv="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/python"
if [ ! -x "$venv/bin/python3" ]; then
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "setup: installing python3-venv"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi
if ! "$venv/bin/python3" -c "import onnxruntime, numpy, tritonclient.http" >/dev/null 2>&1; then
  echo "setup: installing onnxruntime, numpy and tritonclient[http] into $venv"
  "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check onnxruntime numpy "tritonclient[http]"
fi
# sandpit itself needs neither variable: it looks for this venv beside its executable
# (`<exe dir>/../python`, which is target/python for target/{debug,release}/sandpit), so it works
# from any shell after this script. The exports serve the tests (the models crate's own tests load
# ONNX Runtime without a sandpit executable) and a sandpit installed elsewhere, in this shell.
export SANDPIT_PYTHON="$venv/bin/python3"
ORT_DYLIB_PATH="$("$venv/bin/python3" -c 'import glob, os, onnxruntime; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[0])')"
export ORT_DYLIB_PATH

# Terraform: projects with `[terraform.<name>]` components run it, and so do the tests. It is not
# a Debian package and cannot be fetched by this script, so it is only checked for.
if ! command -v terraform >/dev/null 2>&1 && ! command -v tofu >/dev/null 2>&1; then
  echo "setup: terraform is not on PATH: projects with terraform components and sandpit's tests need it;" >&2
  echo "setup:   install Terraform (https://developer.hashicorp.com/terraform/install) or OpenTofu (https://opentofu.org/docs/intro/install/)" >&2
fi

# Garage (an S3-compatible server): the bucket store's tests and benchmark run a single-node one
# on loopback. Built from source with cargo when missing; that took 13.5 minutes (real) on a
# 2-core machine, once. The tests find it through SANDPIT_GARAGE (or this cache path).
garage_root="${XDG_CACHE_HOME:-$HOME/.cache}/sandpit-tools/garage"
if [ ! -x "$garage_root/bin/garage" ]; then
  echo "setup: building Garage 2.5.0 into $garage_root (about 15 minutes on 2 cores)"
  cargo install --quiet --locked --root "$garage_root" --version 2.5.0 garage
fi
export SANDPIT_GARAGE="$garage_root/bin/garage"
