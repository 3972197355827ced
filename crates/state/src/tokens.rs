//! The control plane's API tokens: created once (who, which roles, the sha256 of the secret,
//! when it expires), revoked later by an appended event. The secret itself is never stored.

use crate::sql::{args, Db, DbError, Row};
use serde::Serialize;

use crate::store::{now, Context as _};
use crate::{StateError, StateStore};

/// A token to be recorded by [`StateStore::create_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// `tok_` and 12 lowercase hex digits; public (it names the token in lists and revocations).
    pub id: String,
    /// Who the token speaks for.
    pub user: String,
    /// Role names (`viewer`, `admin`, …), at least one; the store keeps them as given.
    pub roles: Vec<String>,
    /// The sha256 of the secret, 64 lowercase hex digits.
    pub secret_sha256: String,
    /// RFC 3339 UTC; `None` for a token that does not expire. May lie in the past.
    pub expires_at: Option<String>,
    /// Who created it.
    pub created_by: String,
}

/// A recorded token, with what happened to it since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub roles: Vec<String>,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub created_by: String,
    /// When it was revoked, and by whom.
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
}

const TOKEN_SELECT: &str =
    "SELECT t.id, t.\"user\", t.roles, t.created_at, t.expires_at, t.created_by, e.at, e.actor
     FROM tokens t LEFT JOIN token_events e ON e.token_id = t.id AND e.event = 'revoked'";

fn token_from_row(row: &Row) -> Result<Token, DbError> {
    let roles: String = row.get(2)?;
    Ok(Token {
        id: row.get(0)?,
        user: row.get(1)?,
        roles: roles.split(',').map(str::to_owned).collect(),
        created_at: row.get(3)?,
        expires_at: row.get(4)?,
        created_by: row.get(5)?,
        revoked_at: row.get(6)?,
        revoked_by: row.get(7)?,
    })
}

fn validate(new: &NewToken) -> Result<(), StateError> {
    let invalid = |detail: String| Err(StateError::Invalid { detail });
    let id_ok = new.id.strip_prefix("tok_").is_some_and(|hex| {
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if !id_ok {
        return invalid(format!(
            "token id `{}` is not `tok_` and 12 hex digits",
            new.id
        ));
    }
    if new.user.trim().is_empty() || new.created_by.trim().is_empty() {
        return invalid("a token needs a user and a creator".to_owned());
    }
    if new.roles.is_empty()
        || new
            .roles
            .iter()
            .any(|r| r.is_empty() || r.contains(',') || r.trim() != r)
    {
        return invalid(format!(
            "token roles {:?} are not a list of names",
            new.roles
        ));
    }
    let hash_ok = new.secret_sha256.len() == 64
        && new
            .secret_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hash_ok {
        return invalid("a token's secret_sha256 must be 64 lowercase hex digits".to_owned());
    }
    Ok(())
}

impl StateStore {
    /// Records a new token and returns it.
    pub fn create_token(&mut self, new: &NewToken) -> Result<Token, StateError> {
        validate(new)?;
        let context = format!("recording token {}", new.id);
        let tx = self.conn.write().ctx(&context)?;
        tx.execute(
            "INSERT INTO tokens (id, \"user\", roles, secret_sha256, created_at, expires_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                new.id,
                new.user,
                new.roles.join(","),
                new.secret_sha256,
                now(),
                new.expires_at,
                new.created_by
            ],
        )
        .ctx(&context)?;
        let token = token_in(&tx, &new.id)?
            .ok_or_else(|| StateError::TokenNotFound { id: new.id.clone() })?;
        tx.commit().ctx(&context)?;
        Ok(token)
    }

    /// Every token, oldest first, revoked ones included.
    pub fn tokens(&self) -> Result<Vec<Token>, StateError> {
        let context = "listing tokens";
        self.conn
            .query_map(
                &format!("{TOKEN_SELECT} ORDER BY t.created_at, t.id"),
                args![],
                token_from_row,
            )
            .ctx(context)
    }

    /// The token whose secret hashes to `secret_sha256`, revoked or not.
    pub fn token_by_secret_hash(&self, secret_sha256: &str) -> Result<Option<Token>, StateError> {
        self.conn
            .query_opt(
                &format!("{TOKEN_SELECT} WHERE t.secret_sha256 = ?1"),
                args![secret_sha256],
                token_from_row,
            )
            .ctx("looking a token up")
    }

    /// The token `id`, if there is one.
    pub fn token(&self, id: &str) -> Result<Option<Token>, StateError> {
        token_in(&self.conn, id)
    }

    /// Records that `actor` revoked token `id`. Unknown ids are [`StateError::TokenNotFound`];
    /// a token is revoked once, a second time is [`StateError::TokenAlreadyRevoked`].
    pub fn revoke_token(&mut self, id: &str, actor: &str) -> Result<Token, StateError> {
        let context = format!("revoking token {id}");
        let tx = self.conn.write().ctx(&context)?;
        let before =
            token_in(&tx, id)?.ok_or_else(|| StateError::TokenNotFound { id: id.to_owned() })?;
        if let Some(at) = before.revoked_at {
            return Err(StateError::TokenAlreadyRevoked {
                id: id.to_owned(),
                at,
            });
        }
        tx.execute(
            "INSERT INTO token_events (token_id, event, at, actor) VALUES (?1, 'revoked', ?2, ?3)",
            args![id, now(), actor],
        )
        .ctx(&context)?;
        let after =
            token_in(&tx, id)?.ok_or_else(|| StateError::TokenNotFound { id: id.to_owned() })?;
        tx.commit().ctx(&context)?;
        Ok(after)
    }
}

fn token_in(conn: &Db, id: &str) -> Result<Option<Token>, StateError> {
    conn.query_opt(
        &format!("{TOKEN_SELECT} WHERE t.id = ?1"),
        args![id],
        token_from_row,
    )
    .ctx(&format!("reading token {id}"))
}
