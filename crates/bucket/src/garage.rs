//! A single-node Garage (S3-compatible server) on loopback, for tests and benchmarks: started in
//! a temporary directory on free ports, ready when it answers, with buckets and keys made through
//! its own CLI, and killed when dropped. Std only, so any test (sync or async) can use it.

use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Credentials, S3Settings};

/// How long a fresh node may take to answer before the start is reported as failed.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The gap between readiness probes: short, since a local node is usually up within a second.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// The region the S3 API answers for; clients must sign with it.
const REGION: &str = "garage";

/// Why the server could not be found, started or administered.
#[derive(Debug, thiserror::Error)]
pub enum GarageError {
    #[error("no Garage binary at {path}\nhint: run `source scripts/setup.sh` (it installs Garage when missing and exports SANDPIT_GARAGE), or point SANDPIT_GARAGE at a `garage` binary")]
    Missing { path: PathBuf },
    #[error("could not {action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
    #[error("`garage {command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("Garage did not become ready within {timeout:?}; its log ({log}):\n{tail}")]
    NotReady {
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
}

/// What a key may do on a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub read: bool,
    pub write: bool,
    pub owner: bool,
}

impl Permissions {
    pub const READ_WRITE: Permissions = Permissions {
        read: true,
        write: true,
        owner: true,
    };
    pub const READ_ONLY: Permissions = Permissions {
        read: true,
        write: false,
        owner: false,
    };
}

/// A running single-node Garage; killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct GarageServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    s3: SocketAddr,
    child: Option<Child>,
    keys: usize,
}

/// The Garage binary: `SANDPIT_GARAGE`, else where `scripts/setup.sh` installs it.
#[allow(clippy::disallowed_methods)] // the test harness's own tool lookup, not a setting of sandpit
pub fn binary() -> Result<PathBuf, GarageError> {
    let path = match std::env::var_os("SANDPIT_GARAGE") {
        Some(path) => PathBuf::from(path),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            cache.join("sandpit-tools/garage/bin/garage")
        }
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(GarageError::Missing { path })
    }
}

impl GarageServer {
    /// Starts a node with `replication_factor = 1` and sqlite metadata, waits until it answers,
    /// and gives it a layout so buckets can be made at once.
    pub fn start() -> Result<GarageServer, GarageError> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("sp-garage-")
            .tempdir()
            .map_err(|source| io("create a directory for Garage", source))?;
        let s3 = free_address()?;
        let rpc = free_address()?;
        let config = config_text(dir.path(), s3, rpc, &random_hex(32)?);
        std::fs::write(dir.path().join("garage.toml"), config)
            .map_err(|source| io("write garage.toml", source))?;
        let mut server = GarageServer {
            binary,
            dir,
            s3,
            child: None,
            keys: 0,
        };
        server.launch()?;
        let id = server.garage(&["node", "id", "-q"])?;
        let id = id.trim().split('@').next().unwrap_or_default().to_owned();
        server.garage(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])?;
        server.garage(&["layout", "apply", "--version", "1"])?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`, the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    pub fn region(&self) -> &'static str {
        REGION
    }

    /// Settings that reach this server with `credentials`.
    pub fn settings(&self, credentials: &Credentials) -> S3Settings {
        S3Settings {
            endpoint: Some(self.endpoint()),
            region: Some(REGION.to_owned()),
            credentials: Some(credentials.clone()),
        }
    }

    /// Creates bucket `name` (3–63 lowercase letters, digits, `-`) and a key that may read,
    /// write and own it.
    pub fn create_bucket(&mut self, name: &str) -> Result<Credentials, GarageError> {
        self.garage(&["bucket", "create", name])?;
        self.create_key(&[name], Permissions::READ_WRITE)
    }

    /// Creates a key with `permissions` on each of `buckets`.
    pub fn create_key(
        &mut self,
        buckets: &[&str],
        permissions: Permissions,
    ) -> Result<Credentials, GarageError> {
        self.keys += 1;
        let name = format!("key{}", self.keys);
        let output = self.garage(&["key", "create", &name])?;
        let field = |label: &str| {
            output
                .lines()
                .find_map(|line| line.strip_prefix(label))
                .map(|value| value.trim().to_owned())
        };
        let (Some(access_key_id), Some(secret_access_key)) =
            (field("Key ID:"), field("Secret key:"))
        else {
            return Err(GarageError::Command {
                command: format!("key create {name}"),
                output: format!("no `Key ID:`/`Secret key:` lines in:\n{output}"),
            });
        };
        for bucket in buckets {
            let mut args = vec!["bucket", "allow"];
            if permissions.read {
                args.push("--read");
            }
            if permissions.write {
                args.push("--write");
            }
            if permissions.owner {
                args.push("--owner");
            }
            args.extend([bucket, "--key", &name]);
            self.garage(&args)?;
        }
        Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: None,
        })
    }

    /// Kills the server (as a crash would: no graceful shutdown); its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and data, after `stop` (or a crash).
    pub fn restart(&mut self) -> Result<(), GarageError> {
        self.stop();
        self.launch()
    }

    fn launch(&mut self) -> Result<(), GarageError> {
        let log_path = self.dir.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| io("open Garage's log", source))?;
        let log_err = log
            .try_clone()
            .map_err(|source| io("open Garage's log", source))?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| io(&format!("start {}", self.binary.display()), source))?;
        self.child = Some(child);
        self.wait_ready(&log_path)
    }

    /// Ready means the admin RPC answers `status` and the S3 port accepts connections.
    fn wait_ready(&mut self, log_path: &Path) -> Result<(), GarageError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = matches!(
                self.child.as_mut().map(Child::try_wait),
                Some(Ok(Some(_))) | None
            );
            if !exited
                && self.garage(&["status"]).is_ok()
                && TcpStream::connect_timeout(&self.s3, PROBE_INTERVAL).is_ok()
            {
                return Ok(());
            }
            if exited || Instant::now() >= deadline {
                let mut tail = String::new();
                let _ = std::fs::File::open(log_path).and_then(|mut f| f.read_to_string(&mut tail));
                let tail = tail.lines().rev().take(20).collect::<Vec<_>>();
                return Err(GarageError::NotReady {
                    timeout: READY_TIMEOUT,
                    log: log_path.to_owned(),
                    tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                });
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    /// Runs one admin command against this node, returning its stdout.
    fn garage(&self, args: &[&str]) -> Result<String, GarageError> {
        let output = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| io(&format!("run {}", self.binary.display()), source))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(GarageError::Command {
                command: args.join(" "),
                output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
            })
        }
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The node's configuration: everything in `dir`, both ports on loopback.
fn config_text(dir: &Path, s3: SocketAddr, rpc: SocketAddr, secret: &str) -> String {
    format!(
        r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "{rpc}"
rpc_public_addr = "{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "{s3}"
root_domain = ".s3.garage.localhost"
"#,
        dir = dir.display()
    )
}

/// A loopback address nobody listens on right now (the OS picks the port).
fn free_address() -> Result<SocketAddr, GarageError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|source| io("find a free loopback port", source))
}

/// `bytes` random bytes in hex, for the RPC secret (each node gets its own).
fn random_hex(bytes: usize) -> Result<String, GarageError> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .map_err(|source| io("read /dev/urandom", source))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

fn io(action: &str, source: std::io::Error) -> GarageError {
    GarageError::Io {
        action: action.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_everything_in_its_directory_and_on_loopback() {
        let s3: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let rpc: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let text = config_text(Path::new("/tmp/x"), s3, rpc, "ab");
        assert!(text.contains("metadata_dir = \"/tmp/x/meta\""));
        assert!(text.contains("replication_factor = 1"));
        assert!(text.contains("api_bind_addr = \"127.0.0.1:4000\""));
        assert!(text.contains("rpc_bind_addr = \"127.0.0.1:4001\""));
    }
}
