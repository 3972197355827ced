//! Passwords that never show up in `Debug`, `Display`, errors or logs.

use std::fmt;
use std::io::Read as _;

/// A password. Printing it in any way shows `***`; [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// 24 random bytes from the kernel, hex-encoded (48 characters, safe in URLs and SQL).
    pub fn generate() -> std::io::Result<Secret> {
        let mut bytes = [0_u8; 24];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(Secret(hex::encode(bytes)))
    }

    /// The password itself, for building connection strings and SQL; never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Displays a `postgres://user:password@host/db` URL with the password replaced by `***`.
#[derive(Debug, Clone, Copy)]
pub struct RedactedUrl<'a>(pub &'a str);

impl fmt::Display for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let Some(scheme_end) = url.find("://").map(|index| index + 3) else {
            return f.write_str(url);
        };
        let authority_end = url[scheme_end..]
            .find('/')
            .map_or(url.len(), |index| scheme_end + index);
        // The last `@` of the authority ends the user info, since `@` in a password is encoded.
        let Some(at) = url[scheme_end..authority_end]
            .rfind('@')
            .map(|index| scheme_end + index)
        else {
            return f.write_str(url);
        };
        match url[scheme_end..at].find(':') {
            Some(colon) => write!(f, "{}***{}", &url[..scheme_end + colon + 1], &url[at..]),
            None => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret} {secret:?}"), "*** ***");
        assert_eq!(secret.expose(), "hunter2");
        let generated = Secret::generate().unwrap();
        assert_eq!(generated.expose().len(), 48);
        assert_ne!(generated, Secret::generate().unwrap());
    }

    #[test]
    fn urls_are_redacted() {
        let cases = [
            (
                "postgres://sandpit_admin:s3cret@127.0.0.1:5432/postgres",
                "postgres://sandpit_admin:***@127.0.0.1:5432/postgres",
            ),
            ("postgres://u:p%40ss@host/db", "postgres://u:***@host/db"),
            ("postgres://u@host/db", "postgres://u@host/db"),
            ("postgres://host/db", "postgres://host/db"),
            ("not a url", "not a url"),
        ];
        for (input, expected) in cases {
            assert_eq!(RedactedUrl(input).to_string(), expected, "{input}");
        }
    }
}
