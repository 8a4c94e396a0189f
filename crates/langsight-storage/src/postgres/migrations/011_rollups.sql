-- Analytics rollups kept at ingest (langsight_core::rollup): per kind (1 hourly, 2 five-minute slot), bucket
-- (epoch hours or slots), project ('' for spans without one) and encoded dims, the merged figures as bytes.
CREATE TABLE rollups (
    kind       SMALLINT NOT NULL,
    bucket     BIGINT   NOT NULL,
    project_id TEXT     NOT NULL,
    dims       TEXT     NOT NULL,
    value      BYTEA    NOT NULL,
    PRIMARY KEY (kind, bucket, project_id, dims)
);

-- Spans stored before rollups existed are folded in the background in seq order: `upto` is the last of
-- them, `after` how far the build came (it resumes from there).
CREATE TABLE rollup_backfill (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    after BIGINT NOT NULL,
    upto  BIGINT NOT NULL,
    done  BIGINT NOT NULL,
    total BIGINT NOT NULL
);
INSERT INTO rollup_backfill (id, after, upto, done, total)
SELECT 1, 0, coalesce(max(seq), 0), 0, count(*) FROM spans;
