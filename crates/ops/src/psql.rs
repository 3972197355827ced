//! `sandpit psql [BIOME] [-- ARGS…]`: PostgreSQL's `psql` connected to the biome's own database,
//! as its components reach it (`DATABASE_URL` from the same environment).
//!
//! The connection goes to psql as libpq's `PG*` variables, the password in `PGPASSWORD`: never
//! on its command line, which anyone on the machine can read in `/proc/<pid>/cmdline`. psql's own
//! arguments are passed through untouched.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use tokio_postgres::config::Host;

use crate::Context;

/// Runs psql on the biome's database; answers psql's exit code.
/// Local only, like `exec`: a commit source (a server) is refused.
pub async fn psql(context: &Context, biome: Option<&str>, args: &[String]) -> anyhow::Result<u8> {
    let dir = context.source.checkout_dir("psql")?;
    let env = crate::env::environment(context, biome, None).await?;
    let biome = &env.status.biome;
    let url = match (&env.status.database, env.vars.get("DATABASE_URL")) {
        (Some(_), Some(url)) => url.clone(),
        (Some(_), None) => bail!(
            "`{}` of biome `{biome}` was not given a DATABASE_URL\nhint: `sandpit up {biome}` gives it one",
            env.component
        ),
        (None, _) => bail!(
            "biome `{biome}` has no database\nhint: declare a `[database]` in sandpit.toml (see `sandpit init`), then `sandpit up {biome}`"
        ),
    };
    let Some(psql) = crate::exec::find_program(context, dir, "psql") else {
        bail!(
            "cannot run `psql`: it is not {}\nhint: install PostgreSQL's client (`apt-get install -y postgresql-client` on Debian and Ubuntu); run `sandpit doctor` to see what else is missing",
            crate::exec::where_looked(context, dir, "psql")
        );
    };
    let mut vars = crate::exec::foreground_env(context, env.vars);
    // These would take precedence over the variables below, or add to them.
    for overriding in ["PGHOSTADDR", "PGSERVICE", "PGSERVICEFILE"] {
        vars.remove(overriding);
    }
    vars.extend(
        libpq_env(&url).with_context(|| {
            format!("the DATABASE_URL of biome `{biome}` is not a PostgreSQL URL")
        })?,
    );
    crate::exec::run_foreground(dir, &psql, args, &vars).await
}

/// A libpq URL (`postgres://role:password@host:port/database`) as the `PG*` variables libpq
/// reads when psql is given no connection arguments.
fn libpq_env(url: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| anyhow::anyhow!("{e}"))?;
    let mut vars = BTreeMap::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        vars.insert("PGHOST".to_owned(), hosts.join(","));
    }
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    if !ports.is_empty() {
        vars.insert("PGPORT".to_owned(), ports.join(","));
    }
    if let Some(user) = config.get_user() {
        vars.insert("PGUSER".to_owned(), user.to_owned());
    }
    if let Some(password) = config.get_password() {
        let password = String::from_utf8(password.to_vec())
            .map_err(|_| anyhow::anyhow!("its password is not UTF-8"))?;
        vars.insert("PGPASSWORD".to_owned(), password);
    }
    if let Some(database) = config.get_dbname() {
        vars.insert("PGDATABASE".to_owned(), database.to_owned());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_becomes_libpq_variables() {
        // (URL, expected PG* variables as NAME=value)
        let cases: &[(&str, &[&str])] = &[
            (
                "postgres://geo_alice:hunter2@127.0.0.1:5432/geo_alice",
                &[
                    "PGDATABASE=geo_alice",
                    "PGHOST=127.0.0.1",
                    "PGPASSWORD=hunter2",
                    "PGPORT=5432",
                    "PGUSER=geo_alice",
                ],
            ),
            // What `libpq_url` percent-encodes comes back decoded.
            (
                "postgresql://a%40b:p%2Fw%3Ad@db.example:6543/my%20db",
                &[
                    "PGDATABASE=my db",
                    "PGHOST=db.example",
                    "PGPASSWORD=p/w:d",
                    "PGPORT=6543",
                    "PGUSER=a@b",
                ],
            ),
            // libpq's default port is written out.
            (
                "postgres://localhost/db",
                &["PGDATABASE=db", "PGHOST=localhost", "PGPORT=5432"],
            ),
        ];
        for (url, expected) in cases {
            let vars = libpq_env(url).unwrap();
            let shown: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
            assert_eq!(shown, *expected, "{url}");
        }
        assert!(libpq_env("mysql://x@y/z").is_err());
    }
}
