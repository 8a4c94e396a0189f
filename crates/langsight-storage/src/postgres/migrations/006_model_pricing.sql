-- Token prices per model, with history: a change retires the old row (effective_to) and adds a new one.
CREATE TABLE IF NOT EXISTS model_pricing (
    id                     TEXT    PRIMARY KEY,
    provider               TEXT    NOT NULL,
    model_id               TEXT    NOT NULL,
    display_name           TEXT    NOT NULL,
    input_per_1m_usd       DOUBLE PRECISION NOT NULL,
    output_per_1m_usd      DOUBLE PRECISION NOT NULL,
    cache_read_per_1m_usd  DOUBLE PRECISION NOT NULL,
    thinking_per_1m_usd    DOUBLE PRECISION NOT NULL,
    effective_from         BIGINT NOT NULL,
    effective_to           BIGINT,
    notes                  TEXT,
    is_custom              BOOLEAN NOT NULL
);
CREATE INDEX IF NOT EXISTS model_pricing_by_model ON model_pricing (model_id);
