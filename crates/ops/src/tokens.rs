//! The control plane's API tokens: create (the secret is shown once and only its sha256 is
//! kept), list, revoke, and `authenticate` — a bearer secret turned into the [`Principal`] it
//! speaks for, or the reason it does not (missing, invalid, revoked, expired).

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use base64::Engine as _;
use sandpit_state::{NewToken, StateStore, Token};
use sha2::{Digest as _, Sha256};

use crate::authorization::{authorize, Action};
use crate::error::{failure, ErrorKind};
use crate::principal::{Identity, Principal, Role};
use crate::Context;

/// What every secret starts with, so a leaked one is recognisable (and scanners can find it).
pub const SECRET_PREFIX: &str = "spt_";
/// Random bytes in a secret: 32, i.e. 43 base64url characters after the prefix.
const SECRET_BYTES: usize = 32;
/// Who created the first admin token, as recorded.
const BOOTSTRAP_CREATOR: &str = "sandpit server";

/// A token's secret. Its `Debug` never shows it, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, to show its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub user: String,
    pub roles: BTreeSet<Role>,
    /// RFC 3339 UTC, like every time below.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub created_by: String,
    pub revoked_at: Option<String>,
}

/// A token just created, with the only copy of its secret.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub record: TokenRecord,
    pub secret: Secret,
}

/// A caller whose token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub principal: Principal,
    pub token_id: String,
}

/// Why a bearer token was not accepted. The messages never quote the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("invalid token: it is not one this server issued")]
    Invalid,
    #[error("revoked token: it no longer grants access")]
    Revoked,
    #[error("expired token: it no longer grants access")]
    Expired,
}

impl AuthFailure {
    /// `missing|invalid|revoked|expired`
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Invalid => "invalid",
            AuthFailure::Revoked => "revoked",
            AuthFailure::Expired => "expired",
        }
    }
}

/// `30d`, `12h`, `90m` (any humantime duration of at least a second) as a duration.
pub fn parse_expiry(raw: &str) -> anyhow::Result<Duration> {
    let invalid = |why: String| {
        failure(
            ErrorKind::InvalidInput,
            format!("`{raw}` is not an expiry: {why}\nhint: e.g. `30d`, `12h` or `90m`"),
        )
    };
    let duration = humantime::parse_duration(raw.trim()).map_err(|e| invalid(e.to_string()))?;
    if duration < Duration::from_secs(1) {
        return Err(invalid("it must be at least a second".to_owned()));
    }
    Ok(duration)
}

fn open_store(context: &Context) -> anyhow::Result<StateStore> {
    Ok(StateStore::open_at(&context.state)?)
}

/// The name recorded for what `principal` does.
fn actor(principal: &Principal) -> String {
    match &principal.identity {
        Identity::Named(name) => name.clone(),
        Identity::LocalGitUser => "local user".to_owned(),
    }
}

/// `N` random bytes from the operating system, as lowercase hex.
pub(crate) fn random_hex<const N: usize>() -> anyhow::Result<String> {
    Ok(hex::encode(random_bytes::<N>()?))
}

fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the operating system gave no random bytes: {e}"))?;
    Ok(bytes)
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The roles a stored token lists; a name this sandpit does not know grants nothing.
fn known_roles(stored: &[String]) -> BTreeSet<Role> {
    stored
        .iter()
        .filter_map(|name| Role::parse(name).ok())
        .collect()
}

fn record(token: Token) -> TokenRecord {
    TokenRecord {
        roles: known_roles(&token.roles),
        id: token.id,
        user: token.user,
        created_at: token.created_at,
        expires_at: token.expires_at,
        created_by: token.created_by,
        revoked_at: token.revoked_at,
    }
}

/// Records a new token for `user` with `roles`, expiring after `expires` if given; only an
/// admin may. The returned secret is the only copy there will ever be.
pub fn create(
    context: &Context,
    principal: &Principal,
    user: &str,
    roles: &[Role],
    expires: Option<Duration>,
) -> anyhow::Result<CreatedToken> {
    authorize(principal, Action::ManageTokens)?;
    create_unchecked(context, &actor(principal), user, roles, expires)
}

fn create_unchecked(
    context: &Context,
    created_by: &str,
    user: &str,
    roles: &[Role],
    expires: Option<Duration>,
) -> anyhow::Result<CreatedToken> {
    let user = user.trim();
    if user.is_empty() {
        crate::fail!(
            InvalidInput,
            "a token needs a user\nhint: e.g. `alice@example.com`"
        );
    }
    if user.chars().any(char::is_control) || user.len() > 200 {
        crate::fail!(
            InvalidInput,
            "`{}` is not a user name: at most 200 characters, none of them control characters",
            user.escape_debug()
        );
    }
    if roles.is_empty() {
        crate::fail!(
            InvalidInput,
            "a token needs at least one role\nhint: the roles are viewer, developer, deployer, approver, admin"
        );
    }
    let roles: BTreeSet<Role> = roles.iter().copied().collect();
    let expires_at = expires
        .map(|duration| {
            SystemTime::now()
                .checked_add(duration)
                .map(|at| humantime::format_rfc3339_millis(at).to_string())
                .ok_or_else(|| failure(ErrorKind::InvalidInput, "that expiry is too far away"))
        })
        .transpose()?;
    let secret = Secret(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<SECRET_BYTES>()?)
    ));
    let new = NewToken {
        id: format!("tok_{}", hex::encode(random_bytes::<6>()?)),
        user: user.to_owned(),
        roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
        secret_sha256: hash_secret(secret.expose()),
        expires_at,
        created_by: created_by.to_owned(),
    };
    let token = open_store(context)?.create_token(&new)?;
    Ok(CreatedToken {
        record: record(token),
        secret,
    })
}

/// Every token, oldest first (revoked ones too); only an admin may list them.
pub fn list(context: &Context, principal: &Principal) -> anyhow::Result<Vec<TokenRecord>> {
    authorize(principal, Action::ManageTokens)?;
    Ok(open_store(context)?
        .tokens()?
        .into_iter()
        .map(record)
        .collect())
}

/// Revokes token `id` (not found when unknown, a conflict when already revoked); only an
/// admin may.
pub fn revoke(context: &Context, principal: &Principal, id: &str) -> anyhow::Result<TokenRecord> {
    authorize(principal, Action::ManageTokens)?;
    Ok(record(
        open_store(context)?.revoke_token(id.trim(), &actor(principal))?,
    ))
}

/// Who `bearer` (the secret after `Bearer `) speaks for, now. The outer error is a fault of
/// the store; the inner one is the caller's.
pub fn authenticate(
    context: &Context,
    bearer: Option<&str>,
) -> anyhow::Result<Result<Authenticated, AuthFailure>> {
    authenticate_at(context, bearer, SystemTime::now())
}

/// [`authenticate`] as of `now`.
pub fn authenticate_at(
    context: &Context,
    bearer: Option<&str>,
    now: SystemTime,
) -> anyhow::Result<Result<Authenticated, AuthFailure>> {
    let Some(secret) = bearer.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(Err(AuthFailure::Missing));
    };
    // Anything not shaped like a secret cannot match one; the store is not asked.
    let shaped = secret.strip_prefix(SECRET_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !shaped {
        return Ok(Err(AuthFailure::Invalid));
    }
    let Some(token) = open_store(context)?.token_by_secret_hash(&hash_secret(secret))? else {
        return Ok(Err(AuthFailure::Invalid));
    };
    if token.revoked_at.is_some() {
        return Ok(Err(AuthFailure::Revoked));
    }
    if let Some(expires_at) = &token.expires_at {
        let expiry = humantime::parse_rfc3339_weak(expires_at).with_context(|| {
            format!("token {} has an unreadable expiry `{expires_at}`", token.id)
        })?;
        if expiry <= now {
            return Ok(Err(AuthFailure::Expired));
        }
    }
    Ok(Ok(Authenticated {
        principal: Principal::named(&token.user, known_roles(&token.roles)),
        token_id: token.id,
    }))
}

/// Where a server over `home` keeps the first admin token's secret.
pub fn admin_token_path(home: &Path) -> PathBuf {
    home.join("server").join("admin-token")
}

/// On a server's first start (no [`admin_token_path`] yet): creates a token for user `admin`
/// with the `admin` role and writes its secret there (directory 0700, file 0600), and returns
/// the path. An existing file is never overwritten; then this returns `None`.
pub fn first_admin_token(context: &Context) -> anyhow::Result<Option<PathBuf>> {
    let path = admin_token_path(&context.home);
    if path.exists() {
        return Ok(None);
    }
    let dir = path.parent().expect("the path has a parent");
    sandpit_runtime::owner_only::create_dir(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // The secret goes to a private file beside it first, which is then linked into place only
    // if nobody got there first: the final name never holds half a secret, and is never replaced.
    let staged = dir.join(format!(".admin-token.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staged);
    let created = create_unchecked(context, BOOTSTRAP_CREATOR, "admin", &[Role::Admin], None)?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(sandpit_runtime::owner_only::FILE_MODE)
        .open(&staged)
        .and_then(|mut file| {
            file.write_all(created.secret.expose().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        })
        .and_then(|()| std::fs::hard_link(&staged, &path));
    let _ = std::fs::remove_file(&staged);
    match written {
        Ok(()) => Ok(Some(path)),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            // Another server over the same home wrote its own at the same moment; this token
            // nobody can know is revoked so it can never be used.
            let _ = open_store(context)?.revoke_token(&created.record.id, BOOTSTRAP_CREATOR);
            Ok(None)
        }
        Err(error) => {
            let _ = open_store(context)?.revoke_token(&created.record.id, BOOTSTRAP_CREATOR);
            Err(error)
                .with_context(|| format!("cannot write the admin token to {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Principal {
        Principal::named("root@x", [Role::Admin])
    }

    #[test]
    fn expiries_parse_days_hours_and_minutes() {
        let table = [
            ("30d", Some(30 * 86_400)),
            ("12h", Some(12 * 3_600)),
            ("90m", Some(90 * 60)),
            (" 1h ", Some(3_600)),
            ("0s", None),
            ("tomorrow", None),
            ("", None),
        ];
        for (raw, expected) in table {
            match (parse_expiry(raw), expected) {
                (Ok(duration), Some(seconds)) => assert_eq!(duration.as_secs(), seconds, "{raw}"),
                (Err(error), None) => {
                    assert_eq!(crate::error::kind_of(&error), ErrorKind::InvalidInput);
                    assert!(error.to_string().contains("hint: e.g. `30d`"), "{error}");
                }
                (result, expected) => panic!("{raw}: {result:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn a_created_token_authenticates_until_revoked_and_is_stored_as_a_hash_only() {
        let dir = tempfile::tempdir().unwrap();
        let context = Context::for_home(dir.path());
        let created = create(
            &context,
            &admin(),
            "alice@x",
            &[Role::Deployer, Role::Viewer],
            None,
        )
        .unwrap();
        let secret = created.secret.expose().to_owned();
        assert!(
            secret.starts_with("spt_") && secret.len() == 4 + 43,
            "{secret}"
        );
        assert!(
            !format!("{created:?}").contains(&secret),
            "Debug hides the secret"
        );
        assert!(created.record.id.starts_with("tok_") && created.record.id.len() == 16);
        assert_eq!(created.record.created_by, "root@x");

        let who = authenticate(&context, Some(&secret)).unwrap().unwrap();
        assert_eq!(who.token_id, created.record.id);
        assert_eq!(
            who.principal,
            Principal::named("alice@x", [Role::Viewer, Role::Deployer])
        );
        let stored = std::fs::read(dir.path().join("state.db")).unwrap();
        let needle = secret.as_bytes();
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "the secret is not stored"
        );

        let listed = list(&context, &admin()).unwrap();
        assert_eq!(listed, std::slice::from_ref(&created.record));
        let revoked = revoke(&context, &admin(), &created.record.id).unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(
            authenticate(&context, Some(&secret)).unwrap(),
            Err(AuthFailure::Revoked)
        );
        let again = revoke(&context, &admin(), &created.record.id).unwrap_err();
        assert_eq!(crate::error::kind_of(&again), ErrorKind::Conflict);
        let unknown = revoke(&context, &admin(), "tok_000000000000").unwrap_err();
        assert_eq!(crate::error::kind_of(&unknown), ErrorKind::NotFound);
    }

    #[test]
    fn authentication_says_missing_invalid_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let context = Context::for_home(dir.path());
        let created = create(
            &context,
            &admin(),
            "bob@x",
            &[Role::Viewer],
            Some(Duration::from_secs(3600)),
        )
        .unwrap();
        let secret = created.secret.expose();
        assert_eq!(
            authenticate(&context, None).unwrap(),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            authenticate(&context, Some("  ")).unwrap(),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            authenticate(&context, Some("nonsense")).unwrap(),
            Err(AuthFailure::Invalid)
        );
        let unknown = format!("spt_{}", "A".repeat(43));
        assert_eq!(
            authenticate(&context, Some(&unknown)).unwrap(),
            Err(AuthFailure::Invalid)
        );
        assert!(authenticate(&context, Some(secret)).unwrap().is_ok());
        let later = SystemTime::now() + Duration::from_secs(3601);
        assert_eq!(
            authenticate_at(&context, Some(secret), later).unwrap(),
            Err(AuthFailure::Expired)
        );
        for failure in [
            AuthFailure::Missing,
            AuthFailure::Invalid,
            AuthFailure::Revoked,
            AuthFailure::Expired,
        ] {
            assert!(
                failure.to_string().starts_with(failure.as_str()),
                "{failure}"
            );
        }
    }

    #[test]
    fn only_an_admin_manages_tokens_and_bad_requests_are_invalid_input() {
        let dir = tempfile::tempdir().unwrap();
        let context = Context::for_home(dir.path());
        for role in [
            Role::Viewer,
            Role::Developer,
            Role::Deployer,
            Role::Approver,
        ] {
            let caller = Principal::named("u@x", [role]);
            let refused = create(&context, &caller, "x", &[Role::Viewer], None).unwrap_err();
            assert_eq!(
                crate::error::kind_of(&refused),
                ErrorKind::Forbidden,
                "{role:?}"
            );
            assert!(refused.to_string().contains("`admin` role"), "{refused}");
            assert!(list(&context, &caller).is_err());
            assert!(revoke(&context, &caller, "tok_000000000000").is_err());
        }
        for (user, roles) in [
            (" ", &[Role::Viewer][..]),
            ("x", &[][..]),
            ("a\nb", &[Role::Viewer][..]),
        ] {
            let error = create(&context, &admin(), user, roles, None).unwrap_err();
            assert_eq!(
                crate::error::kind_of(&error),
                ErrorKind::InvalidInput,
                "{user:?}"
            );
        }
        assert!(list(&context, &admin()).unwrap().is_empty());
    }

    #[test]
    fn the_first_admin_token_is_written_once_to_a_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let context = Context::for_home(dir.path());
        let path = first_admin_token(&context)
            .unwrap()
            .expect("written on the first start");
        assert_eq!(path, dir.path().join("server/admin-token"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let secret = std::fs::read_to_string(&path).unwrap();
        let who = authenticate(&context, Some(secret.trim()))
            .unwrap()
            .unwrap();
        assert_eq!(who.principal, Principal::named("admin", [Role::Admin]));

        assert_eq!(first_admin_token(&context).unwrap(), None, "never again");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            secret,
            "never overwritten"
        );
        assert_eq!(list(&context, &admin()).unwrap().len(), 1);
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no staged file is left behind");

        // `sandpit doctor` watches it like every other secret.
        assert!(crate::doctor::open_secrets(dir.path()).is_empty());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open: Vec<PathBuf> = crate::doctor::open_secrets(dir.path())
            .into_iter()
            .map(|(path, _)| path)
            .collect();
        assert_eq!(open, [path]);
    }
}
