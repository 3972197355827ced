//! What every test needs: the terraform binary (a test FAILS when it is missing, saying what to
//! install), and a module in a temporary directory with its own empty CLI configuration.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sandpit_terraform::{Run, Terraform};
use tempfile::TempDir;

/// The test process's PATH (the library reads no environment; its caller passes PATH).
pub fn path_var() -> Option<OsString> {
    #[allow(clippy::disallowed_methods)]
    // test code: the library itself never reads the environment
    let path = std::env::var_os("PATH");
    path
}

/// `terraform` found on PATH, once per test binary.
pub fn terraform() -> &'static Terraform {
    static TERRAFORM: OnceLock<Terraform> = OnceLock::new();
    TERRAFORM.get_or_init(|| {
        Terraform::find("terraform", path_var().as_deref()).unwrap_or_else(|e| {
            panic!("these tests run the real terraform binary (1.11 or later): {e}")
        })
    })
}

/// A root module in a directory of its own, beside its CLI configuration, plugin cache and log.
pub struct Module {
    /// Keeps the directory until the test ends.
    _temp: TempDir,
    pub root: PathBuf,
    pub dir: PathBuf,
    pub cli_config: PathBuf,
    pub plugin_cache: PathBuf,
    pub log: PathBuf,
}

impl Module {
    /// A module of `files` (name → text) in `<temp>/infra`.
    pub fn new(files: &[(&str, &str)]) -> Module {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().canonicalize().unwrap();
        let dir = root.join("infra");
        fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            let path = dir.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        // An empty CLI configuration: no ~/.terraformrc of whoever runs the tests applies.
        let cli_config = root.join("terraform.tfrc");
        fs::write(&cli_config, "").unwrap();
        Module {
            _temp: temp,
            dir,
            cli_config,
            plugin_cache: root.join("plugin-cache"),
            log: root.join("logs").join("infra.log"),
            root,
        }
    }

    /// A run with local state, the test's CLI configuration and a short lock timeout.
    pub fn run(&self) -> Run {
        let mut run = Run::new(&self.dir, &self.plugin_cache, &self.log);
        run.cli_config_file = Some(self.cli_config.clone());
        run.extra_env = vec![("CHECKPOINT_DISABLE".to_owned(), "1".to_owned())];
        run.lock_timeout = Duration::from_secs(2);
        run
    }

    /// The same run with these variables.
    pub fn run_with(&self, vars: &[(&str, &str)]) -> Run {
        let mut run = self.run();
        run.vars = vars
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        run
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Whether `path` exists.
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// A module whose `terraform_data` takes `var.sha` and `var.biome`, with one plain and one
/// sensitive output. `terraform_data.marker` is replaced when the biome changes.
pub const DEPLOYMENT_MODULE: &str = r#"
variable "sha" {
  type = string
}

variable "biome" {
  type    = string
  default = ""
}

resource "terraform_data" "deployment" {
  input = "${var.sha}/${var.biome}"
}

resource "terraform_data" "marker" {
  triggers_replace = [var.biome]
}

output "deployed" {
  value = terraform_data.deployment.output
}

output "token" {
  value     = "token-for-${var.biome}"
  sensitive = true
}
"#;

pub const SHA_A: &str = "0123456789abcdef0123456789abcdef01234567";
pub const SHA_B: &str = "89abcdef0123456789abcdef0123456789abcdef";
