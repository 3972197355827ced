//! Parsing a store's URL (`s3://bucket/prefix`, `file:///path`) and connecting to it: the
//! endpoint, region and credentials come from settings first (sandpit.toml, config secrets), then
//! from the usual `AWS_*` variables.

use std::fmt;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, S3ConditionalPut, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

/// Why a store URL could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error("`{url}` is not a store URL: {problem}\nhint: write `s3://BUCKET/PREFIX` for an S3-compatible bucket or `file:///ABSOLUTE/PATH` for a directory")]
    Invalid { url: String, problem: String },
    #[error("cannot connect to {location}: {source}\nhint: check the endpoint, region and credentials (`[environments.<env>.artifacts]` in sandpit.toml, the AWS_* variables)")]
    Connect {
        location: String,
        source: Box<object_store::Error>,
    },
}

/// An access key pair. Never printed: `Debug` shows only the key id.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<secret>")
            .finish()
    }
}

/// How to reach an S3-compatible service; every field left `None` falls back to `AWS_*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:3900` (plain HTTP is allowed only when the endpoint says so).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub credentials: Option<Credentials>,
}

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BucketLocation {
    /// `s3://bucket/prefix`: `prefix` without leading or trailing `/`, possibly empty.
    S3 { bucket: String, prefix: String },
    /// `file:///path`: an absolute directory, created when first connected.
    Directory { path: std::path::PathBuf },
}

impl BucketLocation {
    /// Parses `s3://bucket[/prefix]` or `file:///absolute/path`.
    pub fn parse(url: &str) -> Result<BucketLocation, LocationError> {
        let invalid = |problem: &str| LocationError::Invalid {
            url: url.to_owned(),
            problem: problem.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_bucket_name(bucket) {
                return Err(invalid(
                    "a bucket name is 3 to 63 lowercase letters, digits, `-` or `.`, starting and ending with a letter or digit",
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|part| part == "." || part == "..")
                || prefix.contains("//")
                || prefix.chars().any(|c| c.is_control() || c == '\\')
            {
                return Err(invalid(
                    "the prefix must be `/`-separated names without `.`, `..` or empty parts",
                ));
            }
            return Ok(BucketLocation::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            let path = std::path::Path::new(path);
            if !path.is_absolute() {
                return Err(invalid(
                    "a file:// URL needs an absolute path (`file:///srv/store`)",
                ));
            }
            if path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(invalid("the path must not contain `..`"));
            }
            return Ok(BucketLocation::Directory {
                path: path.to_owned(),
            });
        }
        Err(invalid("only `s3://` and `file://` are supported"))
    }

    /// The full key of `relative` under this location's prefix.
    pub fn key(&self, relative: &str) -> ObjectPath {
        let relative = relative.trim_matches('/');
        match self {
            BucketLocation::S3 { prefix, .. } if !prefix.is_empty() => {
                if relative.is_empty() {
                    ObjectPath::from(prefix.as_str())
                } else {
                    ObjectPath::from(format!("{prefix}/{relative}"))
                }
            }
            _ => ObjectPath::from(relative),
        }
    }

    /// `key` relative to this location's prefix; `None` when it is not below it.
    pub fn relative(&self, key: &ObjectPath) -> Option<String> {
        let key = key.as_ref();
        match self {
            BucketLocation::S3 { prefix, .. } if !prefix.is_empty() => key
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .map(str::to_owned),
            _ => Some(key.to_owned()),
        }
    }

    /// Whether two locations are in the same bucket of the same service (a server-side copy
    /// between them is possible) — judged by the URL only; the caller compares endpoints.
    pub fn same_bucket(&self, other: &BucketLocation) -> bool {
        match (self, other) {
            (BucketLocation::S3 { bucket: a, .. }, BucketLocation::S3 { bucket: b, .. }) => a == b,
            (BucketLocation::Directory { .. }, BucketLocation::Directory { .. }) => false,
            _ => false,
        }
    }

    pub(crate) fn connect(
        &self,
        settings: &S3Settings,
    ) -> Result<Arc<dyn ObjectStore>, LocationError> {
        let connect_error = |source| LocationError::Connect {
            location: self.to_string(),
            source: Box::new(source),
        };
        match self {
            BucketLocation::Directory { path } => {
                std::fs::create_dir_all(path).map_err(|error| LocationError::Invalid {
                    url: self.to_string(),
                    problem: format!("cannot create the directory: {error}"),
                })?;
                let store = LocalFileSystem::new_with_prefix(path).map_err(connect_error)?;
                Ok(Arc::new(store))
            }
            BucketLocation::S3 { bucket, .. } => {
                // Create-only writes (`If-None-Match: *`) and create-only copies are opt-in in
                // object_store: without them `PutMode::Create` is refused rather than honoured.
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
                if let Some(endpoint) = &settings.endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                if let Some(region) = &settings.region {
                    builder = builder.with_region(region);
                }
                if let Some(credentials) = &settings.credentials {
                    builder = builder
                        .with_access_key_id(&credentials.access_key_id)
                        .with_secret_access_key(&credentials.secret_access_key);
                    if let Some(token) = &credentials.session_token {
                        builder = builder.with_token(token);
                    }
                }
                Ok(Arc::new(builder.build().map_err(connect_error)?))
            }
        }
    }
}

impl fmt::Display for BucketLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BucketLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            BucketLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            BucketLocation::Directory { path } => write!(f, "file://{}", path.display()),
        }
    }
}

/// S3's bucket naming rules (the subset every S3-compatible server accepts).
fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_or_say_why_not() {
        let s3 = |bucket: &str, prefix: &str| BucketLocation::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        };
        let good: Vec<(&str, BucketLocation)> = vec![
            ("s3://artifacts", s3("artifacts", "")),
            ("s3://artifacts/", s3("artifacts", "")),
            (
                "s3://team-a.prod/orewise/prod/",
                s3("team-a.prod", "orewise/prod"),
            ),
            (
                "file:///srv/stores/prod",
                BucketLocation::Directory {
                    path: "/srv/stores/prod".into(),
                },
            ),
        ];
        for (url, expected) in good {
            assert_eq!(BucketLocation::parse(url).unwrap(), expected, "{url}");
        }
        let bad = [
            ("s3://", "bucket name"),
            ("s3://Upper/x", "bucket name"),
            ("s3://ab", "bucket name"),
            ("s3://-lead", "bucket name"),
            ("s3://ok-bucket/a/../b", "prefix"),
            ("s3://ok-bucket/a//b", "prefix"),
            ("file://relative/path", "absolute"),
            ("file:///srv/../etc", "`..`"),
            ("https://example.invalid/bucket", "only `s3://`"),
            ("/srv/store", "only `s3://`"),
        ];
        for (url, says) in bad {
            let message = BucketLocation::parse(url).unwrap_err().to_string();
            assert!(message.contains(says), "{url}: {message}");
            assert!(message.contains(url), "{url}: {message}");
        }
    }

    #[test]
    fn keys_live_under_the_prefix_and_back() {
        let location = BucketLocation::parse("s3://bucket/team/prod").unwrap();
        let key = location.key("api-abc.zip");
        assert_eq!(key.as_ref(), "team/prod/api-abc.zip");
        assert_eq!(location.relative(&key).as_deref(), Some("api-abc.zip"));
        assert_eq!(
            location.relative(&ObjectPath::from("team/production/x")),
            None
        );
        let bare = BucketLocation::parse("s3://bucket").unwrap();
        assert_eq!(bare.key("/a/b").as_ref(), "a/b");
        assert_eq!(location.to_string(), "s3://bucket/team/prod");
    }

    #[test]
    fn credentials_never_show_their_secret() {
        let credentials = Credentials {
            access_key_id: "GK123".into(),
            secret_access_key: "very-secret".into(),
            session_token: None,
        };
        let shown = format!("{credentials:?}");
        assert!(
            shown.contains("GK123") && !shown.contains("very-secret"),
            "{shown}"
        );
    }
}
