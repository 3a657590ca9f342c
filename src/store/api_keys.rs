//! API keys in the store: created with the hash of a new key, looked up by hash, listed (never
//! showing a hash), revoked. Times are the database's clock.

use super::{Store, StoreError};

/// One key as `apikey ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ApiKeyRow {
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl Store {
    /// Records a key by its hash; false when a key of that name exists (revoked or not).
    pub async fn create_api_key(
        &self,
        name: &str,
        scope: &str,
        key_hash: &str,
    ) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "INSERT INTO api_keys (name, scope, key_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(scope)
        .bind(key_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every key, oldest first.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query_as::<_, ApiKeyRow>(
            "SELECT name, scope, created_at, revoked_at, last_used_at FROM api_keys \
             ORDER BY created_at, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Revokes the key named `name`; false when there is no live key of that name.
    pub async fn revoke_api_key(&self, name: &str) -> Result<bool, StoreError> {
        let now = self.db_now_ms().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
        )
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The live key with this hash (name and scope), noting when it was used.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let now = self.db_now_ms().await?;
        let row = sqlx::query_as::<_, ApiKeyRow>(
            "UPDATE api_keys SET last_used_at = $2 WHERE key_hash = $1 AND revoked_at IS NULL \
             RETURNING name, scope, created_at, revoked_at, last_used_at",
        )
        .bind(key_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row)
    }
}
