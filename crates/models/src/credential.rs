//! The registration API's credential: a bearer token kept in a file only its owner can read.
//!
//! sandpit creates the file when it first ensures an environment's endpoint and gives the
//! endpoint the file's *path* (a command line is visible to every local user in `ps`, a 0600
//! file is not). The endpoint reads the file on each registration request, so a token rewritten
//! by sandpit is honoured without a restart, and it refuses a file that group or others could
//! read or that another user owns: such a token may be known to someone else.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// A registration token. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// 32 bytes from the kernel's random source, as 64 hex digits.
    pub fn generate() -> io::Result<Token> {
        let mut bytes = [0u8; 32];
        fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(Token(hex::encode(bytes)))
    }

    /// The value to send as `Authorization: Bearer <token>`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this token, in time that does not depend on where they differ:
    /// both are hashed first, so the comparison only ever sees two 32-byte digests.
    fn matches(&self, offered: &str) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let offered = Sha256::digest(offered.as_bytes());
        expected
            .iter()
            .zip(offered.iter())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

/// Why the token file cannot be used. Said in the endpoint's log, never to a client.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the registration token file {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("the registration token file {path} can be read by other users (mode {mode:04o}), so its token is not trusted\nhint: sandpit rewrites it (mode 0600) the next time it ensures the endpoint, e.g. on `sandpit up`")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("the registration token file {path} belongs to user {owner}, not to the user the endpoint runs as ({expected}), so its token is not trusted")]
    ForeignOwner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    #[error("the registration token file {path} holds no token")]
    Empty { path: PathBuf },
}

/// Reads the token in `path`, refusing a file others may read or another user owns.
pub fn read_token_file(path: &Path) -> Result<Token, TokenFileError> {
    let unreadable = |source| TokenFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    // Not through a symbolic link: the checks below must be about the file that is read.
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(unreadable)?;
    let metadata = file.metadata().map_err(unreadable)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TokenFileError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    let expected = nix::unistd::geteuid().as_raw();
    if metadata.uid() != expected {
        return Err(TokenFileError::ForeignOwner {
            path: path.to_path_buf(),
            owner: metadata.uid(),
            expected,
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(unreadable)?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Token(token.to_owned()))
}

/// The token in `path`, written first (a new random one, mode 0600, atomically) when the file
/// is missing or cannot be trusted. The directory must exist; keeping it private (0700) is the
/// caller's part. Two sandpit processes ensuring a missing file at once agree on one token.
pub fn ensure_token_file(path: &Path) -> io::Result<Token> {
    let missing = match read_token_file(path) {
        Ok(token) => return Ok(token),
        Err(TokenFileError::Unreadable { source, .. })
            if source.kind() == io::ErrorKind::NotFound =>
        {
            true
        }
        Err(untrusted) => {
            // A symbolic link, a file others may read, ...: replaced by a new one.
            tracing::warn!("replacing the registration token file: {untrusted}");
            false
        }
    };
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a token file needs a directory",
        )
    })?;
    let token = Token::generate()?;
    // A temporary file is created 0600 under a fresh name (never through a planted link).
    let mut partial = tempfile::Builder::new()
        .prefix(".token-")
        .tempfile_in(dir)?;
    partial.write_all(format!("{}\n", token.0).as_bytes())?;
    partial.as_file().sync_all()?;
    if !missing {
        partial.persist(path).map_err(|e| e.error)?;
        return Ok(token);
    }
    match partial.persist_noclobber(path) {
        Ok(_) => Ok(token),
        // Another process wrote it first: its token is the one.
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => {
            read_token_file(path).map_err(io::Error::other)
        }
        Err(e) => Err(e.error),
    }
}

/// Why a registration request was refused; each says what to send, none says anything about
/// the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// A bearer token that is not this endpoint's.
    Wrong,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HINT: &str = "\nhint: sandpit registers models itself (`sandpit up`, `sandpit deploy`); only the user it runs as can read the endpoint's token";
        match self {
            Refusal::Missing => write!(
                f,
                "registering models needs a credential: send `Authorization: Bearer <token>`{HINT}"
            ),
            Refusal::NotBearer => {
                write!(f, "the Authorization header must be `Bearer <token>`{HINT}")
            }
            Refusal::Wrong => write!(
                f,
                "the bearer token is not this endpoint's registration token{HINT}"
            ),
        }
    }
}

/// Checks an `Authorization` header value against `expected`.
pub fn check_bearer(authorization: Option<&[u8]>, expected: &Token) -> Result<(), Refusal> {
    let value = authorization.ok_or(Refusal::Missing)?;
    let value = std::str::from_utf8(value).map_err(|_| Refusal::NotBearer)?;
    let (scheme, offered) = value.trim().split_once(' ').ok_or(Refusal::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::NotBearer);
    }
    if expected.matches(offered.trim()) {
        Ok(())
    } else {
        Err(Refusal::Wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_token_itself_is_accepted() {
        let token = Token("abc123".to_owned());
        let cases: [(Option<&str>, Result<(), Refusal>); 9] = [
            (Some("Bearer abc123"), Ok(())),
            (Some("bearer abc123"), Ok(())),
            (Some("  Bearer   abc123 "), Ok(())),
            (None, Err(Refusal::Missing)),
            (Some("abc123"), Err(Refusal::NotBearer)),
            (Some("Basic abc123"), Err(Refusal::NotBearer)),
            (Some("Bearer abc12"), Err(Refusal::Wrong)),
            (Some("Bearer abc1234"), Err(Refusal::Wrong)),
            (Some("Bearer "), Err(Refusal::NotBearer)),
        ];
        for (header, expected) in cases {
            assert_eq!(
                check_bearer(header.map(str::as_bytes), &token),
                expected,
                "{header:?}"
            );
        }
        assert_eq!(
            check_bearer(Some(b"Bearer \xff"), &token),
            Err(Refusal::NotBearer)
        );
    }

    #[test]
    fn refusals_never_repeat_the_token() {
        let token = Token("s3cret-token".to_owned());
        for refusal in [Refusal::Missing, Refusal::NotBearer, Refusal::Wrong] {
            let message = refusal.to_string();
            assert!(!message.contains(token.expose()), "{message}");
            assert!(message.contains("\nhint: "), "{message}");
        }
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
    }

    #[test]
    fn processes_ensuring_a_missing_token_file_at_once_agree_on_one_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let tokens: Vec<Token> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| ensure_token_file(&path).unwrap()))
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let kept = read_token_file(&path).unwrap();
        assert!(tokens.iter().all(|t| *t == kept), "{tokens:?}");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_token_file_is_written_private_and_kept_while_it_can_be_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let first = ensure_token_file(&path).unwrap();
        assert_eq!(first.expose().len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_token_file(&path).unwrap(), first);
        assert_eq!(ensure_token_file(&path).unwrap(), first, "kept");

        // A file others can read is not trusted, by the endpoint or by the writer.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let error = read_token_file(&path).unwrap_err();
        assert!(
            matches!(error, TokenFileError::Exposed { mode: 0o644, .. }),
            "{error}"
        );
        let second = ensure_token_file(&path).unwrap();
        assert_ne!(second, first, "replaced");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        // Nor is one reached through a symbolic link, or an empty one.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(
            read_token_file(&link),
            Err(TokenFileError::Unreadable { .. })
        ));
        let empty = dir.path().join("empty");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&empty)
            .unwrap();
        assert!(matches!(
            read_token_file(&empty),
            Err(TokenFileError::Empty { .. })
        ));
        assert!(matches!(
            read_token_file(&dir.path().join("missing")),
            Err(TokenFileError::Unreadable { .. })
        ));
    }
}
