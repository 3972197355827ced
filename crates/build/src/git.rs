//! The repository as sandpit sees it: resolving revisions, finding uncommitted changes,
//! snapshotting the working tree and checking out commits — all through `git` subprocesses that
//! never touch the user's index or work tree (temporary index files do the staging). A bare
//! repository (a server's mirror, [`crate::mirror`]) answers the same questions about commits;
//! it has no working tree to be dirty, snapshot or be on a branch.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sandpit_domain::CommitId;
use sha2::{Digest as _, Sha256};

/// Variables that would point git at another repository, index or object store than the one
/// discovered; a caller's shell (or a git hook running sandpit) may have them set.
const GIT_LOCATION_VARIABLES: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
];

/// The transports git may use from a bare repository (`GIT_ALLOW_PROTOCOL`).
pub(crate) const ALLOWED_PROTOCOLS: &str = "file:git:http:https:ssh";

/// What failed while talking to git.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run `git`: {source}; install git and make sure it is on PATH\nhint: run `sandpit doctor` to check every prerequisite")]
    GitMissing { source: io::Error },
    #[error("`{dir}` is not inside a git repository; run `git init` there (and commit) first")]
    NotARepository { dir: PathBuf },
    #[error("`{rev}` does not name a commit in `{repo}`{hint}")]
    UnknownRevision {
        rev: String,
        repo: PathBuf,
        hint: &'static str,
    },
    #[error("`git {args}` failed in `{repo}` ({status}): {stderr}")]
    CommandFailed {
        args: String,
        repo: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("`git {args}` printed something that is not {expected}: `{output}`")]
    UnexpectedOutput {
        args: String,
        expected: &'static str,
        output: String,
    },
    #[error("could not prepare `{path}` for git: {source}")]
    Scratch { path: PathBuf, source: io::Error },
    #[error("`{repo}` is a bare repository: it has no working tree to {what}; build a commit of it instead")]
    NoWorkingTree { repo: PathBuf, what: &'static str },
}

/// The result of [`Repository::snapshot_working_tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingTreeSnapshot {
    /// Tree id of HEAD with the project's uncommitted changes applied.
    pub tree: String,
    /// Hex sha256 of the binary diff between HEAD and that tree: names the dirty version.
    pub diff_hash: String,
}

/// How git subprocesses get their environment.
#[derive(Debug, Clone)]
enum GitEnvironment {
    /// The caller's environment without variables that relocate the repository.
    Inherited,
    /// Exactly these variables (e.g. PATH and HOME handed down from the CLI's settings).
    Exactly(Vec<(String, String)>),
}

/// Whether a repository has a working tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `root` is the top of a work tree; git finds the repository from there.
    WorkTree,
    /// `root` is the git directory itself (no working tree), as a server's mirror is.
    Bare,
}

/// A git work tree and the project's place in it, or a bare repository (see
/// [`Repository::open_bare`]).
#[derive(Debug, Clone)]
pub struct Repository {
    root: PathBuf,
    prefix: String,
    environment: GitEnvironment,
    layout: Layout,
}

impl Repository {
    /// Finds the repository containing `dir`. Git subprocesses inherit the caller's environment
    /// minus the variables that would point them elsewhere (`GIT_DIR`, `GIT_INDEX_FILE`, …).
    pub fn discover(dir: &Path) -> Result<Repository, GitError> {
        Self::discover_in(dir, GitEnvironment::Inherited)
    }

    /// Like [`Repository::discover`], but git sees only `environment` (plus `LC_ALL=C`): pass at
    /// least `PATH` and `HOME` (user configuration such as `safe.directory` lives there).
    pub fn discover_with_env(
        dir: &Path,
        environment: Vec<(String, String)>,
    ) -> Result<Repository, GitError> {
        Self::discover_in(dir, GitEnvironment::Exactly(environment))
    }

    fn discover_in(dir: &Path, environment: GitEnvironment) -> Result<Repository, GitError> {
        let probe = Repository {
            root: dir.to_owned(),
            prefix: String::new(),
            environment,
            layout: Layout::WorkTree,
        };
        let output = probe.run_raw(&["rev-parse", "--show-toplevel", "--show-prefix"], None)?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("not a git repository") {
                return Err(GitError::NotARepository {
                    dir: dir.to_owned(),
                });
            }
            return Err(probe.failure(&["rev-parse", "--show-toplevel"], &output));
        }
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut lines = stdout.lines();
        let root = lines.next().unwrap_or_default().to_owned();
        let prefix = lines
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        if root.is_empty() {
            // A bare repository has no work tree to build from.
            return Err(GitError::NotARepository {
                dir: dir.to_owned(),
            });
        }
        Ok(Repository {
            root: PathBuf::from(root),
            prefix,
            environment: probe.environment,
            layout: Layout::WorkTree,
        })
    }

    /// The bare repository whose git directory is `git_dir` (e.g. `mirrors/<name>.git`); git sees
    /// only `environment` (plus `LC_ALL=C`), as with [`Repository::discover_with_env`]. Its
    /// [`root`](Self::root) is the git directory and its prefix is empty: a project served from
    /// a mirror has its `sandpit.toml` at the top of the repository.
    pub fn open_bare(
        git_dir: &Path,
        environment: Vec<(String, String)>,
    ) -> Result<Repository, GitError> {
        let repository = Repository::bare_unchecked(git_dir, environment);
        // A server opens its mirrors on every request: git is asked once per directory, then a
        // look at its HEAD file tells that it is still there.
        let verified = || {
            let known = VERIFIED_BARE.lock().unwrap_or_else(|e| e.into_inner());
            known.contains(git_dir) && git_dir.join("HEAD").is_file()
        };
        if verified() {
            return Ok(repository);
        }
        let output = repository.run_raw(&["rev-parse", "--is-bare-repository"], None)?;
        let answer = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() || answer.trim() != "true" {
            return Err(GitError::NotARepository {
                dir: git_dir.to_owned(),
            });
        }
        VERIFIED_BARE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(git_dir.to_owned());
        Ok(repository)
    }

    /// A bare repository at `git_dir` that may not exist yet (for `git init --bare`).
    pub(crate) fn bare_unchecked(git_dir: &Path, environment: Vec<(String, String)>) -> Repository {
        Repository {
            root: git_dir.to_owned(),
            prefix: String::new(),
            environment: GitEnvironment::Exactly(environment),
            layout: Layout::Bare,
        }
    }

    /// Whether this is a bare repository (no working tree).
    pub fn is_bare(&self) -> bool {
        self.layout == Layout::Bare
    }

    /// The top of the work tree (the git directory of a bare repository).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the project (the directory discovery started from) sits inside the repository,
    /// `/`-separated, without trailing slash; empty when it is the repository root.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full commit id `rev` names.
    pub fn resolve(&self, rev: &str) -> Result<CommitId, GitError> {
        let spec = format!("{rev}^{{commit}}");
        let Some(id) = self.verify(&spec)? else {
            let hint = if rev == "HEAD" {
                " (has anything been committed yet?)"
            } else {
                ""
            };
            return Err(GitError::UnknownRevision {
                rev: rev.to_owned(),
                repo: self.root.clone(),
                hint,
            });
        };
        CommitId::parse(&id).map_err(|_| GitError::UnexpectedOutput {
            args: format!("rev-parse {spec}"),
            expected: "a commit id",
            output: id,
        })
    }

    /// Uncommitted changes under the project: modified, added, deleted, renamed and untracked
    /// (not ignored) files, as paths relative to the repository root.
    /// A bare repository has none.
    pub fn dirty_files(&self) -> Result<Vec<String>, GitError> {
        if self.is_bare() {
            return Ok(Vec::new());
        }
        let pathspec = self.pathspec();
        let stdout = self.run(
            &[
                "status",
                "--porcelain=v1",
                "-z",
                "--untracked-files=all",
                "--",
                &pathspec,
            ],
            None,
        )?;
        let mut files = Vec::new();
        let mut records = stdout.split('\0').filter(|record| !record.is_empty());
        while let Some(record) = records.next() {
            if record.len() < 4 {
                continue;
            }
            let (status, path) = record.split_at(3);
            files.push(path.to_owned());
            // Renames and copies are followed by the original path, which changed too.
            if status.starts_with('R') || status.starts_with('C') {
                if let Some(original) = records.next() {
                    files.push(original.to_owned());
                }
            }
        }
        files.sort();
        files.dedup();
        Ok(files)
    }

    /// A tree holding HEAD plus the project's uncommitted changes (untracked files included,
    /// ignored files not), built in a temporary index so the user's staging area is untouched.
    /// A bare repository has no working tree to snapshot: [`GitError::NoWorkingTree`].
    pub fn snapshot_working_tree(&self) -> Result<WorkingTreeSnapshot, GitError> {
        if self.is_bare() {
            return Err(GitError::NoWorkingTree {
                repo: self.root.clone(),
                what: "snapshot",
            });
        }
        let scratch = scratch_dir()?;
        let index = scratch.path().join("index");
        let has_head = self.resolve("HEAD").is_ok();
        if has_head {
            self.run(&["read-tree", "HEAD"], Some(&index))?;
        } else {
            self.run(&["read-tree", "--empty"], Some(&index))?;
        }
        let pathspec = self.pathspec();
        self.run(&["add", "-A", "--", &pathspec], Some(&index))?;
        let tree = self.run(&["write-tree"], Some(&index))?.trim().to_owned();
        let base = if has_head { "HEAD" } else { EMPTY_TREE };
        let diff = self.run_bytes(
            &["diff-tree", "-p", "--binary", "--full-index", base, &tree],
            None,
        )?;
        Ok(WorkingTreeSnapshot {
            tree,
            diff_hash: hex::encode(Sha256::digest(&diff)),
        })
    }

    /// The tree id of `path_in_repo` at `treeish` (`""` or `"."` for the whole tree); `None` when
    /// the path does not exist there.
    pub fn tree_id(&self, treeish: &str, path_in_repo: &str) -> Result<Option<String>, GitError> {
        self.check_treeish(treeish)?;
        self.verify(&object_spec(treeish, path_in_repo))
    }

    /// [`Self::tree_id`] of each of `paths_in_repo`, in order, asked of one `git cat-file
    /// --batch-check` (a process per path costs milliseconds each, and `up` asks for every
    /// component's trees).
    pub fn tree_ids(
        &self,
        treeish: &str,
        paths_in_repo: &[String],
    ) -> Result<Vec<Option<String>>, GitError> {
        // A name git's batch input cannot carry (it is line-based) is asked on its own.
        if paths_in_repo.iter().any(|p| p.contains(['\n', '\r'])) || treeish.contains(['\n', '\r'])
        {
            return paths_in_repo
                .iter()
                .map(|path| self.tree_id(treeish, path))
                .collect();
        }
        // The first line checks that `treeish` names a tree at all, as `tree_id` does.
        let mut input = format!("{treeish}^{{tree}}\n");
        for path in paths_in_repo {
            input.push_str(&object_spec(treeish, path));
            input.push('\n');
        }
        let args = ["cat-file", "--batch-check=%(objectname)"];
        let output = self.run_with_input(&args, input.as_bytes())?;
        if !output.status.success() {
            return Err(self.failure(&args, &output));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let mut answers = text.lines().map(|line| {
            // Found: the object id alone. Not found: `<what was asked> missing` (or ambiguous).
            let line = line.trim();
            (!line.is_empty() && line.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| line.to_owned())
        });
        let unexpected = || GitError::UnexpectedOutput {
            args: args.join(" "),
            expected: "one line per object asked",
            output: text.chars().take(200).collect(),
        };
        match answers.next() {
            Some(Some(_)) => {}
            Some(None) => {
                return Err(GitError::UnknownRevision {
                    rev: treeish.to_owned(),
                    repo: self.root.clone(),
                    hint: "",
                })
            }
            None => return Err(unexpected()),
        }
        let ids: Vec<Option<String>> = answers.collect();
        if ids.len() != paths_in_repo.len() {
            return Err(unexpected());
        }
        Ok(ids)
    }

    /// The text of the file `path_in_repo` at `treeish`; `None` when it does not exist there.
    pub fn read_file(&self, treeish: &str, path_in_repo: &str) -> Result<Option<String>, GitError> {
        // A file at a full commit id never changes: a server reading its project's sandpit.toml
        // on every request asks git once (see `FileAtCommit`).
        let memo_key = CommitId::parse(treeish).ok().map(|commit| FileAtCommit {
            git_dir: self.root.clone(),
            commit: commit.to_string(),
            path: path_in_repo.to_owned(),
        });
        if let Some(text) = memo_key.as_ref().and_then(FileAtCommit::recalled) {
            return Ok(Some(text));
        }
        let spec = format!("{treeish}:{path_in_repo}");
        let output = self.run_raw(&["cat-file", "blob", &spec], None)?;
        if !output.status.success() {
            // Only now tell an unknown revision from a missing file: one process fewer when the
            // file is there, which is nearly always.
            self.check_treeish(treeish)?;
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if let Some(key) = memo_key {
            key.remember(&text);
        }
        Ok(Some(text))
    }

    /// Whether `ancestor` is an ancestor of (or the same commit as) `descendant`.
    pub fn is_ancestor(
        &self,
        ancestor: &CommitId,
        descendant: &CommitId,
    ) -> Result<bool, GitError> {
        let output = self.run_raw(
            &[
                "merge-base",
                "--is-ancestor",
                ancestor.as_str(),
                descendant.as_str(),
            ],
            None,
        )?;
        match output.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failure(&["merge-base", "--is-ancestor"], &output)),
        }
    }

    /// Names of the files directly inside the directory `dir_in_repo` at `treeish`, sorted;
    /// `None` when there is no such directory there.
    pub fn list_files(
        &self,
        treeish: &str,
        dir_in_repo: &str,
    ) -> Result<Option<Vec<String>>, GitError> {
        if self.tree_id(treeish, dir_in_repo)?.is_none() {
            return Ok(None);
        }
        let spec = object_spec(treeish, dir_in_repo);
        let output = self.run_raw(&["ls-tree", "-z", "--end-of-options", &spec], None)?;
        if !output.status.success() {
            return Ok(None);
        }
        let mut names: Vec<String> = output
            .stdout
            .split(|b| *b == 0)
            .filter_map(|entry| {
                // `<mode> <type> <id>\t<name>`; only blobs (files) are listed.
                let entry = std::str::from_utf8(entry).ok()?;
                let (meta, name) = entry.split_once('\t')?;
                meta.split_whitespace()
                    .nth(1)
                    .filter(|kind| *kind == "blob")
                    .map(|_| name.to_owned())
            })
            .collect();
        names.sort();
        Ok(Some(names))
    }

    /// Writes the content of `treeish` (a commit or tree id) into `dest`, exactly as committed:
    /// no working-tree edits, no ignored files. Uses a temporary index; the user's index and work
    /// tree are not touched.
    pub fn extract(&self, treeish: &str, dest: &Path) -> Result<(), GitError> {
        self.check_treeish(treeish)?;
        fs::create_dir_all(dest).map_err(|source| GitError::Scratch {
            path: dest.to_owned(),
            source,
        })?;
        let dest = dest.canonicalize().map_err(|source| GitError::Scratch {
            path: dest.to_owned(),
            source,
        })?;
        let scratch = scratch_dir()?;
        let index = scratch.path().join("index");
        self.run(&["read-tree", treeish], Some(&index))?;
        let mut prefix = dest.to_string_lossy().into_owned();
        prefix.push('/');
        // git checks files out only into a work tree; a bare repository borrows `dest` as one.
        let work_tree = format!("--work-tree={}", dest.to_string_lossy());
        let borrowed_work_tree: &[&str] = if self.is_bare() { &[&work_tree] } else { &[] };
        // Line-ending conversion from the user's own configuration would make the checkout (and
        // so the artifact) depend on who builds it; `.gitattributes` in the commit still apply.
        let checkout = [
            "-c",
            "core.autocrlf=false",
            "-c",
            "core.symlinks=true",
            "checkout-index",
            "-a",
            "-f",
            &format!("--prefix={prefix}"),
        ];
        let args: Vec<&str> = borrowed_work_tree.iter().copied().chain(checkout).collect();
        self.run(&args, Some(&index))?;
        Ok(())
    }

    /// The branch HEAD is on; `None` when detached, and for a bare repository (whose HEAD names
    /// no branch anyone is on).
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        if self.is_bare() {
            return Ok(None);
        }
        let output = self.run_raw(&["symbolic-ref", "--quiet", "--short", "HEAD"], None)?;
        if !output.status.success() {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        ))
    }

    /// `user.email` from git's configuration, if set.
    pub fn user_email(&self) -> Result<Option<String>, GitError> {
        let output = self.run_raw(&["config", "--get", "user.email"], None)?;
        let email = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        Ok(if output.status.success() && !email.is_empty() {
            Some(email)
        } else {
            None
        })
    }

    /// The committer time of `commit`, in seconds since the epoch (for `SOURCE_DATE_EPOCH`).
    pub fn commit_time(&self, commit: &CommitId) -> Result<i64, GitError> {
        let stdout = self.run(&["show", "-s", "--format=%ct", commit.as_str()], None)?;
        stdout
            .trim()
            .parse()
            .map_err(|_| GitError::UnexpectedOutput {
                args: format!("show -s --format=%ct {commit}"),
                expected: "a timestamp",
                output: stdout.trim().to_owned(),
            })
    }

    fn pathspec(&self) -> String {
        if self.prefix.is_empty() {
            ".".to_owned()
        } else {
            self.prefix.clone()
        }
    }

    fn check_treeish(&self, treeish: &str) -> Result<(), GitError> {
        match self.verify(&format!("{treeish}^{{tree}}"))? {
            Some(_) => Ok(()),
            None => Err(GitError::UnknownRevision {
                rev: treeish.to_owned(),
                repo: self.root.clone(),
                hint: "",
            }),
        }
    }

    /// The object id `spec` names (`git rev-parse --verify`), or `None` when it names nothing.
    fn verify(&self, spec: &str) -> Result<Option<String>, GitError> {
        let output = self.run_raw(
            &["rev-parse", "--verify", "--quiet", "--end-of-options", spec],
            None,
        )?;
        if !output.status.success() {
            return Ok(None);
        }
        Ok(Some(
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        ))
    }

    fn command(&self, index: Option<&Path>) -> Command {
        let mut command = Command::new("git");
        match &self.environment {
            GitEnvironment::Inherited => {
                for variable in GIT_LOCATION_VARIABLES {
                    command.env_remove(variable);
                }
            }
            GitEnvironment::Exactly(variables) => {
                command.env_clear();
                command.envs(variables.iter().map(|(k, v)| (k, v)));
            }
        }
        command.env("LC_ALL", "C").env("GIT_TERMINAL_PROMPT", "0");
        if let Some(index) = index {
            command.env("GIT_INDEX_FILE", index);
        }
        match self.layout {
            Layout::WorkTree => command.arg("-C").arg(&self.root),
            // A bare repository here is a mirror of someone else's: whatever git is asked to
            // do in it, it may only reach other repositories over these transports (no `ext::`
            // running commands, no `fd::`).
            Layout::Bare => command
                .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
                .arg(format!("--git-dir={}", self.root.to_string_lossy())),
        };
        command.stdin(Stdio::null());
        command
    }

    /// A git command for this repository with sandpit's controlled environment, for the
    /// modules of this crate that run git subcommands of their own ([`crate::mirror`]).
    pub(crate) fn git_command(&self) -> Command {
        self.command(None)
    }

    fn run_raw(&self, args: &[&str], index: Option<&Path>) -> Result<Output, GitError> {
        self.command(index)
            .args(args)
            .output()
            .map_err(|source| GitError::GitMissing { source })
    }

    /// Runs git with `input` on its standard input (written from another thread, so a large
    /// answer cannot block the writer).
    fn run_with_input(&self, args: &[&str], input: &[u8]) -> Result<Output, GitError> {
        let mut child = self
            .command(None)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| GitError::GitMissing { source })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        std::thread::scope(|scope| {
            scope.spawn(move || {
                use std::io::Write as _;
                // A git that exits early closes the pipe; its status says why.
                let _ = stdin.write_all(input);
            });
            child
                .wait_with_output()
                .map_err(|source| GitError::GitMissing { source })
        })
    }

    fn run_bytes(&self, args: &[&str], index: Option<&Path>) -> Result<Vec<u8>, GitError> {
        let output = self.run_raw(args, index)?;
        if !output.status.success() {
            return Err(self.failure(args, &output));
        }
        Ok(output.stdout)
    }

    fn run(&self, args: &[&str], index: Option<&Path>) -> Result<String, GitError> {
        let stdout = self.run_bytes(args, index)?;
        String::from_utf8(stdout).map_err(|error| GitError::UnexpectedOutput {
            args: args.join(" "),
            expected: "UTF-8 text",
            output: String::from_utf8_lossy(error.as_bytes())
                .chars()
                .take(200)
                .collect(),
        })
    }

    fn failure(&self, args: &[&str], output: &Output) -> GitError {
        GitError::CommandFailed {
            args: args.join(" "),
            repo: self.root.clone(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
    }
}

/// The id of the empty tree (the same in every repository using sha1).
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn object_spec(treeish: &str, path_in_repo: &str) -> String {
    let path = path_in_repo.trim_matches('/');
    if path.is_empty() || path == "." {
        format!("{treeish}^{{tree}}")
    } else {
        format!("{treeish}:{path}")
    }
}

fn scratch_dir() -> Result<tempfile::TempDir, GitError> {
    tempfile::Builder::new()
        .prefix("sandpit-git-")
        .tempdir()
        .map_err(|source| GitError::Scratch {
            path: std::env::temp_dir(),
            source,
        })
}

/// A file's text at a full commit id, remembered for the process: content-addressed, so never
/// stale. Bounded: past [`FileAtCommit::CAPACITY`] entries the memo starts over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileAtCommit {
    git_dir: PathBuf,
    commit: String,
    path: String,
}

type FileMemo = std::sync::Mutex<std::collections::HashMap<FileAtCommit, String>>;

static FILES_AT_COMMITS: std::sync::LazyLock<FileMemo> = std::sync::LazyLock::new(Default::default);

impl FileAtCommit {
    const CAPACITY: usize = 256;

    fn recalled(&self) -> Option<String> {
        let memo = FILES_AT_COMMITS.lock().unwrap_or_else(|e| e.into_inner());
        memo.get(self).cloned()
    }

    fn remember(self, text: &str) {
        let mut memo = FILES_AT_COMMITS.lock().unwrap_or_else(|e| e.into_inner());
        if memo.len() >= Self::CAPACITY {
            memo.clear();
        }
        memo.insert(self, text.to_owned());
    }
}

/// The bare repositories [`Repository::open_bare`] has checked with git in this process.
static VERIFIED_BARE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashSet<PathBuf>>> =
    std::sync::LazyLock::new(Default::default);
