-- Sample data every new biome starts with (run once, after the migrations,
-- into the template database). Drill hole DH-001 crosses all three ore
-- zones; grades are in the range of ore_types' typical head grades.

INSERT INTO assays (sample_id, ore_type, method, au_gpt, cu_pct, received_at) VALUES
    ('DH-001-4.0',  'oxide',        'fire-assay',   1.74, 0.10, '2024-03-04 08:15:00+00'),
    ('DH-001-8.0',  'oxide',        'fire-assay',   1.52, 0.14, '2024-03-04 08:15:00+00'),
    ('DH-001-22.5', 'transitional', 'fire-assay',   1.31, 0.33, '2024-03-04 08:16:00+00'),
    ('DH-001-30.0', 'transitional', 'photon-assay', 1.18, 0.41, '2024-03-05 09:02:00+00'),
    ('DH-001-48.5', 'sulphide',     'fire-assay',   1.06, 0.58, '2024-03-05 09:03:00+00'),
    ('DH-001-61.0', 'sulphide',     'photon-assay', 0.97, 0.52, '2024-03-05 09:03:00+00');
