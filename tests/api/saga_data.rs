//! The sagas' stored input and data are read through typed shapes: what an older build or
//! a corruption left in the log is refused by name, never half-used.

use serde_json::{json, Value};

use crate::helpers::*;
use cartwright::saga::coordinator::log_write;
use cartwright::saga::instance::StepState;
use cartwright::saga::SagaInstance;
use cartwright::store::{Table, WriteSet};

/// A place_order saga written straight into the log, unfinished, at step `cursor` with the
/// steps before it SUCCEEDED and `data` as their outputs; the server then starts on it.
async fn place_order_in_the_log(app: &mut TestApp, input: Value, cursor: usize, data: Value) -> String {
    place_order_version_in_the_log(app, 2, input, cursor, data).await
}

/// As [`place_order_in_the_log`], under definition `version`.
async fn place_order_version_in_the_log(
    app: &mut TestApp,
    version: u32,
    input: Value,
    cursor: usize,
    data: Value,
) -> String {
    let def = cartwright::saga::definition::embedded()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "place_order" && d.version == version)
        .expect("place_order ships that version");
    let mut saga = SagaInstance::new(&def, |step| def.policies()[step], input, None, None);
    for record in &mut saga.steps[..cursor] {
        record.step.state = StepState::Succeeded;
        record.step.attempts = 1;
    }
    saga.cursor = cursor as u32;
    saga.data = data.to_string();
    let saga_id = saga.saga_id.to_string();
    app.write_store(move |_| {
        let key = saga.saga_id.as_bytes().to_vec();
        log_write(WriteSet::new(), &saga, None).put(Table::ActiveSagas, key, &0u32)
    })
    .await;
    saga_id
}

fn checkout_input(customer_id: &str) -> Value {
    json!({
        "customer_id": customer_id,
        "order_id": uuid::Uuid::now_v7(),
        "shipping_address": address("US"),
        "payment_token": "tok_visa",
    })
}

fn line(product_id: &str, quantity: u32) -> Value {
    json!({ "product_id": product_id, "variant_id": null, "name": "Mug", "quantity": quantity, "unit_price": "10.00" })
}

#[tokio::test]
async fn a_stored_line_with_quantity_zero_fails_the_checkout_with_invalid_quantity_and_reserves_nothing() {
    let mut app = spawn_app().await;
    let (p, q) = (app.product("10.00", 10).await, app.product("10.00", 10).await);
    let c = app.verified_customer().await;
    let data = json!({ "customer_email": c.email, "lines": [line(&p, 2), line(&q, 0)], "subtotal": "20.00" });
    let saga_id = place_order_in_the_log(&mut app, checkout_input(&c.id), 2, data).await;

    let saga = app.saga_reaches(&saga_id, "FAILED").await;
    assert_eq!(saga["error"]["code"], "INVALID_QUANTITY", "{saga}");
    assert!(saga["error"]["message"].as_str().unwrap().contains("quantity 0"), "{saga}");
    assert_eq!(saga["steps"][2]["state"], "FAILED", "{saga}");
    assert_eq!(saga["steps"][3]["state"], "PENDING", "no shipping priced, no payment authorized: {saga}");
    // Refused before anything was reserved (and the compensation released whatever was).
    assert_eq!(app.stock_of(&p).await, (10, 0));
    assert_eq!(app.stock_of(&q).await, (10, 0));
}

#[tokio::test]
async fn a_misspelt_input_field_fails_the_first_step_naming_the_field() {
    let mut app = spawn_app().await;
    let c = app.verified_customer().await;
    let mut input = checkout_input(&c.id);
    let token = input.as_object_mut().unwrap().remove("payment_token").unwrap();
    input["payment_tokn"] = token;
    let saga_id = place_order_in_the_log(&mut app, input, 0, json!({})).await;

    let saga = app.saga_reaches(&saga_id, "FAILED").await;
    assert_eq!(saga["error"]["code"], "INTERNAL", "{saga}");
    let message = saga["error"]["message"].as_str().unwrap();
    assert!(message.contains("missing field `payment_token`"), "{message}");
    assert_eq!(saga["steps"][0]["state"], "FAILED", "the first step reads the whole input: {saga}");
}

/// The log after reserve_inventory: calculate_shipping is local, so a crash after it (and
/// after the payment it priced) runs it again. It prices with the rule the checkout began
/// with, carried in the input, never with a configuration changed in between.
#[tokio::test]
async fn a_checkout_run_again_after_a_restart_is_priced_by_the_shipping_rule_it_began_with() {
    let mut app = spawn_app().await;
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    let mut input = checkout_input(&c.id);
    input["shipping"] = json!({ "domestic_country": "US", "flat_rate": "7.50", "free_over": "100.00" });
    let data = json!({ "customer_email": c.email, "lines": [line(&p, 2)], "subtotal": "20.00" });
    let saga_id = place_order_in_the_log(&mut app, input, 3, data).await;

    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!((saga["data"]["shipping_cost"].as_str(), saga["data"]["total"].as_str()), (Some("7.50"), Some("27.50")));
    let order_id = saga["data"]["order_id"].as_str().unwrap();
    let (_, order) = app.get(&format!("/v1/orders/{order_id}"), Some(&c.token)).await;
    assert_eq!(order["total"], "27.50", "{order}");

    // A checkout begun now carries the configured rule (5.99 flat under 50.00).
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 1 })).await;
    let (status, body) = app.place_order(&c.token, "tok_visa").await;
    assert_eq!(status, 201, "{body}");
    let saga = app.saga(body["saga_id"].as_str().unwrap()).await;
    assert_eq!(saga["input"]["shipping"]["flat_rate"], "5.99", "{saga}");
    assert_eq!((saga["definition_version"].as_u64(), saga["data"]["total"].as_str()), (Some(2), Some("15.99")));
}

/// A version 1 checkout (its input has no shipping rule, and it logs calculate_shipping on
/// its own) still runs to the end after the upgrade, priced by the configuration.
#[tokio::test]
async fn a_version_1_checkout_without_a_shipping_rule_runs_to_the_end() {
    let mut app = spawn_app().await;
    let p = app.product("10.00", 10).await;
    let c = app.verified_customer().await;
    app.add_to_cart(&c.token, json!({ "product_id": p, "quantity": 3 })).await;
    let saga_id = place_order_version_in_the_log(&mut app, 1, checkout_input(&c.id), 0, json!({})).await;

    let saga = app.saga_reaches(&saga_id, "COMPLETED").await;
    assert_eq!(saga["definition_version"], 1);
    assert_eq!((saga["data"]["shipping_cost"].as_str(), saga["data"]["total"].as_str()), (Some("5.99"), Some("35.99")));
    assert_eq!(app.stock_of(&p).await, (10, 3));
    assert!(app.cart(&c.token).await["items"].as_array().unwrap().is_empty());
}
