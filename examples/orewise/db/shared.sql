-- Reference data shared, read-only, by every biome of an environment.
--
-- sandpit runs this file as an admin in the `orewise_shared` database
-- (public schema); biome roles may only SELECT from it. It is idempotent, so
-- it can run again on every deployment: tables are created if missing and
-- rows are upserted. The values are those of jobs/prepare-data/data/*.csv
-- (change both together).

BEGIN;

CREATE TABLE IF NOT EXISTS ore_types (
    code           text PRIMARY KEY,
    name           text NOT NULL,
    typical_au_gpt double precision NOT NULL,   -- typical head grade, g/t Au
    typical_cu_pct double precision NOT NULL,   -- typical copper, %
    description    text NOT NULL
);

-- detection_limit is in `unit`: g/t for the gold methods, % for four-acid copper.
CREATE TABLE IF NOT EXISTS assay_methods (
    code            text PRIMARY KEY,
    name            text NOT NULL,
    analyte         text NOT NULL,              -- au | cu
    unit            text NOT NULL,              -- g/t | %
    detection_limit double precision NOT NULL,
    description     text NOT NULL
);

-- Coefficients of the recovery curve per model and ore type (see grade-api's recovery.py).
CREATE TABLE IF NOT EXISTS recovery_coefficients (
    model                    text NOT NULL,
    ore_type                 text NOT NULL REFERENCES ore_types (code),
    r_max_pct                double precision NOT NULL,
    k_per_gpt                double precision NOT NULL,
    nominal_tph              double precision NOT NULL,
    tph_penalty_pct_per_100t double precision NOT NULL,
    cu_penalty_pct_per_pct   double precision NOT NULL,
    PRIMARY KEY (model, ore_type)
);

INSERT INTO ore_types (code, name, typical_au_gpt, typical_cu_pct, description) VALUES
    ('oxide',        'Oxide',          1.6, 0.12, 'Weathered near-surface ore; free-milling gold, high leach recovery'),
    ('transitional', 'Transitional',   1.3, 0.35, 'Partly oxidised zone between oxide and fresh rock; variable cyanide-soluble copper'),
    ('sulphide',     'Fresh sulphide', 1.1, 0.55, 'Fresh rock; part of the gold locked in pyrite and arsenopyrite')
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, typical_au_gpt = EXCLUDED.typical_au_gpt,
    typical_cu_pct = EXCLUDED.typical_cu_pct, description = EXCLUDED.description;

INSERT INTO assay_methods (code, name, analyte, unit, detection_limit, description) VALUES
    ('fire-assay',   'Fire assay',         'au', 'g/t', 0.005,  '50 g lead-collection fire assay, AAS finish; total gold'),
    ('photon-assay', 'PhotonAssay',        'au', 'g/t', 0.015,  'Non-destructive gamma-activation assay of a 500 g jar'),
    ('aqua-regia',   'Aqua regia ICP-MS',  'au', 'g/t', 0.001,  'Aqua regia digest, ICP-MS finish; partial for refractory gold'),
    ('four-acid',    'Four-acid ICP-OES',  'cu', '%',   0.0005, 'Four-acid near-total digest, ICP-OES finish')
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, analyte = EXCLUDED.analyte, unit = EXCLUDED.unit,
    detection_limit = EXCLUDED.detection_limit, description = EXCLUDED.description;

INSERT INTO recovery_coefficients (model, ore_type, r_max_pct, k_per_gpt, nominal_tph,
                                   tph_penalty_pct_per_100t, cu_penalty_pct_per_pct) VALUES
    ('recovery-curve-v1', 'oxide',        92.0, 2.8, 450, 1.5, 2.0),
    ('recovery-curve-v1', 'transitional', 86.0, 2.2, 420, 2.0, 4.0),
    ('recovery-curve-v1', 'sulphide',     79.0, 2.0, 400, 2.5, 5.0)
ON CONFLICT (model, ore_type) DO UPDATE SET r_max_pct = EXCLUDED.r_max_pct, k_per_gpt = EXCLUDED.k_per_gpt,
    nominal_tph = EXCLUDED.nominal_tph, tph_penalty_pct_per_100t = EXCLUDED.tph_penalty_pct_per_100t,
    cu_penalty_pct_per_pct = EXCLUDED.cu_penalty_pct_per_pct;

COMMIT;
