//! `sandpit login --server URL [--token-file F]`: checks a token with the server (whoami) and
//! stores it with the server for this user.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use reqwest::Method;
use sandpit_ops::error::{failure, ErrorKind};
use sandpit_server::wire::Whoami;
use serde::Serialize;

use crate::output;
use crate::remote::{self, Credentials, Remote};
use crate::settings::RemoteSettings;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read the token from FILE (e.g. `$SANDPIT_HOME/server/admin-token`); without it the token
    /// is --token or SANDPIT_TOKEN when given, else read from stdin.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct LoginJson {
    server: String,
    user: String,
    roles: Vec<String>,
    token_id: String,
    credentials: String,
}

pub async fn exec(settings: &RemoteSettings, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let Some(server) = &settings.server else {
        return Err(failure(
            ErrorKind::InvalidInput,
            "which server?\nhint: `sandpit login --server http://HOST:PORT`",
        ));
    };
    let server = remote::server_url(server)?;
    let token = match (&args.token_file, &settings.token) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?,
        (None, Some(token)) => token.clone(),
        (None, None) => {
            if std::io::stdin().is_terminal() {
                eprint!("token for {server}: ");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the token from stdin")?;
            line
        }
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(failure(
            ErrorKind::InvalidInput,
            "no token given\nhint: pipe it in, or pass --token-file FILE",
        ));
    }
    let remote = Remote::new(settings, server.clone(), token.clone())?;
    let me: Whoami = remote
        .call(Method::GET, "/api/v1/whoami", None::<&()>)
        .await?;
    remote::store(
        &settings.credentials,
        &Credentials {
            server: server.clone(),
            token,
        },
    )?;
    if json {
        output::print_json(&LoginJson {
            server,
            user: me.user,
            roles: me.roles,
            token_id: me.token_id,
            credentials: settings.credentials.display().to_string(),
        })?;
    } else {
        println!(
            "logged in to {server} as {} ({}), token {}",
            me.user,
            me.roles.join(", "),
            me.token_id
        );
        println!("credentials: {}", settings.credentials.display());
    }
    Ok(ExitCode::SUCCESS)
}
