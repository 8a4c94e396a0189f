-- Portable from ClickHouse 18.16 (Debian) to current releases: no DateTime64, TTL, Map, codecs or skip
-- indexes; times are epoch-microsecond Int64, partitions are months (retention drops whole partitions).
CREATE TABLE IF NOT EXISTS {db}.spans (
    span_id String,
    parent_span_id Nullable(String),
    span_type String,
    trace_id Nullable(String),
    session_id Nullable(String),
    server_name String,
    tool_name String,
    started_at Int64,
    ended_at Int64,
    latency_ms Float64,
    status String,
    error Nullable(String),
    agent_name Nullable(String),
    input_json Nullable(String),
    output_json Nullable(String),
    llm_input Nullable(String),
    llm_output Nullable(String),
    replay_of Nullable(String),
    project_id String,
    input_tokens Nullable(Int64),
    output_tokens Nullable(Int64),
    model_id Nullable(String),
    finish_reason Nullable(String),
    cache_read_tokens Nullable(Int64),
    cache_creation_tokens Nullable(Int64),
    thinking_tokens Nullable(Int64),
    target_agent_name Nullable(String),
    lineage_provenance String,
    lineage_status String,
    schema_version String,
    ingested_at Int64 DEFAULT 0
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(started_at, 1000000)))
ORDER BY (project_id, started_at, span_id);

CREATE TABLE IF NOT EXISTS {db}.health_results (
    server_name String,
    project_id String,
    status String,
    latency_ms Nullable(Float64),
    tools_count Int64,
    tools String,
    schema_hash Nullable(String),
    error Nullable(String),
    checked_at Int64
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(checked_at, 1000000)))
ORDER BY (project_id, server_name, checked_at);

CREATE TABLE IF NOT EXISTS {db}.schema_drift_events (
    server_name String,
    project_id String,
    tool_name String,
    drift_type String,
    change_kind String,
    param_name Nullable(String),
    old_value Nullable(String),
    new_value Nullable(String),
    previous_hash String,
    current_hash String,
    has_breaking UInt8,
    detected_at Int64
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(detected_at, 1000000)))
ORDER BY (project_id, server_name, detected_at)
