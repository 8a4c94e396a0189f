-- Analytics rollups kept at ingest (langsight_core::rollup): per kind (1 hourly, 2 five-minute slot), bucket
-- (epoch hours or slots), project ('' for spans without one) and encoded dims, the merged figures as a blob.
CREATE TABLE rollups (
    kind       INTEGER NOT NULL,
    bucket     INTEGER NOT NULL,
    project_id TEXT    NOT NULL,
    dims       TEXT    NOT NULL,
    value      BLOB    NOT NULL
);
CREATE UNIQUE INDEX rollups_key ON rollups (kind, bucket, project_id, dims);

-- The spans stored before rollups existed are folded in the background, in seq order, after this
-- migration: `upto` is the last of them, `after` how far the build came (it resumes from there).
CREATE TABLE rollup_backfill (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    after INTEGER NOT NULL,
    upto  INTEGER NOT NULL,
    done  INTEGER NOT NULL,
    total INTEGER NOT NULL
);
INSERT INTO rollup_backfill (id, after, upto, done, total)
SELECT 1, 0, coalesce(max(seq), 0), 0, count(*) FROM spans;
