//! Starting the real binary: settings it cannot honour stop it before it serves anything.

use crate::helpers::*;

#[test]
fn a_misspelt_setting_stops_the_server_naming_the_closest_key() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &[("CARTWRIGHT__STORAGE__BAKEND", "postgres")]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("unknown setting storage.bakend (did you mean storage.backend?)"), "{output}");
    assert!(output.contains("CARTWRIGHT__STORAGE__BAKEND"), "{output}");
    assert!(!output.contains("listening on"), "{output}");
}

#[test]
fn shipped_secrets_stop_a_server_on_a_public_address() {
    let dir = tempfile::tempdir().unwrap();
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &[("CARTWRIGHT__SERVER__ADDR", "0.0.0.0:0")]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("auth.admin_token is the shipped default"), "{output}");
    assert!(output.contains("CARTWRIGHT__AUTH__ADMIN_TOKEN"), "{output}");
    assert!(output.contains("webhooks.payment_secret"), "{output}");
    assert!(!output.contains("listening on"), "{output}");
}

#[tokio::test]
async fn strong_secrets_let_a_server_on_a_public_address_start() {
    let dir = tempfile::tempdir().unwrap();
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
