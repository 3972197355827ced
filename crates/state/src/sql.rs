//! The SQL layer under the store: one connection, to a SQLite file or a PostgreSQL database,
//! with parameters and rows in the store's own types. Statements are written once, in portable
//! SQL with `?N` placeholders (rewritten to `$N` for PostgreSQL by [`numbered_to_dollar`]);
//! only the schema's DDL differs between the dialects.

use std::ops::Deref;

use crate::postgres::PgClient;

/// A parameter or a column's value, as both dialects store it (booleans are integers 0 and 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Integer(i64),
    Text(String),
    Blob(Vec<u8>),
}

/// Conversion of a Rust value into a parameter.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Integer(*self)
    }
}

impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}

impl ToValue for u16 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}

impl ToValue for u64 {
    fn to_value(&self) -> Value {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Integer(i64::from(*self))
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(value) => value.to_value(),
            None => Value::Null,
        }
    }
}

/// `args![a, b, c]`: the parameters `?1`, `?2`, `?3` of a statement.
macro_rules! args {
    () => {
        &[] as &[$crate::sql::Value]
    };
    ($($value:expr),+ $(,)?) => {
        &[$($crate::sql::ToValue::to_value(&$value)),+] as &[$crate::sql::Value]
    };
}
pub(crate) use args;

/// Conversion of a column's value into a Rust value.
pub(crate) trait FromValue: Sized {
    /// What the column was expected to hold, for the error when it holds something else.
    const EXPECTED: &'static str;
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_value(value: &Value) -> Option<i64> {
        match value {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for u32 {
    const EXPECTED: &'static str = "an integer from 0 to 2^32 - 1";
    fn from_value(value: &Value) -> Option<u32> {
        i64::from_value(value).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromValue for u16 {
    const EXPECTED: &'static str = "an integer from 0 to 65535";
    fn from_value(value: &Value) -> Option<u16> {
        i64::from_value(value).and_then(|i| u16::try_from(i).ok())
    }
}

impl FromValue for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_value(value: &Value) -> Option<u64> {
        i64::from_value(value).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "0 or 1";
    fn from_value(value: &Value) -> Option<bool> {
        i64::from_value(value).map(|i| i != 0)
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<String> {
        match value {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(value: &Value) -> Option<Option<T>> {
        match value {
            Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One row of a result, read by column index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) values: Vec<Value>,
}

impl Row {
    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let value = self.values.get(index).ok_or(DbError::NoColumn { index })?;
        T::from_value(value).ok_or_else(|| DbError::Type {
            index,
            expected: T::EXPECTED,
            found: format!("{value:?}"),
        })
    }
}

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("column {index} holds {found}, expected {expected}")]
    Type {
        index: usize,
        expected: &'static str,
        found: String,
    },
    #[error("the result has no column {index}")]
    NoColumn { index: usize },
    #[error("the query returned no row")]
    NoRow,
    #[error("the connection to PostgreSQL was closed (the server stopped or the network broke)")]
    Closed,
    #[error("{0}")]
    Unsupported(String),
}

/// A PostgreSQL error with the server's own message (`tokio_postgres` shows only "db error").
fn postgres_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    }
}

impl DbError {
    /// SQLite's "database is busy/locked": another process holds the write lock.
    pub(crate) fn is_busy(&self) -> bool {
        matches!(
            self,
            DbError::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
                if matches!(failure.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }

    /// A unique index or primary key refused the row (both dialects).
    pub(crate) fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
                failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(error) => {
                error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }
}

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// One connection to the store's database.
#[derive(Debug)]
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(PgClient),
}

/// The advisory lock every PostgreSQL write transaction takes: writers queue one after another
/// like SQLite's `BEGIN IMMEDIATE`, so a check made inside a transaction (is it still pending?
/// approved by this user already?) holds until it commits, across processes and machines.
pub(crate) const WRITE_LOCK: i64 = 0x5341_4e44_5049_5401; // "SANDPIT" + 1

impl Db {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs one statement; returns how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let changed = statement.execute(rusqlite::params_from_iter(args.iter()))?;
                Ok(u64::try_from(changed).unwrap_or(u64::MAX))
            }
            Db::Postgres(client) => client.execute(sql, args),
        }
    }

    /// Runs one query and returns every row.
    pub(crate) fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Db::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let columns = statement.column_count();
                let mut rows = statement.query(rusqlite::params_from_iter(args.iter()))?;
                let mut all = Vec::new();
                while let Some(row) = rows.next()? {
                    let mut values = Vec::with_capacity(columns);
                    for index in 0..columns {
                        values.push(match row.get_ref(index)? {
                            rusqlite::types::ValueRef::Null => Value::Null,
                            rusqlite::types::ValueRef::Integer(i) => Value::Integer(i),
                            rusqlite::types::ValueRef::Real(r) => {
                                return Err(DbError::Unsupported(format!(
                                    "column {index} holds the real number {r}"
                                )))
                            }
                            rusqlite::types::ValueRef::Text(t) => {
                                Value::Text(String::from_utf8_lossy(t).into_owned())
                            }
                            rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
                        });
                    }
                    all.push(Row { values });
                }
                Ok(all)
            }
            Db::Postgres(client) => client.query(sql, args),
        }
    }

    /// Every row of a query, each read by `read`.
    pub(crate) fn query_map<T>(
        &self,
        sql: &str,
        args: &[Value],
        read: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        self.query(sql, args)?.iter().map(read).collect()
    }

    /// The first row of a query, if any, read by `read`.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        args: &[Value],
        read: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        self.query(sql, args)?.first().map(read).transpose()
    }

    /// The first row of a query, read by `read`; [`DbError::NoRow`] when there is none.
    pub(crate) fn query_row<T>(
        &self,
        sql: &str,
        args: &[Value],
        read: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.query_opt(sql, args, read)?.ok_or(DbError::NoRow)
    }

    /// Runs an `INSERT … RETURNING id` and returns the id.
    pub(crate) fn insert_returning_id(&self, sql: &str, args: &[Value]) -> Result<i64, DbError> {
        self.query_row(sql, args, |row| row.get(0))
    }

    /// Runs statements separated by semicolons, without parameters.
    pub(crate) fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self {
            Db::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Postgres(client) => client.batch(sql),
        }
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (the file's write lock);
    /// `BEGIN` and [`WRITE_LOCK`] on PostgreSQL. Rolled back when dropped uncommitted.
    pub(crate) fn write(&self) -> Result<Tx<'_>, DbError> {
        match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE")?,
            Db::Postgres(_) => self.batch(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})"
            ))?,
        }
        Ok(Tx {
            db: self,
            open: true,
        })
    }
}

/// A write transaction; reads and writes go through it like through the connection.
pub(crate) struct Tx<'a> {
    db: &'a Db,
    open: bool,
}

impl Tx<'_> {
    pub(crate) fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        self.db.batch("COMMIT")
    }
}

impl Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing to do when this fails: the connection is gone and took the transaction.
            let _ = self.db.batch("ROLLBACK");
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Rewrites `?N` placeholders to PostgreSQL's `$N`, leaving string literals, quoted identifiers
/// and comments alone (a `?` in a message stays a `?`).
pub(crate) fn numbered_to_dollar(sql: &str) -> String {
    #[derive(PartialEq)]
    enum In {
        Code,
        Literal,
        Identifier,
        LineComment,
    }
    let mut out = String::with_capacity(sql.len());
    let mut state = In::Code;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            In::Code => match c {
                '\'' => state = In::Literal,
                '"' => state = In::Identifier,
                '-' if chars.peek() == Some(&'-') => state = In::LineComment,
                '?' if chars.peek().is_some_and(char::is_ascii_digit) => {
                    out.push('$');
                    continue;
                }
                _ => {}
            },
            // A doubled quote inside leaves and re-enters: the same state afterwards.
            In::Literal if c == '\'' => state = In::Code,
            In::Identifier if c == '"' => state = In::Code,
            In::LineComment if c == '\n' => state = In::Code,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_dollars_outside_literals_identifiers_and_comments() {
        assert_eq!(
            numbered_to_dollar("SELECT a FROM t WHERE b = ?1 AND (?2 IS NULL OR c = ?2) LIMIT ?10"),
            "SELECT a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $2) LIMIT $10"
        );
        assert_eq!(
            numbered_to_dollar("SELECT 'what?1', 'it''s ?2', \"odd?3\" FROM t WHERE x = ?4"),
            "SELECT 'what?1', 'it''s ?2', \"odd?3\" FROM t WHERE x = $4"
        );
        assert_eq!(
            numbered_to_dollar("SELECT 1 -- why ?1\nWHERE y = ?1 - ?2"),
            "SELECT 1 -- why ?1\nWHERE y = $1 - $2"
        );
        // A bare `?` is not a numbered placeholder.
        assert_eq!(numbered_to_dollar("SELECT '?' || ?"), "SELECT '?' || ?");
    }

    #[test]
    fn rows_convert_to_the_asked_type_or_say_what_they_hold() {
        let row = Row {
            values: vec![
                Value::Integer(7),
                Value::Null,
                Value::Text("x".into()),
                Value::Integer(-1),
            ],
        };
        assert_eq!(row.get::<i64>(0).unwrap(), 7);
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        assert!(matches!(
            row.get::<u32>(3),
            Err(DbError::Type { index: 3, .. })
        ));
        assert!(matches!(
            row.get::<String>(0),
            Err(DbError::Type { index: 0, .. })
        ));
        assert!(matches!(
            row.get::<i64>(9),
            Err(DbError::NoColumn { index: 9 })
        ));
    }
}
