//! TLS to the database, through rustls: the URL's `sslmode` as libpq means it, the server's
//! certificate checked against `storage.postgres.ca_file` (or Mozilla's roots), and an
//! optional client certificate. tokio-postgres itself knows only disable, prefer and require
//! and checks nothing: the stricter modes are taken out of the URL here and become the
//! certificate verifier.

use std::ops::Range;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PostgresSettings;
use crate::store::StoreError;

/// libpq's `sslmode`, less `allow` (a plain connection first, TLS if refused), which
/// tokio-postgres cannot do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

const MODES: &str = "disable, prefer, require, verify-ca or verify-full";

impl SslMode {
    fn parse(value: &str) -> Result<SslMode, String> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => return Err(format!("sslmode=allow is not supported (use {MODES})")),
            other => return Err(format!("sslmode={other} is unknown (use {MODES})")),
        })
    }

    /// What tokio-postgres is told: it only decides whether TLS is tried or demanded.
    fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }
}

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
    let summary = format!("sslmode={} ({checks})", mode_name(mode));
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

fn mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
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

/// The connection string without its `sslmode` parameter(s), and the mode (the last one
/// given, as libpq reads it; `prefer` when none is). In a URL the value is taken as written:
/// a percent-encoded one is refused as unknown, never ignored.
fn take_sslmode(url: &str) -> Result<(String, SslMode), String> {
    let mut mode = SslMode::Prefer;
    let mut take = |value: &str| -> Result<(), String> {
        mode = SslMode::parse(value).map_err(|e| format!("storage.postgres.url: {e}"))?;
        Ok(())
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), mode)) };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", value)) => take(value)?,
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, mode));
    }
    let mut rest = String::with_capacity(url.len());
    let mut kept = 0;
    for (span, key, value) in (KeyValues { s: url, at: 0 }) {
        if key == "sslmode" {
            take(&value)?;
            rest.push_str(&url[kept..span.start]);
            kept = span.end;
        }
    }
    rest.push_str(&url[kept..]);
    Ok((rest, mode))
}

/// The parameters of libpq's `key = value ...` form, as tokio-postgres reads them: byte
/// span, key and value (quoted or not, `\` escaping). Something malformed ends the list:
/// tokio-postgres then refuses the whole string.
struct KeyValues<'a> {
    s: &'a str,
    at: usize,
}

impl KeyValues<'_> {
    fn skip_ws(&mut self) {
        self.at += self.s[self.at..].len() - self.s[self.at..].trim_start().len();
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.s[self.at..].chars().next()?;
        self.at += c.len_utf8();
        Some(c)
    }

    /// A value: quoted up to the closing quote, else up to whitespace; `\` escapes.
    fn value(&mut self) -> Option<String> {
        let quoted = self.s[self.at..].starts_with('\'');
        if quoted {
            self.at += 1;
        }
        let mut value = String::new();
        loop {
            let rest = &self.s[self.at..];
            match rest.chars().next() {
                Some('\'') if quoted => {
                    self.at += 1;
                    return Some(value);
                }
                Some(c) if !quoted && c.is_whitespace() => return Some(value),
                None if quoted => return None,
                None => return Some(value),
                Some('\\') => {
                    self.at += 1;
                    value.extend(self.next_char());
                }
                Some(c) => {
                    self.at += c.len_utf8();
                    value.push(c);
                }
            }
        }
    }
}

impl Iterator for KeyValues<'_> {
    type Item = (Range<usize>, String, String);

    fn next(&mut self) -> Option<Self::Item> {
        self.skip_ws();
        let start = self.at;
        let key_len = self.s[start..].find(|c: char| c.is_whitespace() || c == '=').unwrap_or(self.s.len() - start);
        if key_len == 0 {
            return None;
        }
        self.at += key_len;
        self.skip_ws();
        if self.next_char() != Some('=') {
            return None;
        }
        self.skip_ws();
        let value = self.value()?;
        Some((start..self.at, self.s[start..start + key_len].to_string(), value))
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
    fn the_sslmode_is_taken_out_of_a_url_wherever_it_stands() {
        let base = "postgres://u:p@db:5432/shop";
        let cases = [
            (base.to_string(), base.to_string(), SslMode::Prefer),
            (format!("{base}?sslmode=verify-full"), base.to_string(), SslMode::VerifyFull),
            (
                format!("{base}?sslmode=require&application_name=a"),
                format!("{base}?application_name=a"),
                SslMode::Require,
            ),
            (
                format!("{base}?application_name=a&sslmode=verify-ca"),
                format!("{base}?application_name=a"),
                SslMode::VerifyCa,
            ),
            (
                format!("{base}?connect_timeout=5&sslmode=disable&application_name=a"),
                format!("{base}?connect_timeout=5&application_name=a"),
                SslMode::Disable,
            ),
            (format!("{base}?sslmode=require&sslmode=verify-full"), base.to_string(), SslMode::VerifyFull),
        ];
        for (url, rest, mode) in cases {
            assert_eq!(take_sslmode(&url).unwrap(), (rest, mode), "{url}");
        }
        let postgresql = take_sslmode("postgresql://db/shop?sslmode=verify-full").unwrap();
        assert_eq!(postgresql, ("postgresql://db/shop".to_string(), SslMode::VerifyFull));
    }

    #[test]
    fn the_sslmode_is_taken_out_of_a_key_value_string() {
        let (rest, mode) = take_sslmode("host=db sslmode=verify-full user=u").unwrap();
        assert_eq!(
            (rest.split_whitespace().collect::<Vec<_>>(), mode),
            (vec!["host=db", "user=u"], SslMode::VerifyFull)
        );
        let (rest, mode) = take_sslmode("host=db password='a b\\' sslmode=disable' sslmode = 'verify-ca'").unwrap();
        assert_eq!((rest.trim(), mode), ("host=db password='a b\\' sslmode=disable'", SslMode::VerifyCa));
        assert_eq!(take_sslmode("host=/tmp port=5432").unwrap(), ("host=/tmp port=5432".to_string(), SslMode::Prefer));
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
