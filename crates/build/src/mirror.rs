//! A server's own copy of a project's repository: a bare mirror that fetches every branch from
//! the project's git URL, and answers which commit a branch or sha names *in that copy* — the
//! only commits a server ever builds.
//!
//! The URL comes from whoever registered the project, so it is checked before git sees it
//! ([`RemoteUrl::parse`]: no option-like URLs, no `ext::`/`fd::` transports), every mirror git
//! process may only use the transports in `GIT_ALLOW_PROTOCOL`, never prompts, and gets the URL
//! after `--`. Credentials in a URL (`https://user:token@…`) are handed to git only: every
//! message shows the URL and git's own words with them replaced by `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Output;

use sandpit_domain::{quoted, CommitId};

use crate::git::{GitError, Repository};

/// The URL transports a mirror accepts, as written before `://`.
const ALLOWED_SCHEMES: &[&str] = &["file", "git", "http", "https", "ssh", "git+ssh", "ssh+git"];

/// How much of git's error output a message quotes.
const STDERR_LIMIT: usize = 2000;

/// What went wrong with a mirror; each message says what and what to do.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("the git URL {url} is refused: it {reason}\nhint: give a file://, git://, http(s):// or ssh:// URL, `user@host:path`, or an absolute path")]
    UnsafeUrl { url: String, reason: &'static str },
    #[error("{branch} is not a branch name: it {reason}\nhint: give the branch as `git branch` shows it, e.g. `main`")]
    InvalidBranch {
        branch: String,
        reason: &'static str,
    },
    #[error("{rev} is not a commit id\nhint: give the commit's full sha (40 hex digits) or at least its first 7 digits")]
    InvalidCommitId { rev: String },
    #[error("fetching {url} failed: {stderr}\nhint: check that the URL is right, that the repository exists, and that this machine can read it without a prompt (credentials in the URL, or an SSH key of the user sandpit runs as)")]
    FetchFailed { url: String, stderr: String },
    #[error("there is no branch `{branch}` in {url} ({known})\nhint: push the branch, or name one of the branches it has")]
    BranchNotFound {
        branch: String,
        url: String,
        known: String,
    },
    #[error("commit {commit} is not in {url}; push it first\nhint: `git push` the branch holding it, then ask again")]
    CommitNotFound { commit: String, url: String },
    #[error("{path} is not a mirror (a bare git repository)\nhint: remove the directory and add the project again")]
    NotAMirror { path: PathBuf },
    #[error("cannot create the mirror {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// A git URL that passed [`RemoteUrl::parse`]. `Display` and `Debug` show it redacted; only
/// [`RemoteUrl::as_str`] (for git, and for the registry) has the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    raw: String,
}

impl RemoteUrl {
    /// Checks that git would read `raw` as a repository over an allowed transport, and not as
    /// an option or a command to run.
    pub fn parse(raw: &str) -> Result<RemoteUrl, MirrorError> {
        match url_problem(raw) {
            None => Ok(RemoteUrl {
                raw: raw.to_owned(),
            }),
            Some(reason) => Err(MirrorError::UnsafeUrl {
                url: quoted(&redact_credentials(raw)).to_string(),
                reason,
            }),
        }
    }

    /// The URL as given, credentials included: for git's command line and the registry only.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The URL with any credentials replaced by `***`, for messages and listings.
    pub fn redacted(&self) -> String {
        redact_credentials(&self.raw)
    }

    /// `text` (e.g. git's stderr) with this URL's credentials, and those of any URL in it,
    /// replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut text = redact_credentials(text);
        for secret in url_secrets(&self.raw) {
            text = text.replace(&secret, "***");
        }
        text
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteUrl({})", self.redacted())
    }
}

/// Why git must not be handed `raw` as a repository, if it must not.
fn url_problem(raw: &str) -> Option<&'static str> {
    if raw.trim().is_empty() {
        return Some("is empty");
    }
    if raw.chars().any(|c| c.is_control()) {
        return Some("contains control characters");
    }
    if raw != raw.trim() {
        return Some("starts or ends with white space");
    }
    if raw.starts_with('-') {
        return Some("starts with `-`, which git would read as an option");
    }
    // `<transport>::<address>` runs the remote helper `git-remote-<transport>`; `ext::` runs
    // any command it is given, `fd::` talks to descriptors.
    if let Some((transport, _)) = raw.split_once("::") {
        if !transport.is_empty()
            && transport
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Some(
                "names a remote-helper transport (`<transport>::`), which may run commands",
            );
        }
    }
    if let Some((scheme, rest)) = raw.split_once("://") {
        if !ALLOWED_SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
            return Some("uses a transport other than file, git, http, https and ssh");
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let host = authority.rsplit('@').next().unwrap_or_default();
        if host.starts_with('-') {
            return Some("names a host starting with `-`, which ssh would read as an option");
        }
        if scheme != "file" && host.is_empty() {
            return Some("names no host");
        }
        return None;
    }
    if raw.starts_with('/') {
        return None;
    }
    // scp-like `[user@]host:path` (git reads a `:` before any `/` so): ssh.
    if let Some((authority, _)) = raw.split_once(':') {
        if !authority.contains('/') {
            let host = authority.rsplit('@').next().unwrap_or_default();
            if host.is_empty() {
                return Some("names no host before `:`");
            }
            if host.starts_with('-') {
                return Some("names a host starting with `-`, which ssh would read as an option");
            }
            return None;
        }
    }
    Some("is a relative path (relative to what would be the mirror, not to you)")
}

/// `text` with the user-information part of every `scheme://user:secret@host` in it replaced
/// by `***`.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c == '/' || c.is_whitespace() || "'\"<>`".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(user_end) => {
                out.push_str("***");
                out.push_str(&authority[user_end..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// The credentials in `url` (the user-information of a `scheme://` URL and its parts), longest
/// first, for removing them from text that may quote them in another place.
fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let mut secrets = vec![userinfo.to_owned()];
    if let Some((user, password)) = userinfo.split_once(':') {
        secrets.push(password.to_owned());
        secrets.push(user.to_owned());
    }
    // A short piece (`git`, `me`) would blank out ordinary words; it is only a secret whole.
    secrets.retain(|secret| secret.len() >= 4);
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    secrets
}

/// Why `branch` is not a name git accepts for a branch (`git check-ref-format --branch`'s
/// rules, checked here so no option-like or revision-like text ever reaches git), if it is not.
fn branch_problem(branch: &str) -> Option<&'static str> {
    if branch.is_empty() {
        return Some("is empty");
    }
    if branch.starts_with('-') {
        return Some("starts with `-`");
    }
    if branch.chars().any(|c| c.is_control() || c == ' ') {
        return Some("contains a space or a control character");
    }
    if branch.chars().any(|c| "~^:?*[\\".contains(c)) {
        return Some("contains one of ~ ^ : ? * [ \\");
    }
    if branch.contains("..") || branch.contains("@{") || branch == "@" {
        return Some("contains `..` or `@{`, or is `@`");
    }
    if branch.starts_with('/') || branch.ends_with('/') || branch.contains("//") {
        return Some("has an empty part between slashes");
    }
    if branch.ends_with('.') || branch.ends_with(".lock") {
        return Some("ends with `.` or `.lock`");
    }
    if branch.split('/').any(|part| part.starts_with('.')) {
        return Some("has a part starting with `.`");
    }
    None
}

/// Refuses a branch name git would not accept, or would read as an option or a revision, before
/// anything is fetched.
pub fn check_branch_name(branch: &str) -> Result<(), MirrorError> {
    match branch_problem(branch) {
        None => Ok(()),
        Some(reason) => Err(MirrorError::InvalidBranch {
            branch: quoted(branch).to_string(),
            reason,
        }),
    }
}

/// Whether `rev` is written as a commit id: 7 to 40 hex digits.
fn is_commit_id(rev: &str) -> bool {
    (7..=40).contains(&rev.len()) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// How a branch moved in one fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadChange {
    pub branch: String,
    /// `None`: the branch is new.
    pub before: Option<CommitId>,
    /// `None`: the branch was deleted (pruned).
    pub after: Option<CommitId>,
}

/// What [`Mirror::fetch`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// Every branch after the fetch and the commit it names.
    pub heads: BTreeMap<String, CommitId>,
    /// The branches that moved, appeared or went away, by name.
    pub changes: Vec<HeadChange>,
}

/// The branches that differ between `before` and `after`, by name.
fn head_changes(
    before: &BTreeMap<String, CommitId>,
    after: &BTreeMap<String, CommitId>,
) -> Vec<HeadChange> {
    let mut branches: Vec<&String> = before.keys().chain(after.keys()).collect();
    branches.sort();
    branches.dedup();
    branches
        .into_iter()
        .filter(|branch| before.get(*branch) != after.get(*branch))
        .map(|branch| HeadChange {
            branch: branch.clone(),
            before: before.get(branch).cloned(),
            after: after.get(branch).cloned(),
        })
        .collect()
}

/// A bare mirror of one remote repository.
#[derive(Debug, Clone)]
pub struct Mirror {
    repository: Repository,
    url: RemoteUrl,
}

impl Mirror {
    /// Makes a new, empty bare repository at `git_dir` (which must not exist; it is created
    /// 0700) mirroring `url`; nothing is fetched yet. Git sees only `environment` (PATH, HOME).
    pub fn create(
        git_dir: &Path,
        url: RemoteUrl,
        environment: Vec<(String, String)>,
    ) -> Result<Mirror, MirrorError> {
        {
            use std::os::unix::fs::DirBuilderExt as _;
            fs::DirBuilder::new()
                .mode(0o700)
                .create(git_dir)
                .map_err(|source| MirrorError::Io {
                    path: git_dir.to_owned(),
                    source,
                })?;
        }
        let repository = Repository::bare_unchecked(git_dir, environment);
        // No template: hooks from the user's `init.templateDir` have no business in a mirror.
        let output = run(&repository, &["init", "--bare", "--quiet", "--template="])?;
        if !output.status.success() {
            return Err(command_failed(&repository, "init --bare", &output));
        }
        Ok(Mirror { repository, url })
    }

    /// The existing mirror at `git_dir` of `url`.
    pub fn open(
        git_dir: &Path,
        url: RemoteUrl,
        environment: Vec<(String, String)>,
    ) -> Result<Mirror, MirrorError> {
        let repository = match Repository::open_bare(git_dir, environment) {
            Ok(repository) => repository,
            Err(GitError::NotARepository { .. }) => {
                return Err(MirrorError::NotAMirror {
                    path: git_dir.to_owned(),
                })
            }
            Err(error) => return Err(error.into()),
        };
        Ok(Mirror { repository, url })
    }

    /// The repository the build pipeline reads commits from.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The mirror's git directory.
    pub fn git_dir(&self) -> &Path {
        self.repository.root()
    }

    /// What it mirrors.
    pub fn url(&self) -> &RemoteUrl {
        &self.url
    }

    /// Fetches every branch of the URL into `refs/heads/` (branches deleted there are deleted
    /// here; tags are not fetched). Two fetches into one mirror take turns.
    pub fn fetch(&self) -> Result<FetchReport, MirrorError> {
        let lock_path = self.git_dir().join("sandpit-fetch.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|source| MirrorError::Io {
                path: lock_path.clone(),
                source,
            })?;
        let before = self.heads()?;
        let mut command = self.repository.git_command();
        let environment: Vec<String> = command
            .get_envs()
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect();
        if !environment
            .iter()
            .any(|key| key == "GIT_SSH_COMMAND" || key == "GIT_SSH")
        {
            // ssh asks for passwords and host keys on the terminal, past GIT_TERMINAL_PROMPT.
            command.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        }
        command.env_remove("GIT_ASKPASS").env_remove("SSH_ASKPASS");
        command.args([
            // A transfer slower than 1 byte/s for a minute is given up rather than waited on.
            "-c",
            "http.lowSpeedLimit=1",
            "-c",
            "http.lowSpeedTime=60",
            "fetch",
            "--quiet",
            "--prune",
            "--no-tags",
            "--no-recurse-submodules",
            // FETCH_HEAD would keep the URL, credentials and all, in a file.
            "--no-write-fetch-head",
            "--",
            self.url.as_str(),
            "+refs/heads/*:refs/heads/*",
        ]);
        let output = command
            .output()
            .map_err(|source| GitError::GitMissing { source })?;
        drop(lock);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let mut stderr = self.url.redact(stderr.trim());
            if stderr.len() > STDERR_LIMIT {
                let mut cut = STDERR_LIMIT;
                while !stderr.is_char_boundary(cut) {
                    cut -= 1;
                }
                stderr.truncate(cut);
                stderr.push('…');
            }
            if stderr.is_empty() {
                stderr = format!("git exited with {}", output.status);
            }
            return Err(MirrorError::FetchFailed {
                url: self.url.redacted(),
                stderr,
            });
        }
        let heads = self.heads()?;
        let changes = head_changes(&before, &heads);
        Ok(FetchReport { heads, changes })
    }

    /// Every branch in the mirror and the commit it names.
    pub fn heads(&self) -> Result<BTreeMap<String, CommitId>, MirrorError> {
        let args = [
            "for-each-ref",
            "--format=%(objectname) %(refname:strip=2)",
            "refs/heads/",
        ];
        let output = run(&self.repository, &args)?;
        if !output.status.success() {
            return Err(command_failed(&self.repository, "for-each-ref", &output));
        }
        let text = String::from_utf8_lossy(&output.stdout);
        let mut heads = BTreeMap::new();
        for line in text.lines() {
            let Some((sha, branch)) = line.split_once(' ') else {
                continue;
            };
            let commit = CommitId::parse(sha).map_err(|_| GitError::UnexpectedOutput {
                args: args.join(" "),
                expected: "`<commit id> <branch>` lines",
                output: line.chars().take(200).collect(),
            })?;
            heads.insert(branch.to_owned(), commit);
        }
        Ok(heads)
    }

    /// The commit `branch` names in the mirror (as of the last [`fetch`](Self::fetch)).
    pub fn resolve_branch(&self, branch: &str) -> Result<CommitId, MirrorError> {
        check_branch_name(branch)?;
        match self.repository.resolve(&format!("refs/heads/{branch}")) {
            Ok(commit) => Ok(commit),
            Err(GitError::UnknownRevision { .. }) => {
                let heads = self.heads()?;
                let known = if heads.is_empty() {
                    "it has no branches".to_owned()
                } else {
                    let names: Vec<&str> = heads.keys().map(String::as_str).collect();
                    format!("it has {}", names.join(", "))
                };
                Err(MirrorError::BranchNotFound {
                    branch: branch.to_owned(),
                    url: self.url.redacted(),
                    known,
                })
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Whether the commit `sha` (full, or at least 7 hex digits) is in the mirror.
    pub fn has_commit(&self, sha: &str) -> Result<bool, MirrorError> {
        match self.resolve_commit(sha) {
            Ok(_) => Ok(true),
            Err(MirrorError::CommitNotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The full id of the commit `rev` (its sha, full or at least 7 hex digits) — only if it is
    /// in the mirror; otherwise "commit … is not in <url>; push it first".
    pub fn resolve_commit(&self, rev: &str) -> Result<CommitId, MirrorError> {
        if !is_commit_id(rev) {
            return Err(MirrorError::InvalidCommitId {
                rev: quoted(rev).to_string(),
            });
        }
        match self.repository.resolve(rev) {
            Ok(commit) => Ok(commit),
            Err(GitError::UnknownRevision { .. }) => Err(MirrorError::CommitNotFound {
                commit: rev.chars().take(12).collect(),
                url: self.url.redacted(),
            }),
            Err(error) => Err(error.into()),
        }
    }
}

/// Runs git with `args` in `repository`; only a missing git is an error here.
fn run(repository: &Repository, args: &[&str]) -> Result<Output, MirrorError> {
    repository
        .git_command()
        .args(args)
        .output()
        .map_err(|source| MirrorError::Git(GitError::GitMissing { source }))
}

fn command_failed(repository: &Repository, args: &str, output: &Output) -> MirrorError {
    MirrorError::Git(GitError::CommandFailed {
        args: args.to_owned(),
        repo: repository.root().to_owned(),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_git_would_misread_are_refused_before_git_runs() {
        // (url, None when accepted, else a fragment of the reason)
        let table: &[(&str, Option<&str>)] = &[
            ("https://example.com/team/app.git", None),
            ("http://127.0.0.1:8080/app.git", None),
            ("ssh://git@example.com/app.git", None),
            ("git+ssh://git@example.com/app.git", None),
            ("git://example.com/app.git", None),
            ("file:///srv/git/app.git", None),
            ("/srv/git/app.git", None),
            ("git@example.com:team/app.git", None),
            ("https://user:secret@example.com/app.git", None),
            ("", Some("is empty")),
            ("   ", Some("is empty")),
            ("--upload-pack=touch /tmp/x", Some("starts with `-`")),
            ("-oProxyCommand=x", Some("starts with `-`")),
            ("ext::sh -c touch% /tmp/pwned", Some("remote-helper")),
            ("fd::17", Some("remote-helper")),
            ("EXT::sh", Some("remote-helper")),
            ("ftp://example.com/app.git", Some("other than file")),
            ("ssh://-oProxyCommand=x/app", Some("host starting with `-`")),
            (
                "ssh://user@-oProxyCommand=x/app",
                Some("host starting with `-`"),
            ),
            ("-host:app.git", Some("starts with `-`")),
            ("user@-oProxy:app.git", Some("host starting with `-`")),
            ("https:///app.git", Some("names no host")),
            ("relative/app.git", Some("relative path")),
            ("app.git", Some("relative path")),
            ("/srv/app.git\n--upload-pack=x", Some("control characters")),
            (" /srv/app.git", Some("white space")),
        ];
        for (url, expected) in table {
            let got = url_problem(url);
            match (got, expected) {
                (None, None) => {}
                (Some(reason), Some(fragment)) => {
                    assert!(reason.contains(fragment), "{url:?}: {reason}")
                }
                (got, want) => panic!("{url:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn credentials_never_show_in_urls_or_text() {
        let table = [
            (
                "https://user:s3cret@example.com/a.git",
                "https://***@example.com/a.git",
            ),
            (
                "https://tok3n@example.com/a.git",
                "https://***@example.com/a.git",
            ),
            ("https://example.com/a.git", "https://example.com/a.git"),
            ("ssh://git@example.com/a.git", "ssh://***@example.com/a.git"),
            ("/srv/a.git", "/srv/a.git"),
            (
                "fatal: unable to access 'https://u:pw@h/x/': refused; see http://a:b@c",
                "fatal: unable to access 'https://***@h/x/': refused; see http://***@c",
            ),
        ];
        for (raw, want) in table {
            assert_eq!(redact_credentials(raw), want, "{raw}");
        }
        let url = RemoteUrl::parse("https://alice:hunter22@example.com/a.git").unwrap();
        assert_eq!(url.to_string(), "https://***@example.com/a.git");
        assert!(!format!("{url:?}").contains("hunter22"));
        // A secret quoted elsewhere in git's words, without its URL, goes too.
        assert_eq!(
            url.redact("Authentication failed for user alice, password hunter22"),
            "Authentication failed for user ***, password ***"
        );
        let refused = RemoteUrl::parse("ftp://alice:hunter22@example.com/a.git").unwrap_err();
        assert!(!refused.to_string().contains("hunter22"), "{refused}");
    }

    #[test]
    fn branch_names_follow_gits_rules() {
        let table: &[(&str, Option<&str>)] = &[
            ("main", None),
            ("release/2026.1", None),
            ("feature/x-y_z", None),
            ("", Some("empty")),
            ("-f", Some("starts with `-`")),
            ("a b", Some("space")),
            ("HEAD~1", Some("~ ^")),
            ("a:b", Some("~ ^")),
            ("a..b", Some("..")),
            ("a@{1}", Some("@{")),
            ("@", Some("@")),
            ("/main", Some("between slashes")),
            ("main/", Some("between slashes")),
            ("a//b", Some("between slashes")),
            ("main.lock", Some(".lock")),
            ("main.", Some("ends with")),
            (".hidden", Some("starting with `.`")),
            ("a/.b", Some("starting with `.`")),
        ];
        for (branch, expected) in table {
            match (branch_problem(branch), expected) {
                (None, None) => {}
                (Some(reason), Some(fragment)) => {
                    assert!(reason.contains(fragment), "{branch:?}: {reason}")
                }
                (got, want) => panic!("{branch:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn head_changes_name_new_moved_and_deleted_branches() {
        let id = |c: char| CommitId::parse(&c.to_string().repeat(40)).unwrap();
        let before: BTreeMap<String, CommitId> = [
            ("main".to_owned(), id('a')),
            ("old".to_owned(), id('b')),
            ("same".to_owned(), id('c')),
        ]
        .into();
        let after: BTreeMap<String, CommitId> = [
            ("main".to_owned(), id('d')),
            ("new".to_owned(), id('e')),
            ("same".to_owned(), id('c')),
        ]
        .into();
        let changes = head_changes(&before, &after);
        let summary: Vec<(&str, Option<char>, Option<char>)> = changes
            .iter()
            .map(|c| {
                let first =
                    |id: &Option<CommitId>| id.as_ref().and_then(|i| i.as_str().chars().next());
                (c.branch.as_str(), first(&c.before), first(&c.after))
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("main", Some('a'), Some('d')),
                ("new", None, Some('e')),
                ("old", Some('b'), None),
            ]
        );
        assert!(head_changes(&after, &after).is_empty());
    }

    #[test]
    fn commit_ids_are_7_to_40_hex_digits() {
        for (rev, ok) in [
            ("abc1234", true),
            (&"a".repeat(40)[..], true),
            ("abc123", false),
            (&"a".repeat(41)[..], false),
            ("main", false),
            ("HEAD~1", false),
            ("--all", false),
        ] {
            assert_eq!(is_commit_id(rev), ok, "{rev}");
        }
    }
}
