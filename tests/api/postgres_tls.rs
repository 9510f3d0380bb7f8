//! TLS to the PostgreSQL store, against a database server with TLS and certificates of its
//! own (`.ci/postgres.sh tls`: a CA, a server certificate for 127.0.0.1 and localhost, a
//! client certificate for the role `cartwright_cert`). Without it the tests say so and
//! pass; the one about a server without TLS needs the suite's own database instead.

use serde_json::json;

use crate::helpers::*;

/// The TLS server's URL (no `sslmode` in it) and the directory of its certificates.
const TLS_URL_VAR: &str = "CARTWRIGHT_TEST_POSTGRES_TLS_URL";
const TLS_CERTS_VAR: &str = "CARTWRIGHT_TEST_POSTGRES_TLS_CERTS";

/// A CA that signed nothing the test server presents (its key was thrown away).
const OTHER_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBpzCCAU2gAwIBAgIUfJVZ41gthTeH7CUNW1T3nrtn+3IwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVTm90IHRoZSBkYXRhYmFzZSdzIENBMCAXDTI2MTEyNjIzNTQw
NFoYDzIxMjYxMTAyMjM1NDA0WjAgMR4wHAYDVQQDDBVOb3QgdGhlIGRhdGFiYXNl
J3MgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAS8F500XGhKhI4qlyeUMKjW
hN2uMvcX+H6I/2EXgyIFQ5CS5OV1a65/0Xf5RbCW9XghmFi7g8Iwx0BSCVVktWMA
o2MwYTAdBgNVHQ4EFgQUmXaDyk21xrEm3hG/EmTUjaa0BqYwHwYDVR0jBBgwFoAU
mXaDyk21xrEm3hG/EmTUjaa0BqYwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E
BAMCAQYwCgYIKoZIzj0EAwIDSAAwRQIgOFdjTJKDCq8WX7u0+D1jGPyToTgC2bIs
FLixJX5RsrECIQD7QJA/CReXiChGcrGg7P1d7FfkP4Vb8LAvbp2cCxip2Q==
-----END CERTIFICATE-----
";

/// The TLS database, or `None` with a `SKIPPED` line saying how to get one.
fn tls_database(test: &str) -> Option<TlsDatabase> {
    let url = std::env::var(TLS_URL_VAR).ok().filter(|v| !v.is_empty());
    let certs = std::env::var(TLS_CERTS_VAR).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(certs)) = (url, certs) else {
        skipped(test, &format!("{TLS_URL_VAR} and {TLS_CERTS_VAR} unset: `.ci/postgres.sh tls` sets them"));
        return None;
    };
    Some(TlsDatabase { url, certs: std::path::PathBuf::from(certs) })
}

/// Straight to the process's stderr (the harness captures `eprintln!`), as helpers' skips.
fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED without its database: {test} ({why})\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

struct TlsDatabase {
    url: String,
    certs: std::path::PathBuf,
}

impl TlsDatabase {
    fn file(&self, name: &str) -> String {
        self.certs.join(name).to_string_lossy().into_owned()
    }

    /// The URL as another role (no password), or with the host name `host` connecting to
    /// 127.0.0.1 all the same (`hostaddr`), plus `params`.
    fn url_with(&self, role: Option<&str>, host: Option<&str>, params: &str) -> String {
        let (scheme, rest) = self.url.split_once("://").expect("a URL");
        let (credentials, address) = rest.split_once('@').expect("user and password in the URL");
        let credentials = role.unwrap_or(credentials);
        let address = match host {
            Some(host) => format!("{host}{}", &address[address.find(':').expect("a port")..]),
            None => address.to_string(),
        };
        let hostaddr = if host.is_some() { "&hostaddr=127.0.0.1" } else { "" };
        format!("{scheme}://{credentials}@{address}?{params}{hostaddr}")
    }

    /// How many of the connections named `application` are encrypted, and how many not.
    async fn connections(&self, application: &str) -> (i64, i64) {
        let url = format!("{}?sslmode=disable", self.url);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("test connects");
        tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
                 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
                &[&application],
            )
            .await
            .expect("pg_stat_ssl readable");
        (row.get(0), row.get(1))
    }
}

/// A server on the TLS database with `url` and these `ca_file` and client certificate
/// settings writes and reads through connections that are all encrypted.
async fn serves_over_tls(
    db: &TlsDatabase,
    application: &str,
    url: String,
    ca_file: String,
    client: Option<(String, String)>,
) {
    let app = spawn_app_with(|s| {
        s.storage.backend = cartwright::config::Backend::Postgres;
        s.storage.postgres.url = url.clone();
        s.storage.postgres.schema = postgres_schema(&s.storage.path);
        s.storage.postgres.pool_size = 2;
        s.storage.postgres.ca_file = ca_file;
        (s.storage.postgres.client_cert, s.storage.postgres.client_key) = client.unwrap_or_default();
        s.cluster.lease_ms = 1000;
    })
    .await;
    let (status, category) = app.post("/admin/v1/categories", Some(ADMIN), json!({ "name": "Books" })).await;
    assert_eq!(status, 201, "{application}: {category}");
    let (status, listed) = app.get("/admin/v1/categories", Some(ADMIN)).await;
    assert_eq!(status, 200, "{application}: {listed}");
    assert!(listed.to_string().contains(category["category_id"].as_str().unwrap()), "{application}: {listed}");
    // The committer's, the lease's and at least one read connection, none in the clear.
    let (encrypted, plain) = db.connections(application).await;
    assert!(encrypted >= 3 && plain == 0, "{application}: {encrypted} encrypted, {plain} plain connections");
}

#[tokio::test]
async fn a_server_checking_the_database_certificate_serves_over_tls() {
    let Some(db) = tls_database("a_server_checking_the_database_certificate_serves_over_tls") else { return };
    let ca = db.file("ca.pem");
    let app = |name: &str| format!("application_name=cw_tls_{name}_{}", std::process::id());
    let name = |url: &str| url.split("application_name=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let cases = [
        // The certificate chains to the CA and names 127.0.0.1; the password login is bound
        // to it (SCRAM-SHA-256-PLUS), or the connection fails.
        (
            db.url_with(None, None, &format!("sslmode=verify-full&channel_binding=require&{}", app("full"))),
            ca.clone(),
            None,
        ),
        // verify-ca: a host name the certificate does not carry is not checked.
        (db.url_with(None, Some("db.invalid"), &format!("sslmode=verify-ca&{}", app("ca"))), ca.clone(), None),
        // require without a CA file: encrypted, the certificate taken as it comes (libpq's
        // meaning), the password login still bound to it.
        (
            db.url_with(None, None, &format!("sslmode=require&channel_binding=require&{}", app("require"))),
            String::new(),
            None,
        ),
        // A client certificate for PostgreSQL's `cert` authentication (the role has no password).
        (
            db.url_with(Some("cartwright_cert"), Some("localhost"), &format!("sslmode=verify-full&{}", app("client"))),
            ca.clone(),
            Some((db.file("client.pem"), db.file("client.key"))),
        ),
    ];
    for (url, ca_file, client) in cases {
        serves_over_tls(&db, &name(&url), url, ca_file, client).await;
    }
}

const CA_FILE: &str = "CARTWRIGHT__STORAGE__POSTGRES__CA_FILE";
const HANDSHAKE: &str = "postgres: error performing TLS handshake";

/// Starts the real binary on the store at `url` with `extra` settings: it must refuse to
/// start, giving each of `reasons` and never the password.
fn refused_at_start(url: &str, extra: &[(&str, &str)], reasons: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let schema = postgres_schema(dir.path());
    let mut env = vec![
        ("CARTWRIGHT__STORAGE__BACKEND", "postgres"),
        ("CARTWRIGHT__STORAGE__POSTGRES__URL", url),
        ("CARTWRIGHT__STORAGE__POSTGRES__SCHEMA", &schema),
        ("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0"),
    ];
    env.extend_from_slice(extra);
    let (status, output) = ServerProcess::run_to_exit(dir.path(), &env);
    let password = url.split_once("://").and_then(|(_, rest)| rest.split_once('@')).map(|(c, _)| c);
    let password = password.and_then(|c| c.split_once(':')).map_or("", |(_, p)| p);
    assert_eq!(status.code(), Some(1), "{url} {extra:?}: {output}");
    assert!(output.contains(&format!("opening the PostgreSQL store (schema {schema})")), "{output}");
    for reason in reasons {
        assert!(output.contains(reason), "{url} {extra:?}: expected {reason:?} in {output}");
    }
    assert!(password.is_empty() || !output.contains(password), "{output}");
    assert!(!output.contains("listening on") && !output.contains("panicked"), "{output}");
}

#[test]
fn a_database_certificate_that_does_not_check_out_stops_the_server_at_start() {
    let Some(db) = tls_database("a_database_certificate_that_does_not_check_out_stops_the_server_at_start") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, OTHER_CA).unwrap();
    let (other_ca, ca) = (other_ca.to_string_lossy().into_owned(), db.file("ca.pem"));
    let refused = |why: &str, summary: &str| {
        format!("the database's TLS certificate was refused: invalid peer certificate: {why}; sslmode={summary}; ")
    };
    let unknown_issuer = |summary| refused("UnknownIssuer", summary);
    let full = db.url_with(None, None, "sslmode=verify-full");
    let refusals = [
        // Another CA, for either check of the chain.
        (&full, Some(&other_ca), unknown_issuer("verify-full (certificate and host name checked against ca_file)")),
        (
            &db.url_with(None, None, "sslmode=verify-ca"),
            Some(&other_ca),
            unknown_issuer("verify-ca (certificate chain checked against ca_file)"),
        ),
        // No CA file: Mozilla's roots, which know nothing of a private CA.
        (&full, None, unknown_issuer("verify-full (certificate and host name checked against Mozilla's roots)")),
        // With a CA file, require checks the chain too (as libpq with a root certificate).
        (
            &db.url_with(None, None, "sslmode=require"),
            Some(&other_ca),
            unknown_issuer("require (certificate chain checked against ca_file)"),
        ),
        // The right CA, but a host name the certificate does not carry.
        (
            &db.url_with(None, Some("db.invalid"), "sslmode=verify-full"),
            Some(&ca),
            refused(
                "certificate not valid for name \"db.invalid\"; certificate is only valid for DnsName(\"localhost\") \
                 or IpAddress(127.0.0.1)",
                "verify-full (certificate and host name checked against ca_file)",
            ),
        ),
    ];
    for (url, ca_file, reason) in refusals {
        let extra: Vec<(&str, &str)> = ca_file.iter().map(|file| (CA_FILE, file.as_str())).collect();
        refused_at_start(url, &extra, &[&reason]);
    }
    // `cert` authentication without a client certificate.
    let no_client_cert = db.url_with(Some("cartwright_cert"), None, "sslmode=verify-full");
    refused_at_start(&no_client_cert, &[(CA_FILE, &ca)], &["connection requires a valid client certificate"]);
}

#[test]
fn demanding_tls_of_a_database_without_it_stops_the_server_at_start() {
    let test = "demanding_tls_of_a_database_without_it_stops_the_server_at_start";
    let Some(url) = postgres_url() else {
        skipped(test, &format!("{POSTGRES_URL_VAR} unset: the suite's own database, without TLS, is the one refused"));
        return;
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    for mode in ["require", "verify-ca", "verify-full"] {
        refused_at_start(&format!("{url}{separator}sslmode={mode}"), &[], &[HANDSHAKE, "server does not support TLS"]);
    }
}

#[test]
fn an_sslmode_tokio_postgres_cannot_honour_stops_the_server_before_connecting() {
    // Nothing listens on port 1: the refusal comes before any connection is tried.
    refused_at_start(
        "postgres://cartwright:s3cret-pw@127.0.0.1:1/shop?sslmode=allow",
        &[],
        &["storage.postgres.url: sslmode=allow is not supported (use disable, prefer, require, verify-ca or verify-full)"],
    );
}
