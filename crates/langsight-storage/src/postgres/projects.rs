//! [`ProjectStore`] for PostgreSQL.

use super::PgStorage;
use crate::model::{Member, NewProject, Project};
use crate::{ProjectStore, StorageError};
use async_trait::async_trait;
use tokio_postgres::Row;

const SELECT: &str = "SELECT p.id, p.name, p.slug, p.created_by, p.created_at, \
    (SELECT count(*) FROM project_members m WHERE m.project_id = p.id) FROM projects p";

fn project_from_row(r: &Row) -> Project {
    let members: i64 = r.get(5);
    Project {
        id: r.get(0),
        name: r.get(1),
        slug: r.get(2),
        created_by: r.get(3),
        created_at: r.get(4),
        member_count: members as u64,
    }
}

fn member_from_row(r: &Row) -> Member {
    Member { user_id: r.get(0), role: r.get(1), added_by: r.get(2), added_at: r.get(3) }
}

/// A slug not used by another project: the wanted one, else with a short random suffix.
async fn unique_slug(
    tx: &deadpool_postgres::Transaction<'_>,
    wanted: &str,
    own_id: &str,
) -> Result<String, StorageError> {
    let mut slug = wanted.to_string();
    while tx.query_opt("SELECT 1 FROM projects WHERE slug = $1 AND id <> $2", &[&slug, &own_id]).await?.is_some() {
        slug = format!("{wanted}-{}", &langsight_core::keys::new_id()[..6]);
    }
    Ok(slug)
}

#[async_trait]
impl ProjectStore for PgStorage {
    async fn create_project(&self, p: NewProject) -> Result<Project, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let slug = unique_slug(&tx, &p.slug, &p.id).await?;
        tx.execute(
            "INSERT INTO projects (id, name, slug, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[&p.id, &p.name, &slug, &p.created_by, &p.created_at],
        )
        .await?;
        let mut member_count = 0;
        if let Some(owner) = &p.owner_member {
            tx.execute(
                "INSERT INTO project_members (project_id, user_id, role, added_by, added_at) VALUES ($1, $2, 'owner', $2, $3)",
                &[&p.id, owner, &p.created_at],
            )
            .await?;
            member_count = 1;
        }
        tx.commit().await?;
        Ok(Project { id: p.id, name: p.name, slug, created_by: p.created_by, created_at: p.created_at, member_count })
    }

    async fn list_projects(&self) -> Result<Vec<Project>, StorageError> {
        let rows = self.client().await?.query(&format!("{SELECT} ORDER BY p.created_at, p.id"), &[]).await?;
        Ok(rows.iter().map(project_from_row).collect())
    }

    async fn get_project(&self, id: &str) -> Result<Option<Project>, StorageError> {
        let row = self.client().await?.query_opt(&format!("{SELECT} WHERE p.id = $1"), &[&id]).await?;
        Ok(row.as_ref().map(project_from_row))
    }

    async fn member_role(&self, project_id: &str, principal: &str) -> Result<Option<String>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2",
                &[&project_id, &principal],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn memberships(&self, principal: &str) -> Result<Vec<(Project, String)>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT p.id, p.name, p.slug, p.created_by, p.created_at, \
                 (SELECT count(*) FROM project_members m WHERE m.project_id = p.id), pm.role \
                 FROM projects p JOIN project_members pm ON pm.project_id = p.id WHERE pm.user_id = $1 \
                 ORDER BY p.created_at",
                &[&principal],
            )
            .await?;
        Ok(rows.iter().map(|r| (project_from_row(r), r.get(6))).collect())
    }

    async fn update_project(&self, id: &str, name: &str, slug: &str) -> Result<Option<Project>, StorageError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if tx.query_opt("SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", &[&id]).await?.is_none() {
            return Ok(None);
        }
        let slug = unique_slug(&tx, slug, id).await?;
        tx.execute("UPDATE projects SET name = $2, slug = $3 WHERE id = $1", &[&id, &name, &slug]).await?;
        let row = tx.query_opt(&format!("{SELECT} WHERE p.id = $1"), &[&id]).await?;
        tx.commit().await?;
        Ok(row.as_ref().map(project_from_row))
    }

    async fn delete_project(&self, id: &str) -> Result<bool, StorageError> {
        // Memberships go with the project (ON DELETE CASCADE).
        Ok(self.client().await?.execute("DELETE FROM projects WHERE id = $1", &[&id]).await? > 0)
    }

    async fn list_members(&self, project_id: &str) -> Result<Vec<Member>, StorageError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT user_id, role, added_by, added_at FROM project_members WHERE project_id = $1 ORDER BY added_at, user_id",
                &[&project_id],
            )
            .await?;
        Ok(rows.iter().map(member_from_row).collect())
    }

    async fn upsert_member(&self, project_id: &str, m: Member) -> Result<(), StorageError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO project_members (project_id, user_id, role, added_by, added_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
                &[&project_id, &m.user_id, &m.role, &m.added_by, &m.added_at],
            )
            .await?;
        Ok(())
    }

    async fn set_member_role(
        &self,
        project_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<Option<Member>, StorageError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE project_members SET role = $3 WHERE project_id = $1 AND user_id = $2 \
                 RETURNING user_id, role, added_by, added_at",
                &[&project_id, &user_id, &role],
            )
            .await?;
        Ok(row.as_ref().map(member_from_row))
    }

    async fn remove_member(&self, project_id: &str, user_id: &str) -> Result<bool, StorageError> {
        let n = self
            .client()
            .await?
            .execute("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2", &[&project_id, &user_id])
            .await?;
        Ok(n > 0)
    }
}
