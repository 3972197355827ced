//! Where a store lives: a SQLite file (the default, `$SANDPIT_HOME/state.db`) or a PostgreSQL
//! database named by a `postgres://` URL, and how that URL is shown (never with its password).

use std::path::{Path, PathBuf};

/// A state store's location.
#[derive(Clone, PartialEq, Eq)]
pub enum StateLocation {
    Sqlite(PathBuf),
    /// `postgres://user:password@host:port/database` (or `postgresql://`). Holds the password:
    /// show it with [`StateLocation`]'s `Display`, which hides it.
    Postgres(String),
}

impl StateLocation {
    /// The default: `state.db` in `home`.
    pub fn in_home(home: &Path) -> StateLocation {
        StateLocation::Sqlite(home.join("state.db"))
    }

    /// `postgres://…` or `postgresql://…` is a PostgreSQL database; anything else a SQLite file
    /// path (relative paths are relative to `base`, the working directory).
    pub fn parse(raw: &str, base: &Path) -> Result<StateLocation, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(
                "the state location is empty; give a `postgres://` URL or a SQLite file path"
                    .into(),
            );
        }
        let lower = raw.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return match raw.parse::<tokio_postgres::Config>() {
                Ok(_) => Ok(StateLocation::Postgres(raw.to_owned())),
                Err(error) => Err(format!(
                    "`{}` is not a PostgreSQL URL ({error}); write it as \
                     postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                    redacted(raw)
                )),
            };
        }
        if lower.contains("://") {
            return Err(format!(
                "`{}` is neither a postgres:// URL nor a file path; the state store is a SQLite \
                 file or a PostgreSQL database",
                redacted(raw)
            ));
        }
        Ok(StateLocation::Sqlite(base.join(raw)))
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            StateLocation::Sqlite(_) => "sqlite",
            StateLocation::Postgres(_) => "postgres",
        }
    }
}

impl std::fmt::Display for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StateLocation::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl std::fmt::Debug for StateLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateLocation({self})")
    }
}

/// The URL with its password (if any) shown as `***`: `postgres://u:***@h/db`. A password
/// given as a `password=` query parameter is hidden too.
pub(crate) fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|index| index + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?'])
        .map_or(url.len(), |index| scheme_end + index);
    let mut shown = match url[scheme_end..authority_end].rfind('@') {
        Some(at) => {
            let at = scheme_end + at;
            match url[scheme_end..at].find(':') {
                Some(colon) => format!("{}***{}", &url[..scheme_end + colon + 1], &url[at..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    };
    if let Some(query) = shown.find('?') {
        let (head, tail) = shown.split_at(query + 1);
        let hidden: Vec<String> = tail
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown = format!("{head}{}", hidden.join("&"));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redacted("postgres://sandpit:s3cret@127.0.0.1:5432/state"),
            "postgres://sandpit:***@127.0.0.1:5432/state"
        );
        assert_eq!(
            redacted("postgres://sandpit@127.0.0.1/state?password=s3cret&sslmode=disable"),
            "postgres://sandpit@127.0.0.1/state?password=***&sslmode=disable"
        );
        assert_eq!(
            redacted("postgres://127.0.0.1/state"),
            "postgres://127.0.0.1/state"
        );
        let location = StateLocation::Postgres("postgres://u:pw@h/db".into());
        assert_eq!(location.to_string(), "postgres://u:***@h/db");
        assert!(!format!("{location:?}").contains("pw"));
    }

    #[test]
    fn urls_are_postgres_and_anything_else_a_sqlite_path() {
        let base = Path::new("/work");
        assert_eq!(
            StateLocation::parse("postgresql://u@h/db", base).unwrap(),
            StateLocation::Postgres("postgresql://u@h/db".into())
        );
        assert_eq!(
            StateLocation::parse("state.db", base).unwrap(),
            StateLocation::Sqlite("/work/state.db".into())
        );
        let error = StateLocation::parse("mysql://u:pw@h/db", base).unwrap_err();
        assert!(error.contains("mysql://u:***@h/db"), "{error}");
        assert!(StateLocation::parse("  ", base).is_err());
    }
}
