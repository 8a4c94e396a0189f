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
use langsight_storage::{KeyRole, NewProject, Project};
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
        _ => "system".to_string(),
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
            // Only real users become members; users arrive with the users issue.
            owner_member: None,
        })
        .await?;
    tracing::info!(project_id = %project.id, "project.created");
    let mut v = project_json(&project, Some("owner"));
    v["member_count"] = json!(1);
    Ok((StatusCode::CREATED, Json(v)))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let not_found = || ApiError::NotFound(PROJECT_NOT_FOUND.into());
    let project = state.storage.projects.get_project(&project_id).await?.ok_or_else(not_found)?;
    let role = match &principal {
        _ if principal.bound_project().is_some_and(|b| b != project_id) => return Err(not_found()),
        Principal::BootstrapKey | Principal::Open => "owner".to_string(),
        Principal::StoredKey(k) if k.role == KeyRole::Admin => "owner".to_string(),
        Principal::StoredKey(_) if principal.bound_project().is_some() => "viewer".to_string(),
        Principal::StoredKey(_) => state
            .storage
            .projects
            .member_role(&project_id, principal.member_id().unwrap_or_default())
            .await?
            .ok_or_else(not_found)?,
    };
    Ok(Json(project_json(&project, Some(&role))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(super::slugify("My  Project!"), "my-project");
        assert_eq!(super::slugify("!!!"), "project");
    }
}
