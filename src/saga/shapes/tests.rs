use serde_json::json;

use super::*;
use crate::saga::definition;

fn message(e: Fault) -> String {
    match e {
        Fault::Internal(m) => m.to_string(),
        other => panic!("expected an internal error, got {other:?}"),
    }
}

fn place_order_input() -> Value {
    json!({
        "customer_id": "0192f1c4-8a3e-7c3b-9a55-3f1e2d4c5b6a",
        "order_id": "0192f1c4-8a3e-7c3b-9a55-3f1e2d4c5b6b",
        "shipping_address": {
            "name": "Ada", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"
        },
        "payment_token": "tok_visa",
    })
}

/// Stored inputs, as written before the shapes existed, read and write back unchanged.
#[test]
fn every_input_shape_reads_and_writes_the_stored_json_unchanged() {
    fn round_trip<T: SagaShape>(stored: Value) {
        let typed: T = parse("input", &stored).unwrap();
        assert_eq!(to_input(&typed).unwrap(), stored, "{}", T::SAGA);
    }
    let order = "0192f1c4-8a3e-7c3b-9a55-3f1e2d4c5b6b";
    round_trip::<PlaceOrderInput>(place_order_input());
    round_trip::<CancelOrderInput>(json!({ "order_id": order, "customer_id": order, "reason": "changed my mind" }));
    round_trip::<CancelOrderInput>(json!({ "order_id": order, "reason": "payment_timeout", "only_if_pending": true }));
    round_trip::<ShipOrderInput>(json!({ "order_id": order, "tracking_number": "T-1", "carrier": null, "by": "ops" }));
    round_trip::<ShipOrderInput>(json!({ "order_id": order, "tracking_number": "T-1", "carrier": "UPS", "by": "ops" }));
    round_trip::<RefundCaptureInput>(
        json!({ "order_id": order, "authorization_id": "auth_1", "amount": "12.50", "event_id": "evt_1" }),
    );
}

#[test]
fn a_missing_or_misspelt_input_field_is_an_error_naming_it() {
    let mut input = place_order_input();
    let token = input.as_object_mut().unwrap().remove("payment_token").unwrap();
    input["payment_tokn"] = token;
    let e = message(parse::<PlaceOrderInput>("input", &input).unwrap_err());
    assert!(e.contains("saga input") && e.contains("missing field `payment_token`"), "{e}");

    let mut input = place_order_input();
    input["shipping_address"].as_object_mut().unwrap().remove("postal_code");
    let e = message(parse::<PlaceOrderInput>("input", &input).unwrap_err());
    assert!(e.contains("shipping_address") && e.contains("`postal_code`"), "{e}");
}

#[test]
fn a_malformed_field_is_an_error_naming_its_path() {
    let mut input = place_order_input();
    input["shipping_address"]["country"] = json!(7);
    let e = message(parse::<PlaceOrderInput>("input", &input).unwrap_err());
    assert!(e.contains("field shipping_address.country"), "{e}");

    let data = json!({ "lines": [{ "product_id": "0192f1c4-8a3e-7c3b-9a55-3f1e2d4c5b6b", "variant_id": null,
        "name": "x", "quantity": -1, "unit_price": "1.00" }] });
    let e = message(parse::<PlaceOrderData>("data", &data).unwrap_err());
    assert!(e.contains("saga data field lines[0].quantity"), "{e}");
}

#[test]
fn data_reads_what_the_steps_wrote_and_names_a_field_they_did_not() {
    let stored = json!({
        "customer_email": "a@example.com",
        "lines": [{ "product_id": "0192f1c4-8a3e-7c3b-9a55-3f1e2d4c5b6b", "variant_id": null,
            "name": "Mug", "quantity": 2, "unit_price": "4.00" }],
        "subtotal": "8.00",
    });
    let data: PlaceOrderData = parse("data", &stored).unwrap();
    assert_eq!(data.lines.as_ref().map(Vec::len), Some(1));
    assert_eq!(serde_json::to_value(data.subtotal).unwrap(), json!("8.00"));
    let e = message(required(data.total, "total").unwrap_err());
    assert!(e.contains("missing field `total`"), "{e}");

    // Version 1's extra step output is stored too: read past, not refused.
    let v1: CancelOrderData = parse("data", &json!({ "refund": "VOIDED", "notified": "by the event log" })).unwrap();
    assert_eq!(v1.refund.as_deref(), Some("VOIDED"));
}

/// A new definition version must come with shapes that say they read it.
#[test]
fn every_shape_names_definition_versions_this_build_runs_including_the_latest() {
    fn check<T: SagaShape>(defs: &[definition::SagaDefinition]) {
        let versions: Vec<u32> = defs.iter().filter(|d| d.name == T::SAGA).map(|d| d.version).collect();
        assert!(!versions.is_empty(), "no definition named {}", T::SAGA);
        for v in T::VERSIONS {
            assert!(versions.contains(v), "{} has no version {v}", T::SAGA);
        }
        let latest = versions.iter().max().unwrap();
        assert!(T::VERSIONS.contains(latest), "{} version {latest} has no shape: add one", T::SAGA);
        assert_eq!(versions.len(), T::VERSIONS.len(), "{}: a definition version without a shape", T::SAGA);
    }
    let defs = definition::embedded().unwrap();
    check::<PlaceOrderInput>(&defs);
    check::<PlaceOrderData>(&defs);
    check::<CancelOrderInput>(&defs);
    check::<CancelOrderData>(&defs);
    check::<ShipOrderInput>(&defs);
    check::<ShipOrderData>(&defs);
    check::<RefundCaptureInput>(&defs);
    check::<RefundCaptureData>(&defs);
}
