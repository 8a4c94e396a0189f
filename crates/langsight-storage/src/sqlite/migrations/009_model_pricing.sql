-- Token prices per model, with history: a change retires the old row (effective_to) and adds a new one.
CREATE TABLE model_pricing (
    id                     TEXT    PRIMARY KEY,
    provider               TEXT    NOT NULL,
    model_id               TEXT    NOT NULL,
    display_name           TEXT    NOT NULL,
    input_per_1m_usd       REAL    NOT NULL,
    output_per_1m_usd      REAL    NOT NULL,
    cache_read_per_1m_usd  REAL    NOT NULL,
    thinking_per_1m_usd    REAL    NOT NULL,
    effective_from         INTEGER NOT NULL,
    effective_to           INTEGER,
    notes                  TEXT,
    is_custom              INTEGER NOT NULL
);
CREATE INDEX model_pricing_by_model ON model_pricing (model_id);
