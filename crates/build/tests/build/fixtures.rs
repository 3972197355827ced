//! A throwaway git repository with its own HOME, so the tester's git configuration never leaks in.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sandpit_build::Repository;

pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub struct TestRepo {
    _temp: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("repo");
        let home = temp.path().join("home");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&home).unwrap();
        let repo = TestRepo {
            _temp: temp,
            root,
            home,
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
            ("HOME".to_owned(), self.home.to_string_lossy().into_owned()),
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
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// A new empty bare repository beside the work tree (a remote to push to), by path.
    pub fn bare_remote(&self, name: &str) -> PathBuf {
        let path = self.root.parent().unwrap().join(name);
        let output = Command::new("git")
            .env_clear()
            .envs(self.env())
            .args(["init", "-q", "--bare"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(output.status.success(), "git init --bare: {output:?}");
        path
    }

    /// A directory beside the work tree that does not exist yet.
    pub fn scratch_path(&self, name: &str) -> PathBuf {
        self.root.parent().unwrap().join(name)
    }

    pub fn open(&self, dir: &Path) -> Repository {
        Repository::discover_with_env(dir, self.env()).unwrap()
    }
}
