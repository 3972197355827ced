//! The `sandpit_migrations` table each migrated database keeps: which files were applied, with
//! which checksum, as a migration or as the seed.
//!
//! Its name is always schema-qualified: a migration may change the session's `search_path`.
//! Databases made by older sandpit versions have the table without `kind` (and their seed as an
//! ordinary row); [`bring_forward`] adds the column, and reading copes with either shape.

use tokio_postgres::Client;

use crate::plan::{AppliedMigration, MigrationKind};

/// The table, as sandpit creates it now.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS public.sandpit_migrations (\
                          file text PRIMARY KEY, \
                          checksum text NOT NULL, \
                          applied_at timestamptz NOT NULL DEFAULT now(), \
                          kind text NOT NULL DEFAULT 'migration' \
                              CHECK (kind IN ('migration', 'seed')))";

/// Whether the table exists, and whether it has the `kind` column.
struct Shape {
    exists: bool,
    has_kind: bool,
}

async fn shape(client: &Client) -> Result<Shape, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT t.oid IS NOT NULL, EXISTS (\
                 SELECT 1 FROM pg_attribute a \
                 WHERE a.attrelid = t.oid AND a.attname = 'kind' AND NOT a.attisdropped) \
             FROM (SELECT to_regclass('public.sandpit_migrations')::oid AS oid) t",
            &[],
        )
        .await?;
    Ok(Shape {
        exists: row.get(0),
        has_kind: row.get(1),
    })
}

/// Creates the table in a new database.
pub(crate) async fn create(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute(CREATE).await
}

/// Creates the table where it is missing (a database sandpit did not migrate is treated as
/// having nothing applied) and adds `kind` to an older one. When it adds the column, the row
/// whose file is `seed` (the seed file's name, if the caller's set has one) becomes the seed,
/// as older versions recorded it among the migrations. Run it under the database's lock.
pub(crate) async fn bring_forward(
    client: &mut Client,
    seed: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    let found = shape(client).await?;
    if !found.exists {
        return create(client).await;
    }
    if found.has_kind {
        return Ok(());
    }
    let transaction = client.transaction().await?;
    transaction
        .batch_execute(
            "ALTER TABLE public.sandpit_migrations ADD COLUMN IF NOT EXISTS \
             kind text NOT NULL DEFAULT 'migration' CHECK (kind IN ('migration', 'seed'))",
        )
        .await?;
    if let Some(seed) = seed {
        transaction
            .execute(
                "UPDATE public.sandpit_migrations SET kind = 'seed' WHERE file = $1",
                &[&seed],
            )
            .await?;
    }
    transaction.commit().await
}

/// Every row, oldest first; nothing when the table is missing, and every row a migration when
/// it has no `kind` yet.
pub(crate) async fn read(client: &Client) -> Result<Vec<AppliedMigration>, tokio_postgres::Error> {
    let found = shape(client).await?;
    if !found.exists {
        return Ok(Vec::new());
    }
    let kind = if found.has_kind {
        "kind"
    } else {
        "'migration'::text"
    };
    let rows = client
        .query(
            &format!(
                "SELECT file, checksum, {kind} FROM public.sandpit_migrations \
                 ORDER BY applied_at, file"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| AppliedMigration {
            file: row.get(0),
            checksum: row.get(1),
            kind: MigrationKind::from_column(row.get(2)),
        })
        .collect())
}

/// Records `file` as applied, in the transaction `client` is in.
pub(crate) async fn record(
    client: &Client,
    file: &str,
    checksum: &str,
    kind: MigrationKind,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO public.sandpit_migrations (file, checksum, kind) VALUES ($1, $2, $3)",
            &[&file, &checksum, &kind.as_str()],
        )
        .await
        .map(|_| ())
}
