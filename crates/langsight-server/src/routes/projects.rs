//! `/api/projects`: enough of projects for read scoping (list, create, get). Members and the rest of
//! project management come with users.

use crate::auth::{Principal, PROJECT_NOT_FOUND};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use langsight_core::keys::new_id;
use langsight_core::time::{iso_offset, now_micros};
use langsight_storage::{KeyRole, Member, NewProject, Project};
use serde::Deserialize;
use serde_json::{json, Value};

fn project_json(p: &Project, your_role: Option<&str>) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "slug": p.slug,
        "created_by": p.created_by,
        "created_at": iso_offset(p.created_at),
        "member_count": p.member_count,
        "your_role": your_role,
    })
}

/// Lower-case, runs of anything but `[a-z0-9]` become `-`, trimmed; `project` when nothing is left.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let s = out.trim_matches('-').to_string();
    if s.is_empty() {
        "project".into()
    } else {
        s
    }
}

/// Admins see every project as owners; a bound key sees its project; others see their memberships.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<Value>>> {
    if let Some(bound) = principal.bound_project() {
        let role =
            if matches!(&principal, Principal::StoredKey(k) if k.role == KeyRole::Admin) { "owner" } else { "viewer" };
        let p = state.storage.projects.get_project(bound).await?;
        return Ok(Json(p.iter().map(|p| project_json(p, Some(role))).collect()));
    }
    let admin =
        principal.is_global_admin() || matches!(&principal, Principal::StoredKey(k) if k.role == KeyRole::Admin);
    if admin {
        let all = state.storage.projects.list_projects().await?;
        return Ok(Json(all.iter().map(|p| project_json(p, Some("owner"))).collect()));
    }
    let member = principal.member_id().unwrap_or_default();
    let mine = state.storage.projects.memberships(member).await?;
    Ok(Json(mine.iter().map(|(p, role)| project_json(p, Some(role))).collect()))
}

#[derive(Deserialize)]
pub struct CreateProject {
    name: String,
    #[serde(default)]
    slug: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    meta: crate::audit::RequestMeta,
    JsonBody(body): JsonBody<CreateProject>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    principal.require_admin()?;
    if principal.bound_project().is_some() {
        return Err(ApiError::Forbidden(
            "This API key is bound to one project and cannot create projects; use an unbound admin key.".into(),
        ));
    }
    let name = body.name.trim();
    let len = name.chars().count();
    if !(1..=80).contains(&len) {
        return Err(ApiError::Unprocessable(json!([{
            "type": if len == 0 { "string_too_short" } else { "string_too_long" },
            "loc": ["body", "name"],
            "msg": "Project name must be 1 to 80 characters",
            "input": body.name,
        }])));
    }
    let slug = match body.slug.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => slugify(s),
        None => slugify(name),
    };
    let created_by = match &principal {
        Principal::StoredKey(k) => k.user_id.clone().unwrap_or_else(|| k.id.clone()),
        Principal::Session(u) => u.id.clone(),
        _ => "system".to_string(),
    };
    // The creator becomes owner when it is a real user.
    let owner_member = match principal.user_id() {
        Some(id) if state.storage.users.user_by_id(id).await?.is_some() => Some(id.to_string()),
        _ => None,
    };
    let project = state
        .storage
        .projects
        .create_project(NewProject {
            id: new_id(),
            name: name.to_string(),
            slug,
            created_by,
            created_at: now_micros(),
            owner_member,
        })
        .await?;
    tracing::info!(project_id = %project.id, "project.created");
    crate::audit::record(&state, &principal, &meta, "project.created", json!({"name": project.name}), &project.id);
    let mut v = project_json(&project, Some("owner"));
    v["member_count"] = json!(1);
    Ok((StatusCode::CREATED, Json(v)))
}

/// The caller's role in a project (`owner` for global admins), or 404 for a project it may not see (the
/// original's `get_project_access`; 404 rather than 403 so ids cannot be probed).
async fn access(state: &AppState, principal: &Principal, project_id: &str) -> ApiResult<(Project, String)> {
    let not_found = || ApiError::NotFound(PROJECT_NOT_FOUND.into());
    let project = state.storage.projects.get_project(project_id).await?.ok_or_else(not_found)?;
    let role = match principal {
        _ if principal.bound_project().is_some_and(|b| b != project_id) => return Err(not_found()),
        _ if principal.is_global_admin() => "owner".to_string(),
        Principal::StoredKey(k) if k.role == KeyRole::Admin => "owner".to_string(),
        Principal::StoredKey(_) if principal.bound_project().is_some() => "viewer".to_string(),
        _ => state
            .storage
            .projects
            .member_role(project_id, principal.member_id().unwrap_or_default())
            .await?
            .ok_or_else(not_found)?,
    };
    Ok((project, role))
}

/// Owner-only actions: viewer keys and viewer sessions are refused first (they never write).
async fn owner(state: &AppState, principal: &Principal, project_id: &str, refusal: &str) -> ApiResult<Project> {
    let (project, role) = access(state, principal, project_id).await?;
    principal.require_admin()?;
    if role != "owner" {
        return Err(ApiError::Forbidden(refusal.into()));
    }
    Ok(project)
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (project, role) = access(&state, &principal, &project_id).await?;
    Ok(Json(project_json(&project, Some(&role))))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(project_id): Path<String>,
    meta: crate::audit::RequestMeta,
    JsonBody(body): JsonBody<CreateProject>,
) -> ApiResult<Json<Value>> {
    owner(&state, &principal, &project_id, "Only project owners can rename a project.").await?;
    let name = body.name.trim();
    if !(1..=80).contains(&name.chars().count()) {
        return Err(ApiError::Unprocessable(json!([{
            "type": "string_too_short", "loc": ["body", "name"], "msg": "Project name must be 1 to 80 characters", "input": body.name,
        }])));
    }
    let slug = slugify(body.slug.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or(name));
    let p = state
        .storage
        .projects
        .update_project(&project_id, name, &slug)
        .await?
        .ok_or_else(|| ApiError::NotFound(PROJECT_NOT_FOUND.into()))?;
    crate::audit::record(&state, &principal, &meta, "project.updated", json!({"name": p.name, "slug": p.slug}), &p.id);
    Ok(Json(project_json(&p, Some("owner"))))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(project_id): Path<String>,
    meta: crate::audit::RequestMeta,
) -> ApiResult<StatusCode> {
    owner(&state, &principal, &project_id, "Only project owners can delete a project.").await?;
    state.storage.projects.delete_project(&project_id).await?;
    crate::audit::record(&state, &principal, &meta, "project.deleted", json!({}), &project_id);
    Ok(StatusCode::NO_CONTENT)
}

fn member_json(m: &Member) -> Value {
    json!({"user_id": m.user_id, "role": m.role, "added_by": m.added_by, "added_at": iso_offset(m.added_at)})
}

const PROJECT_ROLES: &[&str] = &["owner", "member", "viewer"];

fn bad_role(role: &str) -> ApiError {
    ApiError::Unprocessable(json!([{
        "type": "literal_error", "loc": ["body", "role"], "msg": "Input should be 'owner', 'member' or 'viewer'", "input": role,
    }]))
}

pub async fn members(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    access(&state, &principal, &project_id).await?;
    let rows = state.storage.projects.list_members(&project_id).await?;
    Ok(Json(rows.iter().map(member_json).collect()))
}

#[derive(Deserialize)]
pub struct AddMember {
    user_id: String,
    #[serde(default = "default_member_role")]
    role: String,
}

fn default_member_role() -> String {
    "member".into()
}

pub async fn add_member(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(project_id): Path<String>,
    meta: crate::audit::RequestMeta,
    JsonBody(body): JsonBody<AddMember>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    owner(&state, &principal, &project_id, "Only project owners can add members.").await?;
    if !PROJECT_ROLES.contains(&body.role.as_str()) {
        return Err(bad_role(&body.role));
    }
    if state.storage.users.user_by_id(&body.user_id).await?.is_none() {
        return Err(ApiError::NotFound("User not found.".into()));
    }
    let m =
        Member { user_id: body.user_id, role: body.role, added_by: Some(principal.actor()), added_at: now_micros() };
    state.storage.projects.upsert_member(&project_id, m.clone()).await?;
    crate::audit::record(
        &state,
        &principal,
        &meta,
        "project.member_added",
        json!({"user_id": m.user_id, "role": m.role}),
        &project_id,
    );
    Ok((StatusCode::CREATED, Json(member_json(&m))))
}

#[derive(Deserialize)]
pub struct MemberRole {
    role: String,
}

pub async fn set_member_role(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((project_id, user_id)): Path<(String, String)>,
    meta: crate::audit::RequestMeta,
    JsonBody(body): JsonBody<MemberRole>,
) -> ApiResult<Json<Value>> {
    owner(&state, &principal, &project_id, "Only project owners can change member roles.").await?;
    if !PROJECT_ROLES.contains(&body.role.as_str()) {
        return Err(bad_role(&body.role));
    }
    let m = state
        .storage
        .projects
        .set_member_role(&project_id, &user_id, &body.role)
        .await?
        .ok_or_else(|| ApiError::NotFound("Member not found.".into()))?;
    crate::audit::record(
        &state,
        &principal,
        &meta,
        "project.member_role_changed",
        json!({"user_id": user_id, "role": m.role}),
        &project_id,
    );
    Ok(Json(member_json(&m)))
}

pub async fn remove_member(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((project_id, user_id)): Path<(String, String)>,
    meta: crate::audit::RequestMeta,
) -> ApiResult<StatusCode> {
    owner(&state, &principal, &project_id, "Only project owners can remove members.").await?;
    if !state.storage.projects.remove_member(&project_id, &user_id).await? {
        return Err(ApiError::NotFound("Member not found.".into()));
    }
    crate::audit::record(&state, &principal, &meta, "project.member_removed", json!({"user_id": user_id}), &project_id);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(super::slugify("My  Project!"), "my-project");
        assert_eq!(super::slugify("!!!"), "project");
    }
}
