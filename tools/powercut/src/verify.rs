//! After the cut and the restart: is every acknowledged change still there, and is the
//! stock consistent with the orders that survived?

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{Client, ADMIN};
use crate::workload::{cart_items, str_of, Cancel, ClientLog, Customer, ItemKey, Shared, PASSWORD};

/// Collects what is wrong; an empty list is a pass.
pub struct Check {
    client: Client,
    pub problems: Vec<String>,
}

impl Check {
    pub fn new(client: Client) -> Check {
        Check { client, problems: Vec::new() }
    }

    fn fail(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// GET that must answer 200; a problem otherwise.
    fn get(&mut self, path: &str, token: Option<&str>) -> Option<Value> {
        match self.client.get(path, token) {
            Ok(r) if r.status == 200 => Some(r.body),
            Ok(r) => {
                let code = r.body["error"]["code"].as_str().unwrap_or_default().to_string();
                self.fail(format!("GET {path}: {} {code}", r.status));
                None
            }
            Err(e) => {
                self.fail(format!("GET {path}: {e}"));
                None
            }
        }
    }

    pub fn run(&mut self, shared: &Shared, logs: &[ClientLog]) {
        // Recovery resumes unfinished sagas; the stock is only comparable once they settle.
        let settled = self.sagas_settle();
        self.categories(shared);
        self.products(shared);
        self.stock(shared, settled);
        for customer in logs.iter().flat_map(|l| &l.customers) {
            self.customer(customer);
        }
    }

    fn sagas_settle(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut busy = Vec::new();
        while Instant::now() < deadline {
            busy.clear();
            for state in ["RUNNING", "RETRYING", "COMPENSATING"] {
                let Some(body) = self.get(&format!("/admin/v1/sagas?state={state}&limit=500"), Some(ADMIN)) else {
                    return false;
                };
                busy.extend(
                    body["sagas"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| format!("{} {state}", str_of(&s["saga_id"]))),
                );
            }
            if busy.is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.fail(format!("sagas still unfinished 30 s after the restart: {busy:?}"));
        false
    }

    fn categories(&mut self, shared: &Shared) {
        let Some(body) = self.get("/v1/categories", None) else { return };
        let present: HashMap<String, String> = body["categories"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (str_of(&c["category_id"]), str_of(&c["name"])))
            .collect();
        for (id, name) in &shared.categories {
            if present.get(id) != Some(name) {
                self.fail(format!("acknowledged category {id} ({name:?}) is {:?} after the cut", present.get(id)));
            }
        }
    }

    fn products(&mut self, shared: &Shared) {
        for p in &shared.products {
            let Some(body) = self.get(&format!("/v1/products/{}", p.id), None) else { continue };
            let variants: Vec<(String, String)> = body["variants"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| (str_of(&v["variant_id"]), str_of(&v["name"])))
                .collect();
            let same = str_of(&body["name"]) == p.name
                && str_of(&body["description"]) == p.description
                && str_of(&body["price"]) == p.price
                && str_of(&body["category_id"]) == p.category_id
                && variants == p.variants;
            if !same {
                let size = if p.large { "large" } else { "small" };
                self.fail(format!("acknowledged {size} product {} differs after the cut", p.id));
            }
        }
    }

    /// on_hand is the initial stock plus the acknowledged restocks (plus, at most, the
    /// unanswered ones); reserved is what the open orders hold.
    fn stock(&mut self, shared: &Shared, settled: bool) {
        let held = if settled { self.held_by_open_orders() } else { None };
        for p in &shared.products {
            let Some(body) = self.get(&format!("/admin/v1/inventory/{}", p.id), Some(ADMIN)) else { continue };
            let mut missing: Vec<&ItemKey> = shared.stock.keys().filter(|(pid, _)| pid == &p.id).collect();
            for item in body["items"].as_array().into_iter().flatten() {
                let key: ItemKey = (p.id.clone(), item["variant_id"].as_str().map(str::to_string));
                missing.retain(|k| **k != key);
                let (on_hand, reserved, available) = (n(&item["on_hand"]), n(&item["reserved"]), n(&item["available"]));
                let expected = shared.stock.get(&key).copied().unwrap_or_default();
                if on_hand < expected.acked || on_hand > expected.acked + expected.unknown {
                    self.fail(format!(
                        "{key:?}: on_hand {on_hand}, acknowledged {} (+ up to {} unanswered)",
                        expected.acked, expected.unknown
                    ));
                }
                if reserved > on_hand || available != on_hand.saturating_sub(reserved) {
                    self.fail(format!("{key:?}: on_hand {on_hand}, reserved {reserved}, available {available}"));
                }
                if let Some(held) = &held {
                    let want = held.get(&key).copied().unwrap_or(0);
                    if reserved != want {
                        self.fail(format!("{key:?}: reserved {reserved} but open orders hold {want}"));
                    }
                }
            }
            if !missing.is_empty() {
                self.fail(format!("product {}: {} acknowledged stock items missing", p.id, missing.len()));
            }
        }
    }

    /// Quantities held by PENDING and CONFIRMED orders, every page.
    fn held_by_open_orders(&mut self) -> Option<BTreeMap<ItemKey, u64>> {
        let mut held = BTreeMap::new();
        for status in ["PENDING", "CONFIRMED"] {
            let mut cursor = String::new();
            loop {
                let path = format!("/admin/v1/orders?status={status}&limit=1000{cursor}");
                let body = self.get(&path, Some(ADMIN))?;
                for order in body["orders"].as_array().into_iter().flatten() {
                    for (key, q) in cart_items(&order["items"]) {
                        *held.entry(key).or_default() += q;
                    }
                }
                match body["next_cursor"].as_str() {
                    Some(next) => cursor = format!("&cursor={next}"),
                    None => break,
                }
            }
        }
        Some(held)
    }

    fn customer(&mut self, c: &Customer) {
        let login = self.client.post("/v1/sessions", None, &json!({ "email": c.email, "password": PASSWORD }));
        let token = match login {
            Ok(r) if r.status == 201 => str_of(&r.body["token"]),
            Ok(r) => {
                return self.fail(format!("registered customer {} cannot log in: {} {}", c.email, r.status, r.body))
            }
            Err(e) => return self.fail(format!("registered customer {} cannot log in: {e}", c.email)),
        };
        if let Some(me) = self.get("/v1/me", Some(&token)) {
            if str_of(&me["customer_id"]) != c.id || (c.verified && me["email_verified"] != true) {
                self.fail(format!("customer {} after the cut: {me}", c.email));
            }
        }
        if let Some(old) = &c.token {
            // An acknowledged session still opens the door.
            self.get("/v1/me", Some(old));
        }
        if let Some(expected) = &c.cart {
            if let Some(cart) = self.get("/v1/cart", Some(&token)) {
                let items = cart_items(&cart["items"]);
                if &items != expected {
                    self.fail(format!("cart of {}: {items:?}, acknowledged {expected:?}", c.email));
                }
            }
        }
        for order in &c.orders {
            let Some(body) = self.get(&format!("/v1/orders/{}", order.id), Some(&token)) else { continue };
            let status = str_of(&body["status"]);
            let allowed: &[&str] = match order.cancel {
                Cancel::No => &["PENDING", "CONFIRMED"],
                Cancel::Acked => &["CANCELLED"],
                Cancel::Unknown => &["PENDING", "CONFIRMED", "CANCELLED"],
            };
            if !allowed.contains(&status.as_str()) || cart_items(&body["items"]) != order.items {
                self.fail(format!("order {} of {}: status {status}, expected one of {allowed:?}", order.id, c.email));
            }
        }
        for saga in &c.sagas {
            self.get(&format!("/v1/sagas/{saga}"), Some(&token));
        }
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(u64::MAX)
}
