//! Expired sessions (customers' and the console's) and verification tokens are refused when
//! presented, but would otherwise stay in the store forever (every login adds a session).
//! The sweeper task (`operations::retention::spawn_sweeper`) deletes them every
//! `auth.sweep_interval_secs`, a batch at a time.

use super::ServiceError;
use crate::domain::time::Timestamp;
use crate::store::{keys, Record, Session, StaffSession, Store, StoreError, Table, VerifyToken, WriteSet};

/// Keys looked at, and deleted, per write.
const BATCH: usize = 256;

/// Deletes every session and verification token that expired by `now`; returns how many.
pub async fn sweep_expired(store: &Store, now: Timestamp) -> Result<usize, ServiceError> {
    // Sessions and tokens live in the shared partition: its owner sweeps them.
    if !store.owns_shared() {
        return Ok(0);
    }
    let sessions = sweep_table::<Session>(store, Table::Sessions, |s| s.expires_at <= now).await?;
    let staff = sweep_table::<StaffSession>(store, Table::StaffSessions, |s| s.expires_at <= now).await?;
    let tokens = sweep_table::<VerifyToken>(store, Table::VerifyTokens, |t| t.expires_at <= now).await?;
    Ok(sessions + staff + tokens)
}

/// Every such table is keyed by a 32-byte token hash.
async fn sweep_table<T: Record>(
    store: &Store,
    table: Table,
    expired: impl Fn(&T) -> bool,
) -> Result<usize, ServiceError> {
    let end = keys::past_every_token_digest();
    let mut from = Vec::new();
    let mut deleted = 0;
    loop {
        let keys = store.keys_between(table, &from, &end, BATCH)?;
        let Some(last) = keys.last() else { return Ok(deleted) };
        from = keys::successor(last);
        let mut ws = WriteSet::new();
        for key in keys {
            match store.get::<T>(table, &key) {
                Ok(Some(record)) if expired(&record) => {
                    ws = ws.delete(table, key);
                    deleted += 1;
                }
                // Gone meanwhile, live, or an older record version without an expiry.
                Ok(_) | Err(StoreError::Codec { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !ws.is_empty() {
            store.commit(ws).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::CustomerId;

    use crate::store::keys;

    /// A token digest numbered `n`.
    fn key(n: usize) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(n as u64).to_be_bytes());
        k
    }

    fn number(k: &[u8]) -> usize {
        u64::from_be_bytes(k[..8].try_into().unwrap()) as usize
    }

    #[tokio::test]
    async fn expired_sessions_and_tokens_are_deleted_and_the_rest_kept() {
        let (_dir, store) = Store::temporary();
        let now = Timestamp::now();
        let who = CustomerId::new();
        let session = |expires_at| Session { customer_id: who, created_at: now, expires_at };
        let token = |expires_at| VerifyToken { customer_id: who, expires_at };
        let mut ws = WriteSet::new();
        // More than one batch of expired sessions, and live ones among them.
        for n in 0..=(BATCH + 10) {
            let expires = if n.is_multiple_of(3) { now.plus_millis(60_000) } else { now.plus_millis(-1) };
            ws = ws.save(keys::session(&key(n)), &session(expires));
        }
        ws = ws
            .save(keys::verify_token(&key(1)), &token(now))
            .save(keys::verify_token(&key(2)), &token(now.plus_millis(60_000)))
            // A token from before tokens expired: a bare customer id.
            .save(keys::verify_token(&key(3)), &who.0);
        let staff = |expires_at| StaffSession {
            role: crate::store::StaffRole::Admin,
            operator: None,
            csrf: "csrf_x".into(),
            token_fingerprint: [0; 32],
            created_at: now,
            expires_at,
        };
        ws = ws
            .save(keys::staff_session(&key(1)), &staff(now.plus_millis(-1)))
            .save(keys::staff_session(&key(2)), &staff(now.plus_millis(60_000)));
        store.commit(ws).await.unwrap();

        let live_sessions = (0..=(BATCH + 10)).filter(|n| n.is_multiple_of(3)).count();
        let expired_sessions = BATCH + 11 - live_sessions;
        assert_eq!(sweep_expired(&store, now).await.unwrap(), expired_sessions + 1 + 1);
        assert!(!store.exists(&keys::staff_session(&key(1))).unwrap(), "expired console session deleted");
        assert!(store.exists(&keys::staff_session(&key(2))).unwrap(), "live console session kept");
        let left = store.scan_prefix_keys(Table::Sessions, &[], usize::MAX).unwrap();
        assert_eq!(left.len(), live_sessions);
        assert!(left.iter().all(|k| number(k).is_multiple_of(3)));
        assert!(!store.exists(&keys::verify_token(&key(1))).unwrap(), "expired token deleted");
        assert!(store.exists(&keys::verify_token(&key(2))).unwrap(), "live token kept");
        assert!(store.exists(&keys::verify_token(&key(3))).unwrap(), "old-format token kept");
        assert_eq!(sweep_expired(&store, now).await.unwrap(), 0, "nothing left to sweep");
        store.close().unwrap();
    }
}
