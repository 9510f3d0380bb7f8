//! TLS to the database, through rustls: the URL's `sslmode` as libpq means it, the server's
//! certificate checked against `storage.postgres.ca_file` (or Mozilla's roots), and an
//! optional client certificate. tokio-postgres only negotiates TLS and checks nothing: the
//! stricter modes (read in [`super::sslmode`]) become the certificate verifier here.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::sslmode::{take_sslmode, SslMode};
use crate::config::PostgresSettings;
use crate::store::StoreError;

/// How to reach the database: the connection settings and the TLS connector for them.
#[derive(Clone)]
pub(super) struct Connector {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: MakeRustlsConnect,
    /// For the log: the mode, and whether the server's certificate is checked.
    pub(super) summary: String,
}

/// Reads `pg`'s URL and TLS settings; `Err` says what is wrong (never the URL: it may hold
/// a password).
pub(super) fn connector(pg: &PostgresSettings) -> Result<Connector, String> {
    let (url, mode) = take_sslmode(&pg.url)?;
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|e| format!("storage.postgres.url is not a connection string: {e}"))?;
    config.ssl_mode(mode.negotiation());
    let (verifier, checks) = verifier(mode, &pg.ca_file)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut tls = if pg.client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = read_certificates(&pg.client_cert, "storage.postgres.client_cert")?;
        let key = PrivateKeyDer::from_pem_file(&pg.client_key)
            .map_err(|e| format!("storage.postgres.client_key {}: {e}", pg.client_key))?;
        builder.with_client_auth_cert(certs, key).map_err(|e| format!("storage.postgres.client_key: {e}"))?
    };
    // PostgreSQL 17 checks the protocol name when a client names one, and needs it for
    // `sslnegotiation=direct`; older servers ignore it.
    tls.alpn_protocols = vec![b"postgresql".to_vec()];
    let summary = format!("sslmode={} ({checks})", mode.name());
    Ok(Connector { config, tls: MakeRustlsConnect::new(tls), summary })
}

/// A connection error that is the database's certificate refused, told with what decides
/// trust here (it is the settings, not the database, an operator has to look at); any other
/// error as it is.
pub(super) fn explain(e: tokio_postgres::Error, summary: &str) -> StoreError {
    let refused = std::error::Error::source(&e)
        .and_then(|cause| cause.downcast_ref::<std::io::Error>())
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .filter(|tls| matches!(tls, rustls::Error::InvalidCertificate(_)));
    match refused {
        Some(why) => StoreError::Settings(format!(
            "the database's TLS certificate was refused: {why}; {summary}; the CAs trusted are \
             those in storage.postgres.ca_file, or Mozilla's roots when it is empty"
        )),
        None => StoreError::Postgres(e),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What checks the server's certificate, and how that reads in the log. As libpq: prefer
/// and require check nothing unless given a CA file, and then check the chain as verify-ca.
fn verifier(mode: SslMode, ca_file: &str) -> Result<(Arc<dyn ServerCertVerifier>, String), String> {
    let against = if ca_file.is_empty() { "Mozilla's roots" } else { "ca_file" };
    Ok(match mode {
        SslMode::Disable => (Arc::new(Unchecked(provider())), "no TLS".into()),
        SslMode::Prefer | SslMode::Require if ca_file.is_empty() => {
            (Arc::new(Unchecked(provider())), "certificate not checked".into())
        }
        SslMode::Prefer | SslMode::Require | SslMode::VerifyCa => {
            (Arc::new(ChainOnly(webpki(roots(ca_file)?)?)), format!("certificate chain checked against {against}"))
        }
        SslMode::VerifyFull => {
            (webpki(roots(ca_file)?)?, format!("certificate and host name checked against {against}"))
        }
    })
}

/// The CAs in `ca_file`, or Mozilla's (compiled in: the same set on every machine, none to
/// install) when it is empty.
fn roots(ca_file: &str) -> Result<RootCertStore, String> {
    if ca_file.is_empty() {
        return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    }
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(ca_file, "storage.postgres.ca_file")? {
        roots.add(cert).map_err(|e| format!("storage.postgres.ca_file {ca_file}: {e}"))?;
    }
    Ok(roots)
}

fn read_certificates(path: &str, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{setting} {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{setting} {path}: no PEM certificate in it"));
    }
    Ok(certs)
}

fn webpki(roots: RootCertStore) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| format!("storage.postgres.ca_file: {e}"))
}

/// verify-ca: the chain must lead to a trusted CA, whatever host name the certificate
/// carries. rustls checks the name last, once the chain and dates passed, so a name
/// mismatch is the only error let through.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// prefer and require without a CA file (libpq's meaning): encrypted, any certificate
/// accepted. The handshake's signatures are still checked, so the channel binding that
/// SCRAM-SHA-256-PLUS puts on the certificate still keeps a password from being relayed.
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> PostgresSettings {
        PostgresSettings {
            url: url.into(),
            schema: "s".into(),
            pool_size: 1,
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
        }
    }

    #[test]
    fn modes_tokio_postgres_cannot_honour_are_refused_by_name() {
        for (url, refusal) in [
            ("postgres://db/shop?sslmode=allow", "sslmode=allow is not supported"),
            ("host=db sslmode=allow", "sslmode=allow is not supported"),
            ("postgres://db/shop?sslmode=verify_full", "sslmode=verify_full is unknown"),
            ("postgres://db/shop?sslmode=verify%2Dfull", "sslmode=verify%2Dfull is unknown"),
            ("postgres://db/shop?sslmode=", "sslmode= is unknown"),
        ] {
            let err = connector(&settings(url)).err().expect(url);
            assert!(err.starts_with("storage.postgres.url: ") && err.contains(refusal), "{url}: {err}");
            assert!(err.contains("disable, prefer, require, verify-ca or verify-full"), "{err}");
        }
    }

    #[test]
    fn every_stricter_mode_demands_tls_of_tokio_postgres() {
        use tokio_postgres::config::SslMode as Negotiated;
        for (mode, negotiated) in [
            ("disable", Negotiated::Disable),
            ("prefer", Negotiated::Prefer),
            ("require", Negotiated::Require),
            ("verify-ca", Negotiated::Require),
            ("verify-full", Negotiated::Require),
        ] {
            let connector = connector(&settings(&format!("postgres://u@db/shop?sslmode={mode}"))).unwrap();
            assert_eq!(connector.config.get_ssl_mode(), negotiated, "{mode}");
            assert!(connector.summary.starts_with(&format!("sslmode={mode} (")), "{}", connector.summary);
        }
        let default = connector(&settings("postgres://u@db/shop")).unwrap();
        assert_eq!(default.config.get_ssl_mode(), Negotiated::Prefer);
        assert_eq!(default.summary, "sslmode=prefer (certificate not checked)");
        let verify = connector(&settings("postgres://u@db/shop?sslmode=verify-full")).unwrap();
        assert_eq!(verify.summary, "sslmode=verify-full (certificate and host name checked against Mozilla's roots)");
    }

    #[test]
    fn unreadable_tls_files_are_refused_by_setting_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let empty = empty.to_str().unwrap().to_string();
        let mut pg = settings("postgres://u@db/shop?sslmode=verify-full");
        pg.ca_file = "/nonexistent/ca.pem".into();
        let err = connector(&pg).err().unwrap();
        assert!(err.starts_with("storage.postgres.ca_file /nonexistent/ca.pem: "), "{err}");
        pg.ca_file = empty.clone();
        assert_eq!(
            connector(&pg).err().unwrap(),
            format!("storage.postgres.ca_file {empty}: no PEM certificate in it")
        );
        pg.ca_file = String::new();
        (pg.client_cert, pg.client_key) = (empty.clone(), empty.clone());
        let err = connector(&pg).err().unwrap();
        assert_eq!(err, format!("storage.postgres.client_cert {empty}: no PEM certificate in it"));
    }

    #[test]
    fn a_malformed_connection_string_is_refused_without_repeating_it() {
        let err = connector(&settings("host=db password='s3cret")).err().unwrap();
        assert!(err.starts_with("storage.postgres.url is not a connection string"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}
