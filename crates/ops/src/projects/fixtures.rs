//! A world for use cases that read projects from git: a `$SANDPIT_HOME`, a work tree with a HOME
//! of its own, and a bare repository it pushes to, as a server's project remote.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{kind_of, ErrorKind};
use crate::principal::{Principal, Role};
use crate::projects::list;
use crate::Context;

pub(crate) const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
pub(crate) const VALID: &str = "[project]\nname = \"shop\"\n";

/// A `$SANDPIT_HOME`, a work tree with its own HOME, and a bare remote it pushes to.
pub(crate) struct World {
    pub(crate) _temp: tempfile::TempDir,
    pub(crate) home: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) remote: PathBuf,
    pub(crate) context: Context,
}

impl World {
    pub(crate) fn new() -> World {
        let temp = tempfile::tempdir().unwrap();
        let home = temp.path().join("sandpit-home");
        let git_home = temp.path().join("git-home");
        let work = temp.path().join("work");
        let remote = temp.path().join("remote.git");
        for dir in [&home, &git_home, &work] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let base_env = vec![
            ("PATH".to_owned(), PATH.to_owned()),
            ("HOME".to_owned(), git_home.to_string_lossy().into_owned()),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ];
        let base = Context::for_home(&home);
        let context = Context {
            source: crate::Source::Checkout { dir: work.clone() },
            base_env: base_env.clone(),
            supervisor: sandpit_runtime::SupervisorConfig {
                base_env,
                log_max_bytes: 1024,
                ..base.supervisor.clone()
            },
            principal: admin(),
            ..base
        };
        let world = World {
            _temp: temp,
            home,
            work,
            remote,
            context,
        };
        world.git(None, &["-c", "init.defaultBranch=main", "init", "-q"]);
        world.git(None, &["config", "user.name", "Tester"]);
        world.git(None, &["config", "user.email", "tester@example.com"]);
        world.git(None, &["config", "commit.gpgsign", "false"]);
        world.git(
            Some(world.remote.parent().unwrap()),
            &["init", "-q", "--bare", "remote.git"],
        );
        world
    }

    pub(crate) fn git(&self, dir: Option<&Path>, args: &[&str]) -> String {
        let output = Command::new("git")
            .env_clear()
            .envs(self.context.base_env.iter().map(|(k, v)| (k, v)))
            .arg("-C")
            .arg(dir.unwrap_or(&self.work))
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Commits `sandpit.toml` with `content` (none: without one) on the current branch.
    pub(crate) fn commit(&self, content: Option<&str>, message: &str) -> String {
        let file = self.work.join("sandpit.toml");
        match content {
            Some(content) => std::fs::write(&file, content).unwrap(),
            None => {
                let _ = std::fs::remove_file(&file);
            }
        }
        std::fs::write(self.work.join("readme.txt"), message).unwrap();
        self.git(None, &["add", "-A"]);
        self.git(None, &["commit", "-q", "-m", message]);
        self.git(None, &["rev-parse", "HEAD"]).trim().to_owned()
    }

    pub(crate) fn push(&self, branch: &str) {
        self.git(None, &["push", "-q", "-f", self.url(), branch]);
    }

    pub(crate) fn url(&self) -> &str {
        self.remote.to_str().unwrap()
    }

    /// What is in `server/mirrors/` besides the lock.
    pub(crate) fn mirrors(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.home.join("server/mirrors")) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".registry.lock")
            .collect();
        names.sort();
        names
    }

    pub(crate) fn listed(&self) -> Vec<String> {
        list(&self.context, &admin())
            .unwrap()
            .projects
            .into_iter()
            .map(|p| p.name)
            .collect()
    }
}

pub(crate) fn admin() -> Principal {
    Principal::named("root@example.com", [Role::Admin])
}

pub(crate) fn viewer() -> Principal {
    Principal::named("viewer@example.com", [Role::Viewer])
}

/// The error's kind and message.
pub(crate) fn refusal<T: std::fmt::Debug>(result: anyhow::Result<T>) -> (ErrorKind, String) {
    let error = result.unwrap_err();
    (kind_of(&error), format!("{error:#}"))
}
