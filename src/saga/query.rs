//! The operators' saga filter: state, type, current step, error text, order, customer and
//! creation time, newest or oldest first. The narrowest index the filter allows is walked
//! (an order's or a customer's sagas, the unfinished ones, a state or a type), and the rest
//! of the filter is checked row by row with a bounded number of rows read per page, so a
//! page never costs more than [`SCAN_BUDGET`] reads, however rare the matches.

use std::ops::Bound;

use serde_json::{json, Value};

use super::engine::SagaEngine;
use super::instance::{SagaInstance, SagaState};
use crate::domain::ids::{CustomerId, OrderId, SagaId};
use crate::domain::time::Timestamp;
use crate::saga::SagaError;
use crate::store::{keys, saga_listing, saga_owner_prefix, Page, SagaOwner, Store, StoreError, Table, Walk};

/// Rows read at most for one page.
pub const SCAN_BUDGET: usize = 5_000;
/// Longest error text searched for.
const MAX_ERROR_TEXT: usize = 200;
/// A saga id's time (UUIDv7, milliseconds) and its record's `created_at` are taken a moment
/// apart; the id range searched is this much wider than asked, the record decides.
const ID_CLOCK_SLACK_MS: i64 = 1_000;

/// Which sagas; every field is optional and they all have to hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SagaFilter {
    pub state: Option<SagaState>,
    pub saga_type: Option<String>,
    /// The name of the current work (a step or, while compensating, a compensation).
    pub step: Option<String>,
    /// Lower-cased; found (as a substring) in the saga's error or any work's last error.
    pub error: Option<String>,
    pub order_id: Option<OrderId>,
    pub customer_id: Option<CustomerId>,
    /// Created at or after.
    pub created_after: Option<Timestamp>,
    /// Created strictly before.
    pub created_before: Option<Timestamp>,
}

/// The filter's parameters as received (query string or JSON body), before validation.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct FilterParams {
    pub state: Option<String>,
    #[serde(rename = "type")]
    pub saga_type: Option<String>,
    pub step: Option<String>,
    pub error: Option<String>,
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
    pub created_after: Option<String>,
    pub created_before: Option<String>,
}

impl FilterParams {
    /// From a query string; an empty value counts as absent.
    pub fn from_query(q: &std::collections::HashMap<String, String>) -> FilterParams {
        let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
        FilterParams {
            state: get("state"),
            saga_type: get("type"),
            step: get("step"),
            error: get("error"),
            order_id: get("order_id"),
            customer_id: get("customer_id"),
            created_after: get("created_after"),
            created_before: get("created_before"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    OldestFirst,
    NewestFirst,
}

impl Direction {
    /// `oldest` (the default) or `newest`.
    pub fn parse(s: Option<&str>) -> Result<Direction, SagaError> {
        match s {
            None | Some("") | Some("oldest") => Ok(Direction::OldestFirst),
            Some("newest") => Ok(Direction::NewestFirst),
            Some(_) => Err(SagaError::invalid("order", "order must be newest or oldest")),
        }
    }
}

fn time(field: &str, v: Option<&str>) -> Result<Option<Timestamp>, SagaError> {
    v.map(|v| {
        chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| Timestamp(t.timestamp_millis()))
            .map_err(|_| SagaError::invalid(field, format!("{field} must be an RFC 3339 time")))
    })
    .transpose()
}

fn id<T: std::str::FromStr>(field: &str, v: Option<&str>) -> Result<Option<T>, SagaError> {
    v.map(|v| v.parse().map_err(|_| SagaError::invalid(field, format!("{field} must be a UUID")))).transpose()
}

impl SagaFilter {
    /// Checks every parameter: a state and type that exist, a step of that type (of any
    /// type without one), well-formed ids and times, a time range that is not empty.
    pub fn parse(p: &FilterParams, engine: &SagaEngine) -> Result<SagaFilter, SagaError> {
        let state = match p.state.as_deref() {
            Some(s) => Some(SagaState::parse(s).ok_or_else(|| SagaError::invalid("state", "unknown saga state"))?),
            None => None,
        };
        if let Some(t) = p.saga_type.as_deref() {
            if !engine.has_type(t) {
                return Err(SagaError::invalid("type", format!("unknown saga type {t:.100}")));
            }
        }
        if let Some(step) = p.step.as_deref() {
            if !engine.has_step(p.saga_type.as_deref(), step) {
                return Err(SagaError::invalid("step", format!("no saga of this type has a step {step:.100}")));
            }
        }
        let error = match p.error.as_deref() {
            Some(e) if e.trim().is_empty() || e.chars().count() > MAX_ERROR_TEXT || e.chars().any(char::is_control) => {
                return Err(SagaError::invalid("error", "error must be 1 to 200 printable characters"));
            }
            e => e.map(str::to_lowercase),
        };
        let filter = SagaFilter {
            state,
            saga_type: p.saga_type.clone(),
            step: p.step.clone(),
            error,
            order_id: id("order_id", p.order_id.as_deref())?,
            customer_id: id("customer_id", p.customer_id.as_deref())?,
            created_after: time("created_after", p.created_after.as_deref())?,
            created_before: time("created_before", p.created_before.as_deref())?,
        };
        if let (Some(a), Some(b)) = (filter.created_after, filter.created_before) {
            if a >= b {
                return Err(SagaError::invalid("created_before", "created_before must be later than created_after"));
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, s: &SagaInstance) -> bool {
        self.state.is_none_or(|st| st == s.state)
            && self.saga_type.as_deref().is_none_or(|t| t == s.saga_type)
            && self.step.as_deref().is_none_or(|step| s.current().is_some_and(|w| w.name == step))
            && self.order_id.is_none_or(|o| s.order_id == Some(o))
            && self.customer_id.is_none_or(|c| s.customer_id == Some(c))
            && self.created_after.is_none_or(|t| s.created_at >= t)
            && self.created_before.is_none_or(|t| s.created_at < t)
            && self.error.as_deref().is_none_or(|e| error_texts(s).any(|text| text.to_lowercase().contains(e)))
    }

    /// The filter as the operator gave it (for a bulk action's record and its answer).
    pub fn to_json(&self) -> Value {
        json!({
            "state": self.state.map(SagaState::as_str),
            "type": self.saga_type,
            "step": self.step,
            "error": self.error,
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "created_after": self.created_after.map(Timestamp::rfc3339),
            "created_before": self.created_before.map(Timestamp::rfc3339),
        })
    }

    /// The index to walk: one order's or customer's sagas when named (a handful), the
    /// unfinished ones when only those can match, else the state and type listing.
    fn source(&self, unfinished_only: bool) -> (Table, Vec<u8>) {
        if let Some(o) = self.order_id {
            return (Table::SagasByOwner, saga_owner_prefix(SagaOwner::Order, o.as_bytes()));
        }
        if let Some(c) = self.customer_id {
            return (Table::SagasByOwner, saga_owner_prefix(SagaOwner::Customer, c.as_bytes()));
        }
        if unfinished_only {
            return (Table::ActiveSagas, Vec::new());
        }
        saga_listing(self.state, self.saga_type.as_deref()).unwrap_or((Table::Sagas, Vec::new()))
    }
}

/// Every error text a saga carries: its business error and each work's last error.
fn error_texts(s: &SagaInstance) -> impl Iterator<Item = &str> {
    let recorded = s.error.iter().flat_map(|e| [e.code.as_str(), e.message.as_str()]);
    let works = s.steps.iter().flat_map(|r| std::iter::once(&r.step).chain(r.compensation.as_ref()));
    recorded.chain(works.filter_map(|w| w.last_error.as_deref()))
}

fn from(b: &Option<[u8; 16]>) -> Bound<&[u8]> {
    b.as_ref().map_or(Bound::Unbounded, |k| Bound::Included(k.as_slice()))
}

fn until(b: &Option<[u8; 16]>) -> Bound<&[u8]> {
    b.as_ref().map_or(Bound::Unbounded, |k| Bound::Excluded(k.as_slice()))
}

/// Which page: after `cursor` in `direction`, at most `limit` rows and `budget` reads;
/// with `unfinished_only` the walk stays in the unfinished sagas (what bulk actions touch).
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub direction: Direction,
    pub cursor: Option<SagaId>,
    pub limit: usize,
    pub budget: usize,
    pub unfinished_only: bool,
}

/// One page of sagas matching `filter` (and `keep`).
pub fn page(
    store: &Store,
    filter: &SagaFilter,
    paging: &Paging,
    keep: impl Fn(&SagaInstance) -> bool,
) -> Result<(Vec<SagaInstance>, Option<SagaId>), StoreError> {
    let (index, prefix) = filter.source(paging.unfinished_only);
    let after = filter.created_after.map(|t| keys::saga_id_floor(t.0 - ID_CLOCK_SLACK_MS));
    let before = filter.created_before.map(|t| keys::saga_id_floor(t.0 + ID_CLOCK_SLACK_MS));
    let cursor = paging.cursor.map(|c| *c.as_bytes());
    let newest_first = paging.direction == Direction::NewestFirst;
    // The cursor narrows the side the walk comes from (it lies within the time range).
    let (lower, upper) = match (newest_first, &cursor) {
        (false, Some(c)) => (Bound::Excluded(c.as_slice()), until(&before)),
        (true, Some(c)) => (from(&after), Bound::Excluded(c.as_slice())),
        (_, None) => (from(&after), until(&before)),
    };
    let walk = Walk { index, prefix: &prefix, main: Table::Sagas, lower, upper, reverse: newest_first };
    let page: Page<SagaInstance> =
        store.page_walk(&walk, paging.limit, paging.budget, |s| filter.matches(s) && keep(s))?;
    Ok((page.rows, page.next.and_then(|k| uuid::Uuid::from_slice(&k).ok()).map(SagaId)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Answer;
    use crate::retry::RetryPolicy;
    use crate::services::ServiceError;

    fn saga() -> SagaInstance {
        let def = &crate::saga::definition::embedded().unwrap()[0];
        SagaInstance::new(def, |_| RetryPolicy::NONE, json!({}), None, None)
    }

    #[test]
    fn error_text_matches_any_recorded_error_ignoring_case() {
        let mut s = saga();
        let f = |e: &str| SagaFilter { error: Some(e.to_lowercase()), ..SagaFilter::default() };
        assert!(!f("timeout").matches(&s));
        s.steps[1].step.last_error = Some("Gateway TIMEOUT after 2s".into());
        assert!(f("timeout").matches(&s) && f("gateway timeout").matches(&s));
        s.error = Some(ServiceError::from(crate::services::orders::CheckoutError::EmptyCart).record());
        assert!(f("EMPTY_CART").matches(&s) && f("cart is empty").matches(&s));
    }

    #[test]
    fn the_walk_starts_from_the_narrowest_index() {
        let order = OrderId::new();
        let by_order = SagaFilter { order_id: Some(order), state: Some(SagaState::Stuck), ..SagaFilter::default() };
        assert_eq!(by_order.source(true), (Table::SagasByOwner, saga_owner_prefix(SagaOwner::Order, order.as_bytes())));
        let customer = CustomerId::new();
        let by_customer = SagaFilter { customer_id: Some(customer), ..SagaFilter::default() };
        let prefix = saga_owner_prefix(SagaOwner::Customer, customer.as_bytes());
        assert_eq!(by_customer.source(false), (Table::SagasByOwner, prefix));
        let failed = SagaFilter { state: Some(SagaState::Failed), step: Some("x".into()), ..SagaFilter::default() };
        assert_eq!(failed.source(false).0, Table::SagasByFilter);
        assert_eq!(failed.source(true).0, Table::ActiveSagas, "bulk actions only look at unfinished sagas");
        let stuck = SagaFilter { state: Some(SagaState::Stuck), ..SagaFilter::default() };
        assert_eq!(stuck.source(false).0, Table::ActiveSagas);
        assert_eq!(SagaFilter::default().source(false).0, Table::Sagas);
    }

    #[test]
    fn id_floor_orders_like_uuid_v7_ids() {
        let id = uuid::Uuid::now_v7();
        let ms = Timestamp::now().0;
        assert!(keys::saga_id_floor(ms - 5_000).as_slice() < id.as_bytes().as_slice());
        assert!(keys::saga_id_floor(ms + 5_000).as_slice() > id.as_bytes().as_slice());
    }
}
