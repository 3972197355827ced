-- 002: a log of grade-api's predictions (POST /predict), one row per answer,
-- so a biome can see what its model version said and for which inputs.
-- `sha` and `reference_version` tie each answer to the exact build and
-- reference data that produced it.

CREATE TABLE blend_runs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    model             text NOT NULL,              -- RECOVERY_MODEL, e.g. recovery-curve-v1
    reference_version text NOT NULL,
    sha               text NOT NULL,              -- grade-api build
    ore_type          text NOT NULL,
    au_gpt            double precision NOT NULL,
    cu_pct            double precision NOT NULL,
    throughput_tph    double precision NOT NULL,
    recovery_pct      double precision NOT NULL
);

CREATE INDEX blend_runs_requested_at_idx ON blend_runs (requested_at);
