//! `sandpit tokens create|list|revoke`: the control plane's API tokens, through the server.

use std::process::ExitCode;

use reqwest::Method;
use sandpit_ops::principal::Role;
use sandpit_server::wire::{CreateTokenRequest, CreatedToken, Token, TokenList};

use crate::output::{self, Align, Table};
use crate::remote::Remote;
use crate::settings::RemoteSettings;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create a token for USER and print its secret, the only time it is shown.
    Create {
        /// Who the token speaks for, e.g. alice@example.com.
        user: String,
        /// Its roles, comma-separated: viewer, developer, deployer, approver, admin.
        #[arg(long = "role", value_name = "ROLE[,ROLE…]", value_delimiter = ',', required = true, value_parser = parse_role)]
        roles: Vec<Role>,
        /// How long it is valid, e.g. 30d, 12h, 90m (default: it does not expire).
        #[arg(long, value_name = "DURATION", value_parser = parse_expiry)]
        expires: Option<String>,
    },
    /// List every token, revoked ones too (never their secrets).
    List,
    /// Revoke a token: every request with it is refused from now on.
    Revoke {
        /// The token's id, `tok_…` (`sandpit tokens list` shows them).
        id: String,
    },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw)
}

fn parse_expiry(raw: &str) -> Result<String, String> {
    sandpit_ops::tokens::parse_expiry(raw)
        .map(|_| raw.trim().to_owned())
        .map_err(|e| e.to_string().replace("\nhint: ", "; "))
}

pub async fn exec(settings: &RemoteSettings, args: Args, json: bool) -> anyhow::Result<ExitCode> {
    let remote = Remote::from_settings(settings)?;
    match args.action {
        Action::Create {
            user,
            roles,
            expires,
        } => {
            let request = CreateTokenRequest {
                user,
                roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
                expires_in: expires,
            };
            let created: CreatedToken = remote
                .call(Method::POST, "/api/v1/tokens", Some(&request))
                .await?;
            if json {
                output::print_json(&created)?;
            } else {
                eprintln!(
                    "created {} for {} ({}), {}",
                    created.id,
                    created.user,
                    created.roles.join(", "),
                    match &created.expires_at {
                        Some(at) => format!("expires {at}"),
                        None => "does not expire".to_owned(),
                    }
                );
                eprintln!("its secret, shown this once (only its hash is kept):");
                println!("{}", created.secret);
            }
        }
        Action::List => {
            let list: TokenList = remote
                .call(Method::GET, "/api/v1/tokens", None::<&()>)
                .await?;
            if json {
                output::print_json(&list)?;
            } else {
                let mut table = Table::new(&[
                    ("ID", Align::Left),
                    ("USER", Align::Left),
                    ("ROLES", Align::Left),
                    ("CREATED", Align::Left),
                    ("EXPIRES", Align::Left),
                    ("REVOKED", Align::Left),
                ]);
                for token in &list.tokens {
                    table.row(vec![
                        token.id.clone(),
                        token.user.clone(),
                        token.roles.join(","),
                        token.created_at.clone(),
                        token.expires_at.clone().unwrap_or_else(|| "-".to_owned()),
                        token.revoked_at.clone().unwrap_or_else(|| "-".to_owned()),
                    ]);
                }
                table.print();
            }
        }
        Action::Revoke { id } => {
            let path = format!("/api/v1/tokens/{}", percent_encode_segment(&id));
            let token: Token = remote.call(Method::DELETE, &path, None::<&()>).await?;
            if json {
                output::print_json(&token)?;
            } else {
                println!("revoked {} ({})", token.id, token.user);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `id` as one path segment: anything but letters, digits, `_` and `-` escaped.
fn percent_encode_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
