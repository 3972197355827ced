-- 001: lab assay results, one row per drill sample (assay-ingest).
--
-- sandpit applies db/migrations/*.sql in file-name order, as an admin, into the
-- environment's template database; every biome's database is a clone of that
-- template, owned by the biome's own role. Never edit a migration that has
-- shipped: add the next numbered file instead.
--
-- The checks repeat assay-ingest's validation.py, so rows written by hand
-- (psql, a data fix) obey the same rules as rows written through the API.
-- ore_type and method cannot be foreign keys: the reference tables live in
-- the shared database (db/shared.sql), and assay-ingest checks codes there.

CREATE TABLE assays (
    sample_id   text PRIMARY KEY
                CHECK (sample_id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    ore_type    text NOT NULL CHECK (ore_type ~ '^[a-z][a-z0-9-]{0,39}$'),
    method      text NOT NULL CHECK (method ~ '^[a-z][a-z0-9-]{0,39}$'),
    au_gpt      double precision NOT NULL CHECK (au_gpt >= 0 AND au_gpt <= 1000),  -- g/t
    cu_pct      double precision NOT NULL CHECK (cu_pct >= 0 AND cu_pct <= 100),   -- %
    received_at timestamptz NOT NULL DEFAULT now()
);

-- GET /assays?ore_type=... and grade-api's blend summary group by ore type.
CREATE INDEX assays_ore_type_idx ON assays (ore_type, received_at);
