//! A throwaway git repository with its own HOME and `SANDPIT_HOME`, and the [`Context`] of a use
//! case reading it as a checkout or as one of its commits.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use sandpit_build::git::Repository;
use sandpit_domain::CommitId;
use sandpit_ops::principal::Principal;
use sandpit_ops::{Context, Source};

pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub struct TestRepo {
    temp: tempfile::TempDir,
    pub root: PathBuf,
    git_home: PathBuf,
}

impl TestRepo {
    /// An empty repository on branch `main`, its user `builder@example.com`.
    pub fn new() -> TestRepo {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("repo");
        let git_home = temp.path().join("git-home");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&git_home).unwrap();
        let repo = TestRepo {
            temp,
            root,
            git_home,
        };
        repo.git(&["-c", "init.defaultBranch=main", "init", "-q"]);
        repo.git(&["config", "user.name", "Test Builder"]);
        repo.git(&["config", "user.email", "builder@example.com"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    /// The environment git and builds get in these tests.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PATH".to_owned(), PATH.to_owned()),
            (
                "HOME".to_owned(),
                self.git_home.to_string_lossy().into_owned(),
            ),
            ("GIT_CONFIG_NOSYSTEM".to_owned(), "1".to_owned()),
        ]
    }

    pub fn git(&self, args: &[&str]) -> String {
        let output = Command::new("git")
            .env_clear()
            .envs(self.env())
            .arg("-C")
            .arg(&self.root)
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

    pub fn write(&self, path: &str, content: &str) {
        let full = self.root.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
    }

    /// Stages everything and commits; returns the new HEAD.
    pub fn commit(&self, message: &str) -> CommitId {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        CommitId::parse(self.git(&["rev-parse", "HEAD"]).trim()).unwrap()
    }

    /// The repository, as a server would hold it.
    pub fn repository(&self) -> Repository {
        Repository::discover_with_env(&self.root, self.env()).unwrap()
    }

    /// A `SANDPIT_HOME` of its own, named `name`, beside the repository.
    pub fn home(&self, name: &str) -> PathBuf {
        let home = self.temp.path().join(name);
        fs::create_dir_all(&home).unwrap();
        home
    }

    /// The use cases' context reading the checkout (local mode).
    pub fn checkout(&self, home: &str, principal: Principal) -> Context {
        self.context(
            home,
            Source::Checkout {
                dir: self.root.clone(),
            },
            principal,
        )
    }

    /// The use cases' context reading only `commit` of the repository (server mode).
    pub fn at_commit(&self, home: &str, commit: &CommitId, principal: Principal) -> Context {
        self.context(
            home,
            Source::Commit {
                repo: self.repository(),
                commit: commit.clone(),
            },
            principal,
        )
    }

    fn context(&self, home: &str, source: Source, principal: Principal) -> Context {
        let base = Context::for_home(&self.home(home));
        Context {
            source,
            base_env: self.env(),
            supervisor: sandpit_runtime::SupervisorConfig {
                base_env: self.env(),
                log_max_bytes: 1024,
                ..base.supervisor.clone()
            },
            principal,
            ..base
        }
    }
}
