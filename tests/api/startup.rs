//! Starting the real binary: settings it cannot honour stop it before it serves anything.

use crate::helpers::*;

#[test]
fn a_misspelt_setting_stops_the_server_naming_the_closest_key() {
    let dir = store_dir();
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &[("CARTWRIGHT__STORAGE__BAKEND", "postgres")]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("unknown setting storage.bakend (did you mean storage.backend?)"), "{output}");
    assert!(output.contains("CARTWRIGHT__STORAGE__BAKEND"), "{output}");
    assert!(!output.contains("listening on"), "{output}");
}

#[test]
fn shipped_secrets_stop_a_server_on_a_public_address() {
    let dir = store_dir();
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &[("CARTWRIGHT__SERVER__ADDR", "0.0.0.0:0")]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("auth.admin_token is the shipped default"), "{output}");
    assert!(output.contains("CARTWRIGHT__AUTH__ADMIN_TOKEN"), "{output}");
    assert!(output.contains("webhooks.payment_secret"), "{output}");
    assert!(!output.contains("listening on"), "{output}");
}

#[tokio::test]
async fn strong_secrets_let_a_server_on_a_public_address_start() {
    let dir = store_dir();
    let server = ServerProcess::start_with(
        dir.path(),
        &[
            ("CARTWRIGHT__SERVER__ADDR", "0.0.0.0:0"),
            ("CARTWRIGHT__WEBHOOKS__PAYMENT_SECRET", "a-payment-secret-nobody-knows"),
            ("CARTWRIGHT__WEBHOOKS__CARRIER_SECRET", "a-carrier-secret-nobody-knows"),
        ],
    );
    let url = server.url.replace("0.0.0.0", "127.0.0.1");
    let (status, _) =
        raw_call(&reqwest::Client::new(), &url, reqwest::Method::GET, "/healthz", None, None, None).await.unwrap();
    assert_eq!(status, 200);
    let log = server.log.clone();
    let status = server.terminate();
    assert!(status.success(), "{status}: {:?}", log.lock().unwrap());
}

/// A PostgreSQL store the server cannot reach stops it at start, saying so (and never
/// printing the URL, which may hold a password). Needs no database: nothing listens there.
#[test]
fn an_unreachable_postgres_store_stops_the_server_with_the_reason() {
    let dir = store_dir();
    let env = [
        ("CARTWRIGHT__STORAGE__BACKEND", "postgres"),
        ("CARTWRIGHT__STORAGE__POSTGRES__URL", "postgres://cartwright:s3cret-pw@127.0.0.1:1/shop"),
        ("CARTWRIGHT__STORAGE__POSTGRES__SCHEMA", "shop_one"),
        ("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0"),
    ];
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &env);
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(output.contains("opening the PostgreSQL store (schema shop_one)"), "{output}");
    assert!(output.contains("error connecting to server"), "{output}");
    assert!(!output.contains("s3cret-pw") && !output.contains("panicked"), "{output}");
    assert!(!output.contains("listening on"), "{output}");
}

#[test]
fn a_postgres_store_without_a_url_is_refused() {
    let dir = store_dir();
    let env = [("CARTWRIGHT__STORAGE__BACKEND", "postgres"), ("CARTWRIGHT__STORAGE__POSTGRES__URL", "")];
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &env);
    assert!(!status.success(), "{output}");
    assert!(output.contains("storage.backend = \"postgres\" needs storage.postgres.url"), "{output}");
}
