//! Concurrent clients that drive the shop and write down every acknowledged (2xx) change,
//! and what may or may not have happened for the requests that got no clear answer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::http::{outcome, Client, Outcome, ADMIN};
use crate::rng::Rng;

pub const PASSWORD: &str = "powercut-pass-9";

/// A stock item: product and variant (`None` for a product without variants).
pub type ItemKey = (String, Option<String>);

#[derive(Clone)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub description: String,
    pub price: String,
    pub category_id: String,
    /// (variant_id, name) in the order the server answered.
    pub variants: Vec<(String, String)>,
    pub large: bool,
}

/// What on_hand may be: initial stock plus acknowledged restocks, and up to `unknown` more
/// from restocks that got no clear answer.
#[derive(Default, Clone, Copy)]
pub struct Stock {
    pub acked: u64,
    pub unknown: u64,
}

/// Catalogue and stock, shared by every client.
#[derive(Default)]
pub struct Shared {
    pub categories: Vec<(String, String)>,
    pub products: Vec<Product>,
    pub stock: HashMap<ItemKey, Stock>,
    pub restocks: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    No,
    Acked,
    Unknown,
}

pub struct Order {
    pub id: String,
    /// (product, variant) -> quantity, as the 201 answered.
    pub items: BTreeMap<ItemKey, u64>,
    pub cancel: Cancel,
}

/// One registered customer (acknowledged), driven by exactly one client.
pub struct Customer {
    pub id: String,
    pub email: String,
    pub verified: bool,
    /// The last acknowledged session token.
    pub token: Option<String>,
    /// The cart as the last acknowledged cart or order answer left it; `None` once a
    /// request that could change it got no clear answer.
    pub cart: Option<BTreeMap<ItemKey, u64>>,
    pub orders: Vec<Order>,
    /// Orders answered 202 (saga started, still running): the saga must exist.
    pub sagas: Vec<String>,
}

/// Everything one client had acknowledged when the power went.
#[derive(Default)]
pub struct ClientLog {
    pub customers: Vec<Customer>,
}

pub struct Workload {
    pub client: Client,
    pub shared: Arc<Mutex<Shared>>,
    pub stop: Arc<AtomicBool>,
    pub small_only: bool,
}

impl Workload {
    /// One client's loop until `stop`; `id` names its customers.
    pub fn run_client(&self, id: usize, seed: u64) -> ClientLog {
        let mut rng = Rng::new(seed);
        let mut log = ClientLog::default();
        let mut n = 0;
        while !self.stop.load(Ordering::SeqCst) {
            n += 1;
            let no_catalogue = self.lock().products.is_empty();
            match rng.range(1, 100) {
                _ if self.lock().categories.is_empty() => self.create_category(&mut rng),
                1..=2 => self.create_category(&mut rng),
                _ if no_catalogue => self.create_product(&mut rng),
                3..=30 => self.create_product(&mut rng),
                31..=45 => self.restock(&mut rng),
                _ => self.customer_step(&mut rng, &mut log, id, n),
            }
        }
        log
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create_category(&self, rng: &mut Rng) {
        let name = format!("cat {}", rng.text(20));
        let r = self.client.post("/admin/v1/categories", Some(ADMIN), &json!({ "name": name }));
        if let Ok(r) = &r {
            if r.ok() {
                let id = r.body["category_id"].as_str().unwrap_or_default().to_string();
                self.lock().categories.push((id, name));
            }
        }
    }

    /// Half the products (unless small only) are as large as the API allows: a 5,000
    /// character description and 100 variants with 100-character names, so the records
    /// sled writes are big enough for its blob files.
    fn create_product(&self, rng: &mut Rng) {
        let Some((category_id, _)) = rng.pick(&self.lock().categories).cloned() else { return };
        let large = !self.small_only && rng.chance(50);
        let (name, description, variants) = if large {
            let variants: Vec<String> = (0..100).map(|i| format!("v{i:03} {}", rng.text(95))).collect();
            (rng.text(200), rng.text(5000), variants)
        } else {
            let n = rng.range(0, 3);
            let variants: Vec<String> = (0..n).map(|i| format!("v{i} {}", rng.text(8))).collect();
            let (name_len, description_len) = (rng.range(2, 40) as usize, rng.range(0, 200) as usize);
            (rng.text(name_len), rng.text(description_len), variants)
        };
        let price = format!("{}.{:02}", rng.range(1, 300), rng.range(0, 99));
        let mut body = json!({ "name": name, "description": description, "price": price, "category_id": category_id });
        let stocks: Vec<u64> = variants.iter().map(|_| rng.range(0, 60)).collect();
        if variants.is_empty() {
            body["initial_stock"] = json!(rng.range(0, 500));
        } else {
            body["variants"] =
                variants.iter().zip(&stocks).map(|(n, s)| json!({ "name": n, "initial_stock": s })).collect();
        }
        let Ok(r) = self.client.post("/admin/v1/products", Some(ADMIN), &body) else { return };
        if !r.ok() {
            return;
        }
        let id = r.body["product_id"].as_str().unwrap_or_default().to_string();
        let answered: Vec<(String, String)> = r.body["variants"]
            .as_array()
            .map(|vs| vs.iter().map(|v| (str_of(&v["variant_id"]), str_of(&v["name"]))).collect())
            .unwrap_or_default();
        let mut shared = self.lock();
        if answered.is_empty() {
            let initial = body["initial_stock"].as_u64().unwrap_or(0);
            shared.stock.insert((id.clone(), None), Stock { acked: initial, unknown: 0 });
        }
        for ((vid, _), initial) in answered.iter().zip(&stocks) {
            shared.stock.insert((id.clone(), Some(vid.clone())), Stock { acked: *initial, unknown: 0 });
        }
        shared.products.push(Product { id, name, description, price, category_id, variants: answered, large });
    }

    fn restock(&self, rng: &mut Rng) {
        let Some((product_id, variant_id)) = self.pick_item(rng) else { return };
        let quantity = rng.range(1, 50);
        let mut body = json!({ "quantity": quantity });
        if let Some(v) = &variant_id {
            body["variant_id"] = json!(v);
        }
        let r = self.client.post(&format!("/admin/v1/inventory/{product_id}/restock"), Some(ADMIN), &body);
        let mut shared = self.lock();
        let stock = shared.stock.entry((product_id, variant_id)).or_default();
        match outcome(&r) {
            Outcome::Acked => stock.acked += quantity,
            Outcome::Unknown => stock.unknown += quantity,
            Outcome::Refused => {}
        }
        if outcome(&r) == Outcome::Acked {
            shared.restocks += 1;
        }
    }

    fn pick_item(&self, rng: &mut Rng) -> Option<ItemKey> {
        let shared = self.lock();
        let product = rng.pick(&shared.products)?;
        let variant = rng.pick(&product.variants).map(|(id, _)| id.clone());
        Some((product.id.clone(), variant))
    }

    /// Moves one of this client's customers a step along: register, verify, log in, then
    /// cart adds, orders and cancellations.
    fn customer_step(&self, rng: &mut Rng, log: &mut ClientLog, client_id: usize, n: usize) {
        if log.customers.is_empty() || rng.chance(15) {
            return self.register(log, client_id, n);
        }
        let index = rng.range(0, log.customers.len() as u64 - 1) as usize;
        let customer = &mut log.customers[index];
        if !customer.verified {
            self.verify(customer);
        } else if customer.token.is_none() {
            self.login(customer);
        } else {
            match rng.range(1, 100) {
                1..=60 => self.add_to_cart(rng, customer),
                61..=85 => self.place_order(customer),
                _ => self.cancel_order(rng, customer),
            }
        }
    }

    fn register(&self, log: &mut ClientLog, client_id: usize, n: usize) {
        let email = format!("c{client_id}-{n}@example.com");
        let body = json!({ "email": email, "password": PASSWORD, "name": "Power Cut" });
        let Ok(r) = self.client.post("/v1/customers", None, &body) else { return };
        if r.ok() {
            log.customers.push(Customer {
                id: str_of(&r.body["customer_id"]),
                email,
                verified: false,
                token: None,
                cart: Some(BTreeMap::new()),
                orders: Vec::new(),
                sagas: Vec::new(),
            });
        }
    }

    /// The verification token is in the queued email's payload (admin notifications).
    fn verify(&self, customer: &mut Customer) {
        let Ok(list) = self.client.get("/admin/v1/notifications?kind=email_verification&limit=1000", Some(ADMIN))
        else {
            return;
        };
        let token = list.body["notifications"].as_array().and_then(|ns| {
            ns.iter()
                .find(|n| n["payload"]["customer_id"] == customer.id.as_str())
                .map(|n| n["payload"]["verification_token"].clone())
        });
        let Some(token) = token else { return };
        let r = self.client.post("/v1/customers/verify-email", None, &json!({ "token": token }));
        // Unanswered: maybe verified; it stays unverified here and is simply not checked.
        customer.verified = outcome(&r) == Outcome::Acked;
    }

    fn login(&self, customer: &mut Customer) {
        let r = self.client.post("/v1/sessions", None, &json!({ "email": customer.email, "password": PASSWORD }));
        if let Ok(r) = r {
            if r.ok() {
                customer.token = Some(str_of(&r.body["token"]));
            }
        }
    }

    fn add_to_cart(&self, rng: &mut Rng, customer: &mut Customer) {
        let Some((product_id, variant_id)) = self.pick_item(rng) else { return };
        let body = json!({ "product_id": product_id, "variant_id": variant_id, "quantity": rng.range(1, 3) });
        let r = self.client.post("/v1/cart/items", customer.token.as_deref(), &body);
        match outcome(&r) {
            // The answer is the whole cart, durable by contract.
            Outcome::Acked => customer.cart = Some(cart_items(&r.expect("acked").body["items"])),
            Outcome::Refused => {}
            Outcome::Unknown => customer.cart = None,
        }
    }

    fn place_order(&self, customer: &mut Customer) {
        let body = json!({
            "shipping_address": { "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "Springfield", "postal_code": "12345", "country": "US" },
            "payment": { "token": "tok_visa" }
        });
        let r = self.client.post("/v1/orders", customer.token.as_deref(), &body);
        match &r {
            Ok(r) if r.status == 201 => {
                customer.orders.push(Order {
                    id: str_of(&r.body["order_id"]),
                    items: cart_items(&r.body["items"]),
                    cancel: Cancel::No,
                });
                customer.cart = Some(BTreeMap::new());
            }
            Ok(r) if r.status == 202 => {
                customer.sagas.push(str_of(&r.body["saga_id"]));
                customer.cart = None;
            }
            // A refused checkout ran a saga and compensated; the cart is whatever that left.
            _ => customer.cart = None,
        }
    }

    fn cancel_order(&self, rng: &mut Rng, customer: &mut Customer) {
        let open: Vec<usize> =
            (0..customer.orders.len()).filter(|&i| customer.orders[i].cancel == Cancel::No).collect();
        let Some(&i) = rng.pick(&open) else { return };
        let order = &mut customer.orders[i];
        let path = format!("/v1/orders/{}/cancel", order.id);
        let r = self.client.post(&path, customer.token.as_deref(), &json!({ "reason": "power cut drill" }));
        match outcome(&r) {
            Outcome::Acked => order.cancel = Cancel::Acked,
            Outcome::Unknown => order.cancel = Cancel::Unknown,
            Outcome::Refused => {}
        }
    }
}

pub fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Cart or order items as (product, variant) -> quantity.
pub fn cart_items(items: &Value) -> BTreeMap<ItemKey, u64> {
    let mut out = BTreeMap::new();
    for item in items.as_array().into_iter().flatten() {
        let key = (str_of(&item["product_id"]), item["variant_id"].as_str().map(str::to_string));
        *out.entry(key).or_default() += item["quantity"].as_u64().unwrap_or(0);
    }
    out
}
