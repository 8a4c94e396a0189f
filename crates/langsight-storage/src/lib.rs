//! The storage seam: one trait per domain, and the backends that implement them side by side.
//!
//! - [`SpanStore`]: span ingest (durable, group-committed), the session rollups, session traces.
//! - [`KeyStore`]: API keys (hashes only).
//! - [`ProjectStore`]: projects and their members, enough for read scoping.
//! - [`HealthStore`]: MCP health-check results.
//! - [`AlertStore`]: the alert inbox, delivery outcomes, per-project alert settings and SLOs.
//! - [`ServerStore`]: MCP server metadata managed through the API, and the tools agents reported.
//! - [`SecurityStore`]: security scans of MCP servers (the scorecard's security dimension).
//!
//! A backend is chosen once at start-up and handed out as a [`Storage`] of trait objects; handlers never know
//! which backend they talk to. Backends: [`sqlite`] (embedded, the zero-setup default).

/// Implements [`SpanStore`] for a wrapper that handles `ingest` itself (given as `own`) and hands every other call
/// to its field `inner` unchanged: the group commit of the networked stores, and a SQLite worker's forwarding to the
/// span writer process.
macro_rules! span_store_with_own_ingest {
    ($ty:ty, $inner:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::SpanStore for $ty {
            $($own)*

            async fn list_sessions(&self, query: SessionQuery) -> Result<Vec<SessionRow>, StorageError> {
                self.$inner.list_sessions(query).await
            }

            async fn count_sessions(&self, query: SessionQuery) -> Result<SessionCounts, StorageError> {
                self.$inner.count_sessions(query).await
            }

            async fn server_invocations(
                &self,
                project_id: Option<&str>,
                since: i64,
            ) -> Result<Vec<ServerInvocations>, StorageError> {
                self.$inner.server_invocations(project_id, since).await
            }

            async fn tool_hours(&self, project_id: Option<&str>, since_hour: i64) -> Result<Vec<ToolHour>, StorageError> {
                self.$inner.tool_hours(project_id, since_hour).await
            }

            async fn server_calls(
                &self,
                server: &str,
                project_id: Option<&str>,
                since: i64,
                limit: usize,
            ) -> Result<Vec<Span>, StorageError> {
                self.$inner.server_calls(server, project_id, since, limit).await
            }

            async fn prune_before(&self, before: i64) -> Result<u64, StorageError> {
                self.$inner.prune_before(before).await
            }

            async fn session_spans(
                &self,
                session_id: &str,
                project_id: Option<&str>,
                limit: usize,
            ) -> Result<Vec<Span>, StorageError> {
                self.$inner.session_spans(session_id, project_id, limit).await
            }

            async fn span_facts(&self, query: FactQuery) -> Result<Vec<SpanFact>, StorageError> {
                self.$inner.span_facts(query).await
            }

            async fn mark_incomplete(&self, project_id: &str, session_id: &str) -> Result<bool, StorageError> {
                self.$inner.mark_incomplete(project_id, session_id).await
            }

            async fn get_session(
                &self,
                project_id: Option<&str>,
                session_id: &str,
            ) -> Result<Option<SessionRow>, StorageError> {
                self.$inner.get_session(project_id, session_id).await
            }

            async fn session_costs(&self, query: CostRankQuery) -> Result<Vec<SessionCost>, StorageError> {
                self.$inner.session_costs(query).await
            }

            async fn agent_sessions(
                &self,
                project_id: Option<&str>,
                active_since: i64,
            ) -> Result<Vec<AgentSessions>, StorageError> {
                self.$inner.agent_sessions(project_id, active_since).await
            }

            async fn rollups(&self, query: RollupQuery) -> Result<Vec<RollupRow>, StorageError> {
                self.$inner.rollups(query).await
            }

            async fn backfill_rollups(&self, page: usize) -> Result<Option<BackfillProgress>, StorageError> {
                self.$inner.backfill_rollups(page).await
            }

            async fn unlinked_sessions(&self, limit: usize) -> Result<Vec<UnlinkedSession>, StorageError> {
                self.$inner.unlinked_sessions(limit).await
            }

            async fn link_spans(
                &self,
                project_id: &str,
                session_ids: &[String],
                since: i64,
            ) -> Result<Vec<LinkSpan>, StorageError> {
                self.$inner.link_spans(project_id, session_ids, since).await
            }

            async fn commit_links(&self, updates: Vec<LinkUpdate>) -> Result<usize, StorageError> {
                self.$inner.commit_links(updates).await
            }

            async fn incomplete_sessions(&self, query: IncompleteQuery) -> Result<Vec<IncompleteSession>, StorageError> {
                self.$inner.incomplete_sessions(query).await
            }
        }
    };
}

pub mod clickhouse;
pub mod error;
pub mod group_commit;
pub mod model;
pub mod postgres;
pub mod sqlite;

pub use error::StorageError;
pub use model::*;

use async_trait::async_trait;
use langsight_core::span::Span;
use langsight_core::time::Micros;
use std::sync::Arc;

#[async_trait]
pub trait SpanStore: Send + Sync {
    /// Stores the spans and folds them into their sessions' rollups. Returns only once the data is
    /// committed to durable storage: callers answer 202 on the strength of it.
    async fn ingest(&self, spans: Vec<Span>) -> Result<IngestOutcome, StorageError>;

    /// Several requests' batches written together ([`group_commit`]), one result per batch in order. A
    /// backend that can merge them into one write overrides this; the default writes them one by one.
    async fn ingest_group(&self, batches: Vec<Vec<Span>>) -> Vec<Result<IngestOutcome, StorageError>> {
        group_commit::one_by_one(self, batches).await
    }

    /// Sessions active within the window, newest first.
    async fn list_sessions(&self, query: SessionQuery) -> Result<Vec<SessionRow>, StorageError>;

    /// How many sessions match the query's filters and search, and how many failed; over the newest
    /// [`MAX_SESSIONS_SCANNED`] sessions of the window (`sort`, `offset` and `limit` are ignored).
    async fn count_sessions(&self, query: SessionQuery) -> Result<SessionCounts, StorageError>;

    /// Tool calls per server since `since` (optionally one project), most recently called first.
    async fn server_invocations(
        &self,
        project_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<ServerInvocations>, StorageError>;

    /// Hourly tool-call aggregates from `since_hour` (epoch hours) on, optionally one project.
    async fn tool_hours(&self, project_id: Option<&str>, since_hour: i64) -> Result<Vec<ToolHour>, StorageError>;

    /// A server's `tool_call` spans since `since`, newest first; with a project, its own and unscoped ones.
    async fn server_calls(
        &self,
        server: &str,
        project_id: Option<&str>,
        since: i64,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError>;

    /// Retention: deletes spans that started, sessions last active and hourly aggregates before `before`.
    /// Returns the spans deleted.
    async fn prune_before(&self, before: i64) -> Result<u64, StorageError>;

    /// The spans of one session in start order (at most `limit`), optionally within one project.
    async fn session_spans(
        &self,
        session_id: &str,
        project_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Span>, StorageError>;

    /// The facts of every span started in the query's window, in no particular order. Callers page through
    /// long windows by time slices, so memory stays bounded by the busiest slice.
    async fn span_facts(&self, query: FactQuery) -> Result<Vec<SpanFact>, StorageError>;

    /// Tags a session `incomplete` (the stale-session sweep), but only over no tag or a success tag: a
    /// recorded failure is never hidden. True when the tag changed.
    async fn mark_incomplete(&self, project_id: &str, session_id: &str) -> Result<bool, StorageError>;

    /// One session's rollup (the first found when no project is given and several projects share the id).
    async fn get_session(&self, project_id: Option<&str>, session_id: &str)
        -> Result<Option<SessionRow>, StorageError>;

    /// The costliest sessions of [`CostRankQuery`] with their token figures: the cost breakdown's ranking,
    /// computed where the session rows are, so that a networked store sends the few ranked rows, not the
    /// thousands it ranks.
    async fn session_costs(&self, query: CostRankQuery) -> Result<Vec<SessionCost>, StorageError>;

    /// The sessions active since `active_since` grouped by agent and model, every session counted (no list
    /// cap): the dashboard's per-agent figures, read from the sessions index rather than a page of sessions.
    async fn agent_sessions(
        &self,
        project_id: Option<&str>,
        active_since: i64,
    ) -> Result<Vec<AgentSessions>, StorageError>;

    /// The analytics rollup rows of one kind in a bucket range (kept at ingest, in the spans' commit).
    async fn rollups(&self, query: RollupQuery) -> Result<Vec<RollupRow>, StorageError>;

    /// Builds rollups for one page of the spans stored before rollups existed (in one transaction with the
    /// progress, so an interrupted build resumes where it stopped). `None` when nothing is left.
    async fn backfill_rollups(&self, page: usize) -> Result<Option<BackfillProgress>, StorageError>;

    /// Up to `limit` sessions whose spans changed since the link pass recorded them.
    async fn unlinked_sessions(&self, limit: usize) -> Result<Vec<UnlinkedSession>, StorageError>;

    /// The spans of some sessions of one project, narrowly (`since`: no span of them started earlier).
    async fn link_spans(
        &self,
        project_id: &str,
        session_ids: &[String],
        since: i64,
    ) -> Result<Vec<LinkSpan>, StorageError>;

    /// Records the pass's results in one transaction: each update whose session still holds its
    /// `expect_linked` is written with its delta; the others (another pass got there first) are skipped.
    /// Returns how many were applied.
    async fn commit_links(&self, updates: Vec<LinkUpdate>) -> Result<usize, StorageError>;

    /// Sessions with a missing parent (as the link pass last found them), latest activity first.
    async fn incomplete_sessions(&self, query: IncompleteQuery) -> Result<Vec<IncompleteSession>, StorageError>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKeyRecord, StorageError>;
    /// All keys, revoked included, newest first.
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StorageError>;
    /// Marks a key revoked; false when it does not exist or was already revoked.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StorageError>;
    /// The non-revoked key with this SHA-256 hash.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, StorageError>;
    /// Non-revoked keys: whether stored keys make authentication mandatory.
    async fn count_active_api_keys(&self) -> Result<u64, StorageError>;
    async fn touch_api_key(&self, id: &str, at: i64) -> Result<(), StorageError>;
}

#[async_trait]
pub trait ProjectStore: Send + Sync {
    async fn create_project(&self, project: NewProject) -> Result<Project, StorageError>;
    async fn list_projects(&self) -> Result<Vec<Project>, StorageError>;
    async fn get_project(&self, id: &str) -> Result<Option<Project>, StorageError>;
    /// The principal's role in the project, if a member.
    async fn member_role(&self, project_id: &str, principal: &str) -> Result<Option<String>, StorageError>;
    /// Projects the principal is a member of, with its role in each.
    async fn memberships(&self, principal: &str) -> Result<Vec<(Project, String)>, StorageError>;
    /// Renames; the slug is made unique as at creation. `None` when the project does not exist.
    async fn update_project(&self, id: &str, name: &str, slug: &str) -> Result<Option<Project>, StorageError>;
    /// Deletes the project and its memberships.
    async fn delete_project(&self, id: &str) -> Result<bool, StorageError>;
    async fn list_members(&self, project_id: &str) -> Result<Vec<Member>, StorageError>;
    /// Adds or replaces a membership.
    async fn upsert_member(&self, project_id: &str, member: Member) -> Result<(), StorageError>;
    async fn set_member_role(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Option<Member>, StorageError>;
    async fn remove_member(&self, project_id: &str, user_id: &str) -> Result<bool, StorageError>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn count_users(&self) -> Result<u64, StorageError>;
    /// `StorageError::Conflict` when the email is taken.
    async fn create_user(&self, user: User) -> Result<(), StorageError>;
    /// Creates `user` only if no user exists, in one atomic step (the first-run admin): `false` when any
    /// user, active or not, already exists. Two concurrent calls never both create a user.
    async fn create_first_user(&self, user: User) -> Result<bool, StorageError>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StorageError>;
    async fn user_by_id(&self, id: &str) -> Result<Option<User>, StorageError>;
    async fn list_users(&self) -> Result<Vec<User>, StorageError>;
    async fn set_user_role(&self, id: &str, role: &str) -> Result<Option<User>, StorageError>;
    async fn deactivate_user(&self, id: &str) -> Result<bool, StorageError>;
    /// Sets the password hash and revokes the user's API keys; returns how many keys were revoked.
    async fn set_password(&self, id: &str, hash: &str, at: i64) -> Result<u64, StorageError>;
    async fn touch_login(&self, id: &str, at: i64) -> Result<(), StorageError>;
    async fn create_invite(&self, invite: Invite) -> Result<(), StorageError>;
    /// Atomically checks the invitation and creates the user.
    async fn accept_invite(&self, token_hash: &str, user: User, now: i64) -> Result<AcceptInvite, StorageError>;
    /// Until when the account is locked, if it is at `now`.
    async fn locked_until(&self, email: &str, now: i64) -> Result<Option<i64>, StorageError>;
    /// Counts a failed login; returns the lock end when this failure locked the account.
    async fn record_login_failure(
        &self,
        email: &str,
        now: i64,
        policy: LockoutPolicy,
    ) -> Result<Option<i64>, StorageError>;
    async fn clear_login_failures(&self, email: &str) -> Result<(), StorageError>;
    async fn audit(&self, event: AuditEvent) -> Result<(), StorageError>;
    /// Newest first, and the total.
    async fn audit_log(&self, limit: usize, offset: usize) -> Result<(u64, Vec<AuditEvent>), StorageError>;
    /// Records a dashboard session (by the hash of its id) for `user_id` until `expires_at`.
    async fn create_session(&self, id_hash: &str, user_id: &str, now: i64, expires_at: i64)
        -> Result<(), StorageError>;
    /// The user of a session that is neither ended nor expired at `now`.
    async fn session_user(&self, id_hash: &str, now: i64) -> Result<Option<String>, StorageError>;
    /// Ends one session (logout); whether it was live.
    async fn end_session(&self, id_hash: &str, now: i64) -> Result<bool, StorageError>;
    /// Ends every live session of a user but `keep` (a password change keeps the session that made it);
    /// returns how many ended. Also forgets sessions that expired long ago, so the table stays small.
    async fn end_user_sessions(&self, user_id: &str, keep: Option<&str>, now: i64) -> Result<u64, StorageError>;
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    async fn save_health(&self, record: HealthRecord) -> Result<(), StorageError>;
    /// The newest result of every server of the project (`""` = operator servers).
    async fn latest_health(&self, project_id: &str) -> Result<Vec<HealthRecord>, StorageError>;
    /// A server's results, newest first.
    async fn health_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<HealthRecord>, StorageError>;
    /// The newest result that carried a tool list (its hash and tools), the baseline for drift.
    async fn latest_snapshot(&self, project_id: &str, server: &str) -> Result<Option<HealthRecord>, StorageError>;
    async fn save_drift(&self, rows: Vec<DriftRecord>) -> Result<(), StorageError>;
    /// Retention: deletes health results and drift rows older than `before` (the newest result of each
    /// server is kept, so a server never loses its current state). Returns the results deleted.
    async fn prune_health_before(&self, before: i64) -> Result<u64, StorageError>;
    /// Drift rows, newest first.
    async fn drift_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<DriftRecord>, StorageError>;
}

#[async_trait]
pub trait ServerStore: Send + Sync {
    /// Creates or replaces the metadata of `(project_id, server_name)`, keeping its id and creation time.
    async fn upsert_server(&self, meta: ServerMetadata) -> Result<ServerMetadata, StorageError>;
    async fn get_server(&self, project_id: &str, name: &str) -> Result<Option<ServerMetadata>, StorageError>;
    /// One project's servers by name; `None` = every project's (the monitor's view).
    async fn list_servers(&self, project_id: Option<&str>) -> Result<Vec<ServerMetadata>, StorageError>;
    /// False when there was nothing to delete.
    async fn delete_server(&self, project_id: &str, name: &str) -> Result<bool, StorageError>;
    /// Inserts or refreshes tools (first_seen kept, last_seen = `at`); returns how many were written.
    async fn upsert_tools(
        &self,
        project_id: &str,
        server: &str,
        tools: Vec<(String, String, String)>,
        at: i64,
    ) -> Result<usize, StorageError>;
    async fn list_tools(&self, project_id: &str, server: &str) -> Result<Vec<ServerTool>, StorageError>;
}

/// How many scans of one server are kept: enough history to see a finding come and go, bounded whatever the
/// scan interval.
pub const SCANS_KEPT_PER_SERVER: usize = 100;

#[async_trait]
pub trait SecurityStore: Send + Sync {
    /// Stores one scan and forgets that server's scans beyond the newest [`SCANS_KEPT_PER_SERVER`].
    async fn save_scan(&self, scan: SecurityScan) -> Result<(), StorageError>;
    /// The newest scan of each server of the project (`""` = operator servers), by server name; `server`
    /// narrows to one server; `completed_only` skips scans that could not run (`error` set), so an outage
    /// never hides the findings of the last scan that did run.
    async fn latest_scans(
        &self,
        project_id: &str,
        server: Option<&str>,
        completed_only: bool,
    ) -> Result<Vec<SecurityScan>, StorageError>;
    /// One server's stored scans (of the project, `""` = operator servers), newest first, at most `limit`.
    async fn scan_history(
        &self,
        project_id: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<SecurityScan>, StorageError>;
}

#[async_trait]
pub trait AlertStore: Send + Sync {
    async fn insert_alert(&self, alert: FiredAlert) -> Result<(), StorageError>;
    /// One alert, if visible to the project (`None` = any project).
    async fn get_alert(&self, project_id: Option<&str>, id: &str) -> Result<Option<FiredAlert>, StorageError>;
    /// One page, newest first, and the total matching.
    async fn list_alerts(&self, query: AlertQuery) -> Result<(u64, Vec<FiredAlert>), StorageError>;
    /// Active alerts per severity: `(critical, warning, info)`.
    async fn alert_counts(&self, project_id: Option<&str>) -> Result<(u64, u64, u64), StorageError>;
    /// Applies the action if the alert is visible to the project and in a state that allows it.
    async fn update_alert(
        &self,
        project_id: Option<&str>,
        id: &str,
        action: AlertAction,
        at: i64,
    ) -> Result<bool, StorageError>;
    async fn record_delivery(&self, record: DeliveryRecord) -> Result<(), StorageError>;
    async fn deliveries(&self, alert_id: &str) -> Result<Vec<DeliveryRecord>, StorageError>;
    /// The project's stored settings (`""` = global); `None` when never saved.
    async fn alert_config(&self, project_id: &str) -> Result<Option<AlertConfig>, StorageError>;
    async fn save_alert_config(&self, project_id: &str, config: AlertConfig) -> Result<(), StorageError>;
    async fn create_slo(&self, slo: Slo) -> Result<(), StorageError>;
    /// One project's SLOs; `None` = every project's (the evaluator).
    async fn list_slos(&self, project_id: Option<&str>) -> Result<Vec<Slo>, StorageError>;
    async fn delete_slo(&self, project_id: Option<&str>, id: &str) -> Result<bool, StorageError>;
}

/// A backend's answer to a readiness probe.
/// Agents' metadata and prevention settings, and the instance settings.
#[async_trait]
pub trait AgentStore: Send + Sync {
    async fn list_agents(&self, project_id: &str) -> Result<Vec<AgentMetadata>, StorageError>;
    async fn get_agent(&self, project_id: &str, agent: &str) -> Result<Option<AgentMetadata>, StorageError>;
    /// Creates or replaces (keeping `id` and `created_at` of an existing row); returns the stored row.
    async fn upsert_agent(&self, meta: AgentMetadata) -> Result<AgentMetadata, StorageError>;
    async fn delete_agent(&self, project_id: &str, agent: &str) -> Result<bool, StorageError>;
    /// Registers the agents and servers spans named (ingest's auto-registration, as in the original), in one
    /// transaction: missing entries are created with empty metadata, existing ones only get `first_seen_at`
    /// (earliest) and `last_seen_at` (latest) moved, so whatever a user edited survives and repeating a
    /// sighting changes nothing. Server rows live in the [`ServerStore`] tables of the same backend.
    async fn record_sightings(&self, sightings: Vec<CatalogSighting>) -> Result<(), StorageError>;
    async fn list_prevention(&self, project_id: &str) -> Result<Vec<PreventionRow>, StorageError>;
    async fn get_prevention(&self, project_id: &str, agent: &str) -> Result<Option<PreventionRow>, StorageError>;
    async fn put_prevention(&self, row: PreventionRow) -> Result<(), StorageError>;
    async fn delete_prevention(&self, project_id: &str, agent: &str) -> Result<bool, StorageError>;
    /// The instance settings document (JSON), if ever saved.
    async fn get_settings(&self) -> Result<Option<String>, StorageError>;
    async fn put_settings(&self, json: String, at: Micros) -> Result<(), StorageError>;
}

/// Model token prices, with history (a change retires the old row).
#[async_trait]
pub trait PricingStore: Send + Sync {
    /// Every row, active and retired, by provider, model and newest first.
    async fn list_prices(&self) -> Result<Vec<ModelPrice>, StorageError>;
    /// Adds a row; with `retire`, first retires that active row at the new row's `effective_from`, in the same
    /// transaction (false, and nothing added, when it is not an active row).
    async fn add_price(&self, price: ModelPrice, retire: Option<String>) -> Result<bool, StorageError>;
    /// Retires an active row; false when there is none with that id.
    async fn retire_price(&self, id: &str, at: i64) -> Result<bool, StorageError>;
    /// Adds each built-in row whose model has no row at all (so a deleted or edited price is not re-added).
    async fn seed_prices(&self, prices: Vec<ModelPrice>) -> Result<usize, StorageError>;
}

#[async_trait]
pub trait Probe: Send + Sync {
    /// Names the backend in the readiness report (`storage`, `postgres`, `clickhouse`).
    fn name(&self) -> &'static str;
    async fn ping(&self) -> Result<(), StorageError>;
}

/// The storage handed to the server: every domain, behind its trait.
#[derive(Clone)]
pub struct Storage {
    pub spans: Arc<dyn SpanStore>,
    pub keys: Arc<dyn KeyStore>,
    pub projects: Arc<dyn ProjectStore>,
    pub health: Arc<dyn HealthStore>,
    pub servers: Arc<dyn ServerStore>,
    pub security: Arc<dyn SecurityStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub users: Arc<dyn UserStore>,
    pub pricing: Arc<dyn PricingStore>,
    pub agents: Arc<dyn AgentStore>,
    pub probes: Vec<Arc<dyn Probe>>,
    /// Flushes pending writes and closes connections; called once at shutdown.
    pub closer: Arc<dyn Closer>,
}

#[async_trait]
pub trait Closer: Send + Sync {
    async fn close(&self);
}

impl Storage {
    /// PostgreSQL for everything; concurrent ingests share transactions through [`group_commit`] (needs a
    /// Tokio runtime).
    pub fn postgres(db: Arc<postgres::PgStorage>) -> Self {
        Storage {
            spans: group_commit::GroupCommit::spawn(db.clone()),
            keys: db.clone(),
            projects: db.clone(),
            health: db.clone(),
            servers: db.clone(),
            security: db.clone(),
            alerts: db.clone(),
            users: db.clone(),
            pricing: db.clone(),
            agents: db.clone(),
            probes: vec![db.clone()],
            closer: db,
        }
    }

    /// `dual`: PostgreSQL for metadata, auth, alerts, session rollups and hourly aggregates; ClickHouse for raw
    /// spans, health history and drift.
    pub fn dual(
        pg: Arc<postgres::PgStorage>,
        ch: Arc<clickhouse::ClickHouse>,
        spool: Option<Arc<clickhouse::spool::Spool>>,
    ) -> Self {
        Storage {
            spans: group_commit::GroupCommit::spawn(Arc::new(clickhouse::DualSpans {
                pg: pg.clone(),
                ch: ch.clone(),
                spool: spool.clone(),
            })),
            keys: pg.clone(),
            projects: pg.clone(),
            health: ch.clone(),
            servers: pg.clone(),
            security: pg.clone(),
            alerts: pg.clone(),
            users: pg.clone(),
            pricing: pg.clone(),
            agents: pg.clone(),
            probes: vec![pg.clone(), ch.clone()],
            closer: Arc::new(clickhouse::DualCloser { pg, ch, spool }),
        }
    }

    pub fn sqlite(db: Arc<sqlite::SqliteStorage>) -> Self {
        Storage {
            spans: db.clone(),
            keys: db.clone(),
            projects: db.clone(),
            health: db.clone(),
            servers: db.clone(),
            security: db.clone(),
            alerts: db.clone(),
            users: db.clone(),
            pricing: db.clone(),
            agents: db.clone(),
            probes: vec![db.clone()],
            closer: db,
        }
    }
}
