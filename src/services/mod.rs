//! The services of the shop's entities, thin: validate, talk to actors or the store, shape
//! the answer. They know nothing of sagas: the saga engine's steps call them, and the
//! operations that drive sagas (`operations`) sit above both.

pub mod audit;
pub mod error;
pub use error::ServiceError;
pub mod caches;
pub mod cart;
pub mod catalog;
pub mod credential_sweep;
pub mod customers;
pub mod fresh_ids;
pub mod invalidations;
pub mod inventory;
pub mod login_guard;
pub mod logs;
pub mod notification_handler;
pub mod notifications;
pub mod orders;
pub mod staff_sessions;

use sha2::{Digest, Sha256};

/// Tokens are stored only as their SHA-256, so a copy of the database grants nothing.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token: 32 bytes from the OS generator, hex, with a readable prefix.
pub fn new_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", hex::encode(bytes))
}

/// A small set of async locks picked by key hash: serialises read-modify-write of records
/// that have no actor (customers, products) without one global lock.
pub struct Stripes {
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl Stripes {
    pub fn new(n: usize) -> Stripes {
        Stripes { locks: (0..n).map(|_| tokio::sync::Mutex::new(())).collect() }
    }

    pub async fn lock(&self, key: &[u8]) -> tokio::sync::MutexGuard<'_, ()> {
        let h = key.iter().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize));
        self.locks[h % self.locks.len()].lock().await
    }
}
