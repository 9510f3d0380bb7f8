//! Which partitions this server owns, as its lease says (every one on the embedded store,
//! a fair share on a server of a cluster). Read by the committer (a server without the
//! shared partition stages its log entries), by saga recovery and the census (a server
//! recovers and counts its own partitions' sagas), and by every worker that walks a
//! partitioned table (expiry, retention) or a shared one (delivery, the event-log handler,
//! the staged-log mover: the shared partition's owner's alone). A watch, so that the lease
//! can change the share while all of them run.

use std::sync::Arc;

use tokio::sync::watch;

use crate::domain::partition::Owned;

/// This server's share of the partitions; clones see the same one.
#[derive(Clone)]
pub struct Ownership(Arc<watch::Sender<Arc<Owned>>>);

impl Ownership {
    pub(crate) fn new(owned: Owned) -> Ownership {
        Ownership(Arc::new(watch::Sender::new(Arc::new(owned))))
    }

    /// The share as of now.
    pub fn current(&self) -> Arc<Owned> {
        self.0.borrow().clone()
    }

    /// Another share from now on: the lease lost partitions to another server (or, in
    /// tests, stands for a server with a share).
    pub(crate) fn set(&self, owned: Owned) {
        self.0.send_replace(Arc::new(owned));
    }

    /// The share, to be woken when it changes.
    pub fn changes(&self) -> watch::Receiver<Arc<Owned>> {
        self.0.subscribe()
    }
}
