//! Order ids this server minted and has not yet handed to an order actor's activation:
//! their order cannot be in the store, so creating it needs no read first.
//!
//! A checkout's `create_order` used to read the store for the order it was about to
//! create: on PostgreSQL a round trip that parks the thread activating the actor (a saga
//! arbiter, and with it every saga on that arbiter), for an id minted milliseconds earlier.
//! The only write of a new order is `create_order`'s, so an id nobody has activated yet has
//! no order; the first activation takes the id out, and every later one (a retry, a second
//! activation after a failed write, another server, a restart) reads as before.
//!
//! Bounded without bookkeeping on the hot path: ids live in the current generation or the
//! one before; generations turn every [`GENERATION`], so an id is forgotten (its creation
//! reads, as before) after one to two generations, the memory is what two generations of
//! checkouts mint, and a checkout that never reached `create_order` costs nothing lasting.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::ids::OrderId;

const GENERATION: Duration = Duration::from_secs(30);

pub struct FreshIds {
    inner: Mutex<Generations>,
}

struct Generations {
    current: HashSet<OrderId>,
    previous: HashSet<OrderId>,
    turned_at: Instant,
}

impl FreshIds {
    pub fn new() -> FreshIds {
        FreshIds {
            inner: Mutex::new(Generations {
                current: HashSet::new(),
                previous: HashSet::new(),
                turned_at: Instant::now(),
            }),
        }
    }

    /// A new order id, remembered as never written.
    pub fn mint(&self) -> OrderId {
        let id = OrderId::new();
        self.remember(id, Instant::now());
        id
    }

    /// Whether `id` was minted here and never taken before; it is not fresh any more.
    pub fn take(&self, id: OrderId) -> bool {
        let mut g = self.lock();
        g.current.remove(&id) || g.previous.remove(&id)
    }

    fn remember(&self, id: OrderId, now: Instant) {
        let mut g = self.lock();
        if now.duration_since(g.turned_at) >= GENERATION {
            g.previous = std::mem::take(&mut g.current);
            g.turned_at = now;
        }
        g.current.insert(id);
    }

    /// The sets stay whole whatever a panicking holder did (an insert or a remove), so a
    /// poisoned lock is taken as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for FreshIds {
    fn default() -> Self {
        FreshIds::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_id_is_fresh_once() {
        let ids = FreshIds::new();
        let id = ids.mint();
        assert!(ids.take(id));
        assert!(!ids.take(id), "the second activation reads");
        assert!(!ids.take(OrderId::new()), "an id minted elsewhere is never fresh");
    }

    #[test]
    fn an_id_is_forgotten_after_two_generations_and_the_memory_with_it() {
        let ids = FreshIds::new();
        let start = Instant::now();
        let (old, kept) = (OrderId::new(), OrderId::new());
        ids.remember(old, start);
        ids.remember(kept, start + GENERATION); // turns: `old` is in the previous generation
        assert!(ids.take(old), "one generation on, still fresh");
        ids.remember(OrderId::new(), start + GENERATION * 2); // turns again: `kept` previous
        ids.remember(OrderId::new(), start + GENERATION * 3); // and again: `kept` forgotten
        assert!(!ids.take(kept), "forgotten: its creation reads the store");
        let g = ids.lock();
        assert_eq!((g.current.len(), g.previous.len()), (1, 1), "two generations at most");
    }
}
