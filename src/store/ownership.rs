//! Which partitions this server owns, as its lease says (every one on the embedded store,
//! a fair share on a server of a cluster). Read by the committer (a server without the
//! shared partition stages its log entries), by saga recovery and the census (a server
//! recovers and counts its own partitions' sagas), and by every worker that walks a
//! partitioned table (expiry, retention) or a shared one (delivery, the event-log handler,
//! the staged-log mover: the shared partition's owner's alone). A watch, so that the lease
//! can change the share while all of them run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::domain::partition::Owned;

/// This server's share of the partitions; clones see the same one.
#[derive(Clone)]
pub struct Ownership(Arc<Inner>);

struct Inner {
    share: watch::Sender<Arc<Owned>>,
    /// By partition number: how many times this server has lost it. A watch keeps only the
    /// latest share, so a partition lost and taken back between two looks would seem never
    /// to have left; its count says it did (see `operations::share`).
    losses: Box<[AtomicU64]>,
}

impl Ownership {
    pub(crate) fn new(owned: Owned) -> Ownership {
        let losses = (0..owned.count().count()).map(|_| AtomicU64::new(0)).collect();
        Ownership(Arc::new(Inner { share: watch::Sender::new(Arc::new(owned)), losses }))
    }

    /// The share as of now.
    pub fn current(&self) -> Arc<Owned> {
        self.0.share.borrow().clone()
    }

    /// Another share from now on: the lease lost partitions to another server (or, in
    /// tests, stands for a server with a share). The losses are counted before the share
    /// is published, so whoever sees the new share sees them.
    pub(crate) fn set(&self, owned: Owned) {
        for lost in self.current().minus(&owned).partitions() {
            if let Some(count) = self.0.losses.get(usize::from(lost.0)) {
                count.fetch_add(1, Ordering::AcqRel);
            }
        }
        self.0.share.send_replace(Arc::new(owned));
    }

    /// The share, to be woken when it changes.
    pub fn changes(&self) -> watch::Receiver<Arc<Owned>> {
        self.0.share.subscribe()
    }

    /// How many times each partition (by number) has been lost so far.
    pub fn losses(&self) -> Vec<u64> {
        self.0.losses.iter().map(|c| c.load(Ordering::Acquire)).collect()
    }
}
