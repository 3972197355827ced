//! A blocking PostgreSQL connection for the store: a `tokio-postgres` client owned by a thread
//! of its own (with a current-thread runtime), asked over a channel. The store's callers block
//! on the answer as they block on SQLite; unlike the `postgres` crate's client, this works when
//! the caller is itself inside a tokio runtime (the server's handlers).
//!
//! No TLS: the state database is reached on loopback or a private network the operator trusts.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Config, NoTls, Statement};

use crate::sql::{numbered_to_dollar, DbError, Row, Value};

/// How long connecting may take before the store says the server does not answer.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for another writer's transaction (like SQLite's busy timeout).
const LOCK_TIMEOUT_MS: u64 = 30_000;

enum Kind {
    Execute,
    Query,
    Batch,
}

enum Reply {
    Count(u64),
    Rows(Vec<Row>),
    Done,
}

struct Request {
    kind: Kind,
    sql: String,
    args: Vec<Value>,
    reply: std_mpsc::SyncSender<Result<Reply, DbError>>,
}

/// The connection: requests go to its thread, which runs them in order on one session.
#[derive(Debug)]
pub(crate) struct PgClient {
    requests: Option<tokio::sync::mpsc::UnboundedSender<Request>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql)
    }
}

impl PgClient {
    /// Connects to `url` (`postgres://user:password@host:port/database`); errors are the
    /// driver's, for the caller to word without the password.
    pub(crate) fn connect(url: &str) -> Result<PgClient, DbError> {
        let mut config: Config = url.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.options(format!("-c lock_timeout={LOCK_TIMEOUT_MS}"));
        config.application_name("sandpit-state");
        let (requests, mut incoming) = tokio::sync::mpsc::unbounded_channel::<Request>();
        let (connected, outcome) = std_mpsc::sync_channel::<Result<(), DbError>>(1);
        let worker = std::thread::Builder::new()
            .name("sandpit-state-pg".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = connected.send(Err(DbError::Unsupported(format!(
                            "cannot start the PostgreSQL connection's runtime: {error}"
                        ))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let (client, connection) = match config.connect(NoTls).await {
                        Ok(pair) => pair,
                        Err(error) => {
                            let _ = connected.send(Err(error.into()));
                            return;
                        }
                    };
                    let connection = tokio::spawn(connection);
                    let _ = connected.send(Ok(()));
                    let mut statements: HashMap<String, Statement> = HashMap::new();
                    while let Some(request) = incoming.recv().await {
                        let answer = serve(&client, &mut statements, &request).await;
                        let _ = request.reply.send(answer);
                    }
                    drop(client);
                    let _ = connection.await;
                });
            })
            .map_err(|error| {
                DbError::Unsupported(format!(
                    "cannot start the PostgreSQL connection's thread: {error}"
                ))
            })?;
        match outcome.recv() {
            Ok(Ok(())) => Ok(PgClient {
                requests: Some(requests),
                worker: Some(worker),
            }),
            Ok(Err(error)) => {
                let _ = worker.join();
                Err(error)
            }
            Err(_) => {
                let _ = worker.join();
                Err(DbError::Closed)
            }
        }
    }

    fn call(&self, kind: Kind, sql: &str, args: &[Value]) -> Result<Reply, DbError> {
        let (reply, answer) = std_mpsc::sync_channel(1);
        let request = Request {
            kind,
            sql: sql.to_owned(),
            args: args.to_vec(),
            reply,
        };
        self.requests
            .as_ref()
            .ok_or(DbError::Closed)?
            .send(request)
            .map_err(|_| DbError::Closed)?;
        answer.recv().map_err(|_| DbError::Closed)?
    }

    pub(crate) fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, DbError> {
        match self.call(Kind::Execute, sql, args)? {
            Reply::Count(n) => Ok(n),
            _ => Err(DbError::Closed),
        }
    }

    pub(crate) fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, DbError> {
        match self.call(Kind::Query, sql, args)? {
            Reply::Rows(rows) => Ok(rows),
            _ => Err(DbError::Closed),
        }
    }

    pub(crate) fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self.call(Kind::Batch, sql, &[])? {
            Reply::Done => Ok(()),
            _ => Err(DbError::Closed),
        }
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop, which closes the session.
        self.requests = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Runs one request on the session, preparing each distinct statement once.
async fn serve(
    client: &tokio_postgres::Client,
    statements: &mut HashMap<String, Statement>,
    request: &Request,
) -> Result<Reply, DbError> {
    if let Kind::Batch = request.kind {
        client.batch_execute(&request.sql).await?;
        return Ok(Reply::Done);
    }
    let statement = match statements.get(&request.sql) {
        Some(statement) => statement.clone(),
        None => {
            let prepared = client.prepare(&numbered_to_dollar(&request.sql)).await?;
            statements.insert(request.sql.clone(), prepared.clone());
            prepared
        }
    };
    let params: Vec<&(dyn ToSql + Sync)> = request
        .args
        .iter()
        .map(|value| value as &(dyn ToSql + Sync))
        .collect();
    match request.kind {
        Kind::Execute => Ok(Reply::Count(client.execute(&statement, &params).await?)),
        _ => {
            let rows = client.query(&statement, &params).await?;
            rows.iter()
                .map(row_values)
                .collect::<Result<Vec<_>, _>>()
                .map(Reply::Rows)
        }
    }
}

/// A PostgreSQL row as the store's [`Row`]: integers of every width, booleans as 0/1, text.
fn row_values(row: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(index)?.map(Value::Integer)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(index)?
                .map(|i| Value::Integer(i64::from(i)))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(index)?
                .map(|i| Value::Integer(i64::from(i)))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(index)?
                .map(|b| Value::Integer(i64::from(b)))
        } else if matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME) {
            row.try_get::<_, Option<String>>(index)?.map(Value::Text)
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob)
        } else {
            return Err(DbError::Unsupported(format!(
                "column {index} (`{}`) has type {ty}, which the store does not read",
                column.name()
            )));
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row { values })
}

/// A parameter sent as the type PostgreSQL inferred for its placeholder.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut tokio_postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => Err(format!("the integer {i} was given for a parameter of type {ty}").into()),
            },
            Value::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    s.as_str().to_sql(ty, out)
                }
                _ => Err(format!("the text {s:?} was given for a parameter of type {ty}").into()),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(format!("bytes were given for a parameter of type {ty}").into()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests;
