//! Records the storage traits take and return.

use langsight_core::health::HealthTag;
use langsight_core::session::SessionRollup;
use langsight_core::time::Micros;

/// What an ingest changed, for the steps after commit (alerts, events).
#[derive(Debug, Default, Clone)]
pub struct IngestOutcome {
    pub accepted: usize,
    pub sessions: Vec<SessionTagUpdate>,
}

/// A session touched by an ingest, with its stored tag before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionTagUpdate {
    pub project_id: String,
    pub session_id: String,
    pub previous: Option<HealthTag>,
    pub current: HealthTag,
}

#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    /// `None` = all projects (admin view).
    pub project_id: Option<String>,
    /// Sessions whose last span ended at or after this time.
    pub active_since: Micros,
    pub agent_name: Option<String>,
    pub health_tag: Option<HealthTag>,
    /// Only failed (`Some(true)`: a health tag other than `success`) or clean sessions (`Some(false)`).
    pub failed: Option<bool>,
    /// Case-insensitive text that the session id or the agent name contains. With a search or a sort other
    /// than the default, only the newest [`MAX_SESSIONS_SCANNED`] sessions of the window are considered.
    pub search: Option<String>,
    pub sort: SessionSort,
    /// Ascending instead of the default descending order.
    pub ascending: bool,
    /// Rows skipped before the first returned (offset paging).
    pub offset: usize,
    pub limit: usize,
}

/// The most sessions a search or a non-default sort looks at: the newest of the window, read in index order,
/// so the cost of a request has a bound whatever the window holds.
pub const MAX_SESSIONS_SCANNED: usize = 10_000;

/// What the sessions list is ordered by. Every key is a column of the sessions table (no rollup parsing);
/// ties are broken by the start time, newest first, then the session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionSort {
    /// `first_call_at`: the default, read straight from the start-time index.
    #[default]
    Started,
    Ended,
    Duration,
    Spans,
    Tokens,
    /// By severity: success, success with fallback, incomplete, then the failures (loops worst).
    Health,
    Session,
    Agent,
}

impl SessionSort {
    pub const ALL: [(&'static str, SessionSort); 8] = [
        ("started", SessionSort::Started),
        ("ended", SessionSort::Ended),
        ("duration", SessionSort::Duration),
        ("spans", SessionSort::Spans),
        ("tokens", SessionSort::Tokens),
        ("health", SessionSort::Health),
        ("session", SessionSort::Session),
        ("agent", SessionSort::Agent),
    ];

    pub fn parse(s: &str) -> Option<SessionSort> {
        SessionSort::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    /// The SQL expression (the same text on SQLite and PostgreSQL) over the sessions table's columns.
    pub fn sql(self) -> &'static str {
        match self {
            SessionSort::Started => "first_call_at",
            SessionSort::Ended => "last_call_at",
            SessionSort::Duration => "(last_call_at - first_call_at)",
            SessionSort::Spans => "span_count",
            SessionSort::Tokens => "(coalesce(input_tokens, 0) + coalesce(output_tokens, 0))",
            SessionSort::Health => {
                "(CASE health_tag WHEN 'success' THEN 1 WHEN 'success_with_fallback' THEN 2 \
                 WHEN 'incomplete' THEN 3 WHEN 'schema_drift' THEN 4 WHEN 'timeout' THEN 5 WHEN 'tool_failure' THEN 6 \
                 WHEN 'circuit_breaker_open' THEN 7 WHEN 'budget_exceeded' THEN 8 WHEN 'loop_detected' THEN 9 ELSE 0 END)"
            }
            SessionSort::Session => "session_id",
            SessionSort::Agent => "coalesce(agent_name, '')",
        }
    }
}

impl SessionQuery {
    /// The common request — no search, newest first — which reads the start-time index in order.
    pub fn is_plain(&self) -> bool {
        self.needle().is_none() && self.sort == SessionSort::Started && !self.ascending
    }

    /// The search text, lower-cased, for a `contains` test on lower-cased columns.
    pub fn needle(&self) -> Option<String> {
        self.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase)
    }
}

/// How many sessions match a query's filters and search, and how many of them failed (see
/// [`SessionQuery::failed`]); both over at most [`MAX_SESSIONS_SCANNED`] sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub total: u64,
    pub failed: u64,
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub project_id: String,
    pub session_id: String,
    pub rollup: SessionRollup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    Admin,
    Viewer,
}

impl KeyRole {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Admin => "admin",
            KeyRole::Viewer => "viewer",
        }
    }
    pub fn parse(s: &str) -> Option<KeyRole> {
        match s {
            "admin" => Some(KeyRole::Admin),
            "viewer" => Some(KeyRole::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub role: KeyRole,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub key_prefix: String,
    pub role: KeyRole,
    pub user_id: Option<String>,
    pub project_id: Option<String>,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
    pub last_used_at: Option<Micros>,
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_by: String,
    pub created_at: Micros,
    /// Added as the project's owner when set (a real user).
    pub owner_member: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_by: String,
    pub created_at: Micros,
    pub member_count: u64,
}

/// One stored MCP health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRecord {
    pub server_name: String,
    /// `""` for servers from the operator's YAML.
    pub project_id: String,
    pub status: String,
    pub latency_ms: Option<f64>,
    pub tools_count: i64,
    /// JSON array of `{name, description, input_schema}`.
    pub tools_json: String,
    pub schema_hash: Option<String>,
    pub error: Option<String>,
    pub checked_at: Micros,
}

/// One schema change of one drift event.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRecord {
    pub server_name: String,
    pub project_id: String,
    pub tool_name: String,
    pub drift_type: String,
    pub change_kind: String,
    pub param_name: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub previous_hash: String,
    pub current_hash: String,
    pub has_breaking: bool,
    pub detected_at: Micros,
}

/// Tool calls per MCP server over a window (`/api/health/servers/invocations`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerInvocations {
    pub server_name: String,
    pub last_called_at: Micros,
    pub last_call_status: String,
    pub total_calls: i64,
    pub success_calls: i64,
}

/// An MCP server's metadata, as managed through `/api/servers/metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMetadata {
    pub id: String,
    /// `""` when saved without a project.
    pub project_id: String,
    pub server_name: String,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    /// `stdio`, `sse`, `streamable_http` or empty (unknown).
    pub transport: String,
    /// Empty when the server has no URL (stdio, or not known).
    pub url: String,
    pub runbook_url: String,
    pub created_at: Micros,
    pub updated_at: Micros,
    /// When spans first and last named this server in a tool call (server clock, registered at ingest; the
    /// last sighting is refreshed about once a minute). `None` for a server no span has named yet.
    pub first_seen_at: Option<Micros>,
    pub last_seen_at: Option<Micros>,
}

/// A tool an agent saw on a server (the SDK's tool capture).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTool {
    pub server_name: String,
    pub tool_name: String,
    pub description: String,
    /// JSON object text.
    pub input_schema: String,
    pub first_seen_at: Micros,
    pub last_seen_at: Micros,
}

/// One alert in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredAlert {
    pub id: String,
    /// `""` for alerts about the operator's servers (visible in every project).
    pub project_id: String,
    pub alert_type: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    pub server_name: String,
    pub session_id: Option<String>,
    pub title: String,
    pub message: String,
    pub fired_at: Micros,
    /// `active`, `acked`, `snoozed` or `resolved`.
    pub status: String,
    pub acked_at: Option<Micros>,
    pub acked_by: Option<String>,
    pub snoozed_until: Option<Micros>,
    pub resolved_at: Option<Micros>,
}

/// Which alerts an inbox read returns.
#[derive(Debug, Clone)]
pub struct AlertQuery {
    /// The project's alerts plus global ones; `None` = every project's (an admin's global view).
    pub project_id: Option<String>,
    /// `None` or `all` = any status; `snoozed` means still snoozed at `now`.
    pub status: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub now: Micros,
    /// Only these alert types; empty = every type.
    pub alert_types: Vec<String>,
}

/// A change of an alert's state.
#[derive(Debug, Clone)]
pub enum AlertAction {
    Ack { by: String },
    Resolve,
    Snooze { until: Micros },
}

/// The per-project alert settings; `None` fields mean "not set here".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertConfig {
    pub slack_webhook: Option<String>,
    pub webhook_url: Option<String>,
    /// Toggles by alert kind; a missing kind is on.
    pub alert_types: std::collections::BTreeMap<String, bool>,
}

/// The outcome of delivering one alert to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub alert_id: String,
    /// `slack` or `webhook`.
    pub channel: String,
    /// `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub at: Micros,
}

/// A service-level objective on an agent's sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub id: String,
    pub project_id: String,
    pub agent_name: String,
    /// `success_rate` (percent of sessions without failed calls) or `latency_p99` (ms).
    pub metric: String,
    pub target: f64,
    pub window_hours: i64,
    pub created_at: Micros,
}

/// Tool calls of one (project, server, tool) in one hour.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolHour {
    pub project_id: String,
    pub server_name: String,
    pub tool_name: String,
    /// Epoch hours.
    pub hour: i64,
    pub calls: i64,
    pub errors: i64,
    pub latency_sum_ms: f64,
}

/// A dashboard user.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    /// Lower-cased.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `admin` or `viewer`.
    pub role: String,
    pub active: bool,
    pub created_at: Micros,
    pub last_login_at: Option<Micros>,
}

/// An invitation (only the token's hash is stored).
#[derive(Debug, Clone, PartialEq)]
pub struct Invite {
    pub token_hash: String,
    pub email: String,
    pub role: String,
    pub created_by: Option<String>,
    pub created_at: Micros,
    pub expires_at: Micros,
    pub used_at: Option<Micros>,
}

/// What accepting an invitation did.
#[derive(Debug, Clone, PartialEq)]
pub enum AcceptInvite {
    Created(User),
    Unknown,
    Used,
    Expired,
    EmailTaken,
}

/// The lockout policy: `max_failures` within `window` lock the account for `lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub window_micros: Micros,
    pub lock_micros: Micros,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: i64,
    pub at: Micros,
    pub event: String,
    pub user_id: String,
    pub ip: String,
    /// JSON object text.
    pub details: String,
    pub project_id: String,
}

/// A project membership.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub user_id: String,
    pub role: String,
    pub added_by: Option<String>,
    pub added_at: Micros,
}

/// Which sessions [`crate::SpanStore::session_costs`] ranks: of those active since `active_since` (in one
/// project, or all), the `read` most recently started that name a model; priced by `prices`, the `top`
/// costliest are returned, costliest first (ties by session id).
#[derive(Debug, Clone, PartialEq)]
pub struct CostRankQuery {
    pub project_id: Option<String>,
    pub active_since: i64,
    pub read: usize,
    pub top: usize,
    /// One row per model id as stored in sessions (a model without a row is not priced, and its sessions are
    /// not ranked).
    pub prices: Vec<TokenPrice>,
}

/// USD per million tokens of one model id. The store ranks by
/// `input / 1e6 × input_per_1m + output / 1e6 × output_per_1m + thinking / 1e6 × thinking_per_1m` in double
/// precision, missing token figures counting as 0 — the formula the server prices with.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPrice {
    pub model_id: String,
    pub input_per_1m: f64,
    pub output_per_1m: f64,
    pub thinking_per_1m: f64,
}

/// The sessions active in a window of one agent (the session's own `agent_name`) and model: what the dashboard's
/// per-agent figures add up, priced by model in the server.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSessions {
    pub agent_name: Option<String>,
    pub model_id: Option<String>,
    pub sessions: i64,
    /// Sessions whose health tag is not `success` (the sessions list's "failed").
    pub failed: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub thinking_tokens: i64,
    pub last_call_at: i64,
}

/// A session's token figures (from its rollup), for ranking sessions by cost.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCost {
    pub session_id: String,
    pub agent_name: Option<String>,
    pub model_id: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub thinking_tokens: Option<i64>,
    pub span_count: i64,
}

/// Which rollup rows [`crate::SpanStore::rollups`] returns: one kind, buckets in `[since, until)`, of one
/// project (with or without the rows of spans sent without one) or of all.
#[derive(Debug, Clone)]
pub struct RollupQuery {
    pub kind: langsight_core::rollup::RollupKind,
    pub project_id: Option<String>,
    pub include_global: bool,
    pub since: i64,
    pub until: i64,
}

/// One stored rollup row, still encoded (the server decodes and merges).
#[derive(Debug, Clone, PartialEq)]
pub struct RollupRow {
    /// `""` for spans sent without a project.
    pub project_id: String,
    pub bucket: i64,
    pub dims: String,
    pub value: Vec<u8>,
}

/// How far the build of rollups for spans stored before the upgrade has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackfillProgress {
    /// Spans folded by this call.
    pub spans: u64,
    /// Spans of the backlog folded so far, and the backlog's size.
    pub done: u64,
    pub total: u64,
}

/// The rollup view of a span fact (used to build rollups for spans stored before they existed).
pub fn fact_view(f: &SpanFact) -> langsight_core::rollup::SpanView<'_> {
    langsight_core::rollup::SpanView {
        project: f.project_id.as_deref().unwrap_or(""),
        started_at: f.started_at,
        span_type: f.span_type,
        status: f.status,
        agent: f.agent_name.as_deref(),
        server: &f.server_name,
        tool: &f.tool_name,
        model: f.model_id.as_deref(),
        input_tokens: f.input_tokens,
        output_tokens: f.output_tokens,
        thinking_tokens: f.thinking_tokens,
        latency_ms: f.latency_ms,
        error: f.error.as_deref(),
        session: f.session_id.as_deref(),
        target: f.target_agent_name.as_deref(),
    }
}

/// (project, server, tool, epoch hour) of the hourly tool aggregates.
pub type HourKey<'a> = (&'a str, &'a str, &'a str, i64);

/// A batch's tool calls grouped per [`HourKey`] into (calls, errors, latency sum), in key order (a fixed lock
/// order for backends that upsert concurrently). Every backend folds these into its hourly aggregates.
pub fn tool_hour_groups(
    spans: &[langsight_core::span::Span],
) -> std::collections::BTreeMap<HourKey<'_>, (i64, i64, f64)> {
    use langsight_core::span::{SpanStatus, SpanType};
    let mut groups: std::collections::BTreeMap<HourKey, (i64, i64, f64)> = Default::default();
    for s in spans.iter().filter(|s| s.span_type == SpanType::ToolCall) {
        let key = (
            s.project().unwrap_or(""),
            s.server_name.as_str(),
            s.tool_name.as_str(),
            s.started_at.div_euclid(3_600_000_000),
        );
        let g = groups.entry(key).or_default();
        g.0 += 1;
        g.1 += i64::from(s.status != SpanStatus::Success);
        g.2 += s.latency_ms;
    }
    groups
}

/// One span reduced to what the analytics read (costs, monitoring, reliability, lineage), so a window of spans
/// can be folded in Rust the same way whatever the backend.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanFact {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub span_type: langsight_core::span::SpanType,
    pub session_id: Option<String>,
    pub server_name: String,
    pub tool_name: String,
    pub agent_name: Option<String>,
    pub target_agent_name: Option<String>,
    pub started_at: i64,
    pub ended_at: i64,
    pub latency_ms: f64,
    pub status: langsight_core::span::SpanStatus,
    /// The first [`FACT_ERROR_CHARS`] characters of the error: enough to categorise it.
    pub error: Option<String>,
    pub model_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub thinking_tokens: Option<i64>,
    pub explicit_lineage: bool,
    /// `None` for spans sent without a project.
    pub project_id: Option<String>,
    /// This fact's place in the paging order (see [`FactQuery::after`]).
    pub cursor: FactCursor,
}

/// Characters of a span's error kept in a [`SpanFact`].
pub const FACT_ERROR_CHARS: usize = 300;

/// Which spans [`crate::SpanStore::span_facts`] returns: started in `[since, until)`, of one project (with or
/// without the unscoped spans) or of all.
#[derive(Debug, Clone)]
pub struct FactQuery {
    pub project_id: Option<String>,
    pub include_global: bool,
    pub since: i64,
    pub until: i64,
    /// Continue after this fact (the last one of the previous page): facts come ordered by start time (SQLite:
    /// by start second, the grain of its time index) and a backend-specific tie-breaker, so a window of any size
    /// is read in bounded pages.
    pub after: Option<FactCursor>,
    /// Facts per page at most.
    pub limit: usize,
}

/// Where a page of facts ended: the last fact's start time and its backend tie-breaker (a row number, or the
/// span id where rows have none).
#[derive(Debug, Clone, PartialEq)]
pub struct FactCursor {
    pub started_at: i64,
    pub tiebreak: String,
}

/// A model's token prices (USD per million tokens), valid from `effective_from` until `effective_to`: a price
/// change retires the old row and adds a new one, so history is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    pub id: String,
    pub provider: String,
    pub model_id: String,
    pub display_name: String,
    pub input_per_1m_usd: f64,
    pub output_per_1m_usd: f64,
    pub cache_read_per_1m_usd: f64,
    pub thinking_per_1m_usd: f64,
    pub effective_from: i64,
    pub effective_to: Option<i64>,
    pub notes: Option<String>,
    pub is_custom: bool,
}

/// Descriptive metadata about an agent, per project (`""` when saved without one).
#[derive(Debug, Clone, PartialEq)]
pub struct AgentMetadata {
    pub id: String,
    pub project_id: String,
    pub agent_name: String,
    pub description: String,
    pub owner: String,
    pub tags: Vec<String>,
    /// `active`, `deprecated` or `experimental`.
    pub status: String,
    pub runbook_url: String,
    pub created_at: Micros,
    pub updated_at: Micros,
    /// When spans first and last named this agent (server clock, registered at ingest; the last sighting is
    /// refreshed about once a minute). `None` for an agent no span has named yet.
    pub first_seen_at: Option<Micros>,
    pub last_seen_at: Option<Micros>,
}

/// Names one project's spans carried, for the catalog (agents and the servers of tool calls). Recording a
/// sighting creates missing entries with empty metadata and moves first/last seen; it never touches what a
/// user edited (description, owner, tags, status, URLs, `updated_at`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogSighting {
    /// `""` for spans without a project.
    pub project_id: String,
    pub agents: Vec<String>,
    pub servers: Vec<String>,
    pub at: Micros,
}

/// An agent's prevention settings (loop detection, budgets, circuit breaker) as JSON, per project; agent
/// `"*"` is the project default. The server owns the JSON's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct PreventionRow {
    pub project_id: String,
    pub agent_name: String,
    pub config_json: String,
    pub updated_at: Micros,
}

/// One security scan of one MCP server: what the scanner found, when, and which scanner found it.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityScan {
    pub id: String,
    /// `""` for servers from the operator's YAML.
    pub project_id: String,
    pub server_name: String,
    pub scanned_at: Micros,
    /// The scanner that produced the findings (the LangSight version): findings of different scanners differ.
    pub scanner_version: String,
    /// Why the scan could not run (the server was unreachable); such a scan does not grade the server.
    pub error: Option<String>,
    pub critical: i64,
    pub high: i64,
    pub medium: i64,
    pub low: i64,
    pub info: i64,
    /// JSON array of the original's findings: `{severity, category, title, description, remediation, tool_name, cve_id}`.
    pub findings_json: String,
}

/// A session whose spans changed since the link pass last read them (its span count differs from the count the
/// pass recorded): the pass recomputes its delegation edges and missing parents.
#[derive(Debug, Clone, PartialEq)]
pub struct UnlinkedSession {
    /// `""` for spans sent without a project.
    pub project_id: String,
    pub session_id: String,
    /// The earliest `started_at` of its spans: a lower bound for stores that read spans by time.
    pub first_call_at: i64,
    pub span_count: i64,
    /// The span count the pass last recorded: the compare-and-set value of [`LinkUpdate`].
    pub linked_count: i64,
    /// What the pass last added to the delegation rollups for this session (its encoding is the pass's).
    pub links: Vec<u8>,
}

/// What the link pass reads of a span.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkSpan {
    pub session_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub agent_name: Option<String>,
    pub started_at: i64,
    /// An agent span naming a model (what the unfinished-sessions list counts as an LLM call).
    pub llm_call: bool,
}

/// The link pass's result for one session, applied only if no other pass recorded it meanwhile.
#[derive(Debug, Clone)]
pub struct LinkUpdate {
    pub project_id: String,
    pub session_id: String,
    /// The [`UnlinkedSession::linked_count`] read: the update applies only if it is still stored.
    pub expect_linked: i64,
    pub linked_count: i64,
    pub links: Vec<u8>,
    /// Some span names a parent the session does not hold (the run is unfinished or lost spans).
    pub missing_parents: bool,
    pub llm_calls: i64,
    /// The delegation rollup deltas of this session, merged with the update.
    pub delta: langsight_core::rollup::RollupBatch,
}

/// A session the link pass found with a missing parent, as the unfinished-sessions list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncompleteSession {
    pub project_id: String,
    pub session_id: String,
    pub agent_name: Option<String>,
    /// Its last span's end.
    pub last_call_at: i64,
    pub span_count: i64,
    pub llm_calls: i64,
    pub tool_calls: i64,
}

/// Which sessions [`crate::SpanStore::incomplete_sessions`] returns: of one project or all, with a missing
/// parent, last active in `[active_since, idle_before)`.
#[derive(Debug, Clone)]
pub struct IncompleteQuery {
    pub project_id: Option<String>,
    pub active_since: i64,
    pub idle_before: i64,
    pub limit: usize,
}

/// The calls a session's stored rollup counts (`""`: a row created before its first fold).
pub(crate) fn session_tool_calls(rollup: &str) -> Result<i64, crate::StorageError> {
    if rollup.is_empty() {
        return Ok(0);
    }
    let r: langsight_core::session::SessionRollup = serde_json::from_str(rollup)?;
    Ok(r.tool_calls as i64)
}
