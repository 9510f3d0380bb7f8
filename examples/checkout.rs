//! Walk-through of a whole order's life against a running server:
//! register, verify the email, build a catalogue, fill the cart, place the order, capture
//! the payment (signed webhook), ship, deliver (signed webhook); prints every state.
//!
//! ```sh
//! cargo run --release                       # in one terminal
//! cargo run --release --example checkout    # in another
//! ```
//!
//! Flags: `--url`, `--admin-token`, `--payment-secret`, `--carrier-secret` (the defaults are
//! `config/default.toml`'s development values).

use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser)]
struct Opts {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "dev-admin-token-change-me")]
    admin_token: String,
    #[arg(long, default_value = "dev-payment-webhook-secret")]
    payment_secret: String,
    #[arg(long, default_value = "dev-carrier-webhook-secret")]
    carrier_secret: String,
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap_or_else(|e| panic!("is the server running at {}? {e}", self.url));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let (status, v) = self.send(method, path, token, body).await;
        assert!(status < 300, "{path} answered {status}: {v}");
        v
    }

    /// A webhook signed as the contract says: `t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))`.
    async fn webhook(&self, source: &str, secret: &str, body: Value) -> (u16, Value) {
        let raw = serde_json::to_vec(&body).expect("json");
        let signature = cartwright::operations::webhooks::sign(secret, chrono::Utc::now().timestamp(), &raw);
        let resp = self
            .http
            .post(format!("{}/webhooks/{source}", self.url))
            .header("Cartwright-Signature", signature)
            .body(raw)
            .send()
            .await
            .expect("webhook sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn step(title: &str, v: &Value) {
    println!("\n== {title}\n{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

#[tokio::main]
async fn main() {
    let o = Opts::parse();
    let api = Api { http: reqwest::Client::new(), url: o.url.trim_end_matches('/').to_string() };
    let admin = Some(o.admin_token.as_str());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let email = format!("walkthrough-{}@example.com", &run[..8]);
    let password = "correct-horse-42";

    let customer = api
        .ok(
            reqwest::Method::POST,
            "/v1/customers",
            None,
            Some(json!({ "email": email, "password": password, "name": "Ada" })),
        )
        .await;
    step("registered (SEQ-CUST-001)", &customer);
    let notes =
        api.ok(reqwest::Method::GET, "/admin/v1/notifications?kind=email_verification&limit=1000", admin, None).await;
    let token = notes["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["payload"]["customer_id"] == customer["customer_id"])
        .map(|n| n["payload"]["verification_token"].clone())
        .expect("verification email queued");
    step(
        "email verified",
        &api.ok(reqwest::Method::POST, "/v1/customers/verify-email", None, Some(json!({ "token": token }))).await,
    );
    let session = api
        .ok(reqwest::Method::POST, "/v1/sessions", None, Some(json!({ "email": email, "password": password })))
        .await;
    let me = session["token"].as_str().map(str::to_string);
    let me = me.as_deref();

    let category = api.ok(reqwest::Method::POST, "/admin/v1/categories", admin, Some(json!({ "name": "Books" }))).await;
    let product = api
        .ok(
            reqwest::Method::POST,
            "/admin/v1/products",
            admin,
            Some(json!({ "name": "Dune", "description": "Desert planet", "price": "19.90", "category_id": category["category_id"], "initial_stock": 5 })),
        )
        .await;
    step("product created (SEQ-PROD-001)", &product);
    let cart = api
        .ok(
            reqwest::Method::POST,
            "/v1/cart/items",
            me,
            Some(json!({ "product_id": product["product_id"], "quantity": 2 })),
        )
        .await;
    step("cart (SEQ-CART-001)", &cart);

    let address = json!({ "name": "Ada Lovelace", "line1": "12 St James's Square", "city": "Springfield", "postal_code": "12345", "country": "US" });
    let order = api
        .ok(
            reqwest::Method::POST,
            "/v1/orders",
            me,
            Some(json!({ "shipping_address": address, "payment": { "token": "tok_visa" } })),
        )
        .await;
    step("order placed (SEQ-ORDER-001)", &order);
    let order_id = order["order_id"].as_str().expect("order id").to_string();
    step(
        "stock reserved",
        &api.ok(
            reqwest::Method::GET,
            &format!("/admin/v1/inventory/{}", product["product_id"].as_str().unwrap_or_default()),
            admin,
            None,
        )
        .await,
    );

    let capture = json!({ "id": format!("evt_cap_{run}"), "type": "payment.captured", "data": { "authorization_id": order["payment"]["authorization_id"], "amount": order["total"] } });
    let (status, answer) = api.webhook("payment", &o.payment_secret, capture).await;
    step(&format!("payment captured (SEQ-ORDER-002): {status}"), &answer);
    step("order", &api.ok(reqwest::Method::GET, &format!("/v1/orders/{order_id}"), me, None).await);

    let tracking = format!("1Z{}", &run[..10].to_uppercase());
    let shipped = api
        .ok(
            reqwest::Method::POST,
            &format!("/admin/v1/orders/{order_id}/ship"),
            admin,
            Some(json!({ "tracking_number": tracking, "carrier": "UPS" })),
        )
        .await;
    step("shipped (SEQ-ORDER-003)", &shipped);

    let delivery = json!({ "id": format!("evt_dlv_{run}"), "type": "delivery.confirmed", "data": { "tracking_number": tracking } });
    let (status, answer) = api.webhook("carrier", &o.carrier_secret, delivery).await;
    step(&format!("delivery confirmed (SEQ-ORDER-004): {status}"), &answer);
    step("order", &api.ok(reqwest::Method::GET, &format!("/v1/orders/{order_id}"), me, None).await);

    let notes = api.ok(reqwest::Method::GET, "/admin/v1/notifications?limit=1000", admin, None).await;
    let mine: Vec<Value> = notes["notifications"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["to"] == email.as_str())
        .map(|n| json!({ "kind": n["kind"], "status": n["status"], "subject": n["subject"] }))
        .collect();
    step("emails to the customer (SEQ-NOTIF-001)", &json!(mine));
}
