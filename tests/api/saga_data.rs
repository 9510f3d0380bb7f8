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
    let def = cartwright::saga::definition::embedded()
        .unwrap()
        .into_iter()
        .find(|d| d.name == "place_order")
        .expect("place_order ships");
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
