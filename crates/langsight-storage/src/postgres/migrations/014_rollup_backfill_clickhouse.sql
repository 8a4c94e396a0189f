-- dual mode: spans written to ClickHouse before rollups were kept have `ingested_at = 0` there (the column's
-- value for rows older than it). The backfill folds those that started before `cutoff` — the time rollups were
-- first kept (migration 11) — walking ClickHouse's sort key (project, start, span id) from the cursor, one
-- page per transaction under this row's lock, so it resumes after a restart and workers never fold a page twice.
-- In the other modes the table is unused.
CREATE TABLE rollup_backfill_clickhouse (
    id            SMALLINT PRIMARY KEY CHECK (id = 1),
    cutoff        BIGINT  NOT NULL,
    after_project TEXT,
    after_started BIGINT,
    after_span    TEXT,
    done          BIGINT  NOT NULL DEFAULT 0,
    total         BIGINT,
    finished      BOOLEAN NOT NULL DEFAULT false
);
INSERT INTO rollup_backfill_clickhouse (id, cutoff)
SELECT 1, coalesce((SELECT applied_at FROM langsight_schema WHERE version = 11), 0);
