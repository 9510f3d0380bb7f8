//! Layered configuration: the embedded `config/default.toml`, then the file named by
//! `CARTWRIGHT_CONFIG`, then `CARTWRIGHT__SECTION__KEY` environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::domain::money::Money;
use crate::domain::partition::Partitions;

mod keys;
mod secrets;

pub use secrets::WeakSecret;

/// The embedded defaults, so `cartwright` runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub actors: ActorSettings,
    pub auth: AuthSettings,
    pub webhooks: WebhookSettings,
    pub payment: PaymentSettings,
    pub shop: ShopSettings,
    pub shipping: ShippingSettings,
    pub catalog: CatalogSettings,
    pub cart: CartSettings,
    pub checkout: CheckoutSettings,
    pub notifications: NotificationSettings,
    pub orders: OrderSettings,
    pub sagas: SagaSettings,
    pub alerts: AlertSettings,
    pub operator: OperatorSettings,
    pub console: ConsoleSettings,
    pub cluster: ClusterSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClusterSettings {
    /// Empty: a random id for this run.
    pub node_id: String,
    pub lease_ms: u64,
    /// Where the other servers reach this one; empty: `http://` and the address it bound.
    pub advertise_url: String,
    /// How many partitions the key space of a PostgreSQL store has (fixed when the store
    /// is created; see [`crate::domain::partition`]).
    pub partitions: Partitions,
    /// How often a serving server reads the cache invalidation log (see
    /// `services::invalidations`): a change another server made is answered here no later.
    pub cache_poll_ms: u64,
}

impl ClusterSettings {
    /// The id this process goes by: the configured one, or a fresh random one.
    pub fn resolved(&self) -> ClusterSettings {
        let node_id = if self.node_id.is_empty() { uuid::Uuid::new_v4().to_string() } else { self.node_id.clone() };
        ClusterSettings { node_id, ..self.clone() }
    }

    /// As [`ClusterSettings::resolved`], advertising `bound` unless a URL is configured.
    /// A wildcard address (`0.0.0.0`, `[::]`) is advertised under this machine's host name.
    pub fn advertising(&self, bound: SocketAddr) -> ClusterSettings {
        let mut resolved = self.resolved();
        if resolved.advertise_url.is_empty() {
            let host = if bound.ip().is_unspecified() {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .unwrap_or_else(|_| "localhost".into())
            } else {
                match bound {
                    SocketAddr::V4(a) => a.ip().to_string(),
                    SocketAddr::V6(a) => format!("[{}]", a.ip()),
                }
            };
            resolved.advertise_url = format!("http://{host}:{}", bound.port());
        }
        resolved
    }

    /// What tools that open a store themselves (restore, tests) go by.
    pub fn for_tools() -> ClusterSettings {
        ClusterSettings {
            node_id: String::new(),
            lease_ms: 5000,
            advertise_url: String::new(),
            partitions: Partitions::DEFAULT,
            cache_poll_ms: 100,
        }
        .resolved()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub addr: SocketAddr,
    pub shutdown_grace_secs: u64,
    pub max_body_bytes: usize,
    /// A started request head must be complete within this, else the connection is closed.
    pub header_read_timeout_ms: u64,
    /// The whole body must arrive within this after the head, else 408 REQUEST_TIMEOUT.
    pub body_read_timeout_ms: u64,
    /// Open connections; at the cap the idlest keep-alive connection makes room.
    pub max_connections: usize,
    /// A keep-alive connection with no request for this long is closed.
    pub keep_alive_idle_timeout_ms: u64,
    /// Where people reach the server (links in alert emails).
    pub public_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Reply after flush + fdatasync (group commit). The default.
    Durable,
    /// Reply once sled has the write in its buffers; a crash of the machine may lose ~500 ms.
    Relaxed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The embedded sled store under `storage.path`. The default.
    Sled,
    /// A PostgreSQL database at `storage.postgres.url`.
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StorageSettings {
    pub backend: Backend,
    pub path: PathBuf,
    pub durability: Durability,
    pub cache_capacity_mb: u64,
    pub postgres: PostgresSettings,
}

impl StorageSettings {
    /// Where the store is, for messages (never the database URL: it may hold a password).
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Sled => format!("the store at {}", self.path.display()),
            Backend::Postgres => format!("the PostgreSQL store (schema {})", self.postgres.schema),
        }
    }

    /// A durable sled store at `path` (restores and tools that build a store directory).
    pub fn sled_at(path: PathBuf, cache_capacity_mb: u64) -> StorageSettings {
        let postgres = PostgresSettings {
            url: String::new(),
            schema: "cartwright".into(),
            pool_size: 1,
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
        };
        StorageSettings { backend: Backend::Sled, path, durability: Durability::Durable, cache_capacity_mb, postgres }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PostgresSettings {
    pub url: String,
    pub schema: String,
    pub pool_size: usize,
    /// PEM file of the CA(s) the database's certificate must chain to; empty: Mozilla's roots.
    pub ca_file: String,
    /// PEM files of a client certificate (chain) and its key, for `cert` authentication; both
    /// or neither.
    pub client_cert: String,
    pub client_key: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActorSettings {
    pub idle_timeout_secs: u64,
    pub arbiters: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub admin_token: String,
    pub fulfillment_token: String,
    pub session_ttl_secs: i64,
    /// How long an email verification token stays usable.
    pub verification_ttl_secs: u64,
    /// How often the sweeper runs (sessions, tokens, idempotency keys, sagas, webhook events).
    pub sweep_interval_secs: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// Password hashes (logins, registrations) running at once; 0 means one per core.
    pub max_concurrent_hashes: usize,
    /// Login attempts per account (normalized email) per minute; 0 means no limit.
    pub login_per_account_per_minute: u32,
    /// Login attempts per client address (the TCP peer) per minute; 0 means no limit.
    pub login_per_ip_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub payment_secret: String,
    pub carrier_secret: String,
    pub tolerance_secs: u64,
    /// How long a received webhook event is kept (and recognised as a duplicate).
    pub retention_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentSettings {
    pub gateway: String,
    pub http: PaymentHttpSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaymentHttpSettings {
    pub base_url: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShopSettings {
    pub currency: String,
}

/// Also carried in a checkout's saga input: the rule as of the checkout prices it, whatever
/// the configuration says when a step runs again after a restart.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct ShippingSettings {
    pub domestic_country: String,
    pub flat_rate: Money,
    pub free_over: Money,
}

/// The `[catalog]` section is the domain's catalogue rules, as they are.
pub type CatalogSettings = crate::domain::product::CatalogRules;

#[derive(Debug, Clone, Deserialize)]
pub struct CartSettings {
    pub max_lines: usize,
    pub max_line_quantity: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutSettings {
    pub sync_wait_ms: u64,
    /// How long an Idempotency-Key keeps answering with its first saga.
    pub idempotency_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NotificationSettings {
    pub transport: String,
    pub admin_email: String,
    pub from: String,
    pub max_retries: u32,
    pub initial_backoff_ms: u64,
    pub multiplier: f64,
    pub max_backoff_ms: u64,
    pub poll_interval_ms: u64,
    pub fail_first_attempts: u32,
    pub smtp: SmtpSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderSettings {
    pub expire_unpaid_after_secs: u64,
    pub expiry_check_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SagaSettings {
    /// How long a COMPLETED, FAILED or ABORTED saga is kept after it finished.
    pub retention_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlertSettings {
    /// A saga RETRYING this long (since its step's first attempt) alerts the admin once.
    pub retrying_after_secs: u64,
    /// How often RETRYING sagas are checked.
    pub check_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OperatorSettings {
    /// Most sagas one bulk resume or abort acts on (the rest of a larger match is left).
    pub bulk_max: usize,
}

/// The operators' web console (docs/console.md).
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleSettings {
    /// Serves `/console`; off, every console path is 404.
    pub enabled: bool,
    /// A session ends this long after sign-in, whatever the browser keeps.
    pub session_ttl_secs: u64,
    /// Marks the session cookie `Secure` (the console is reached over HTTPS).
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-Proto: https` is believed (a TLS-terminating proxy): it
    /// marks the cookie `Secure` and makes `https` the origin the CSRF check expects.
    /// A list, or one comma-separated text (what an environment variable can hold).
    #[serde(deserialize_with = "ip_list")]
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Sign-in attempts per client address per minute, right or wrong; 0 means no limit.
    pub sign_in_per_ip_per_minute: u32,
}

/// IP addresses from a list, or from one comma-separated text.
fn ip_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<std::net::IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Text(String),
        List(Vec<String>),
    }
    let items = match Given::deserialize(d)? {
        Given::Text(t) => t.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        Given::List(l) => l,
    };
    items
        .iter()
        .map(|s| s.trim().parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address"))))
        .collect()
}

/// `CARTWRIGHT__SECTION__KEY` variables (the `config` crate lowercases the key).
pub fn env_source() -> Environment {
    Environment::with_prefix("CARTWRIGHT").prefix_separator("__").separator("__").try_parsing(true)
}

impl Settings {
    /// Defaults, then `CARTWRIGHT_CONFIG`, then the environment.
    pub fn load() -> Result<Settings, config::ConfigError> {
        let extra = std::env::var("CARTWRIGHT_CONFIG").ok();
        Self::load_layers(extra.as_deref(), true)
    }

    /// Defaults plus an optional file; `with_env` adds `CARTWRIGHT__*` variables on top.
    pub fn load_layers(file: Option<&str>, with_env: bool) -> Result<Settings, config::ConfigError> {
        Self::load_from(file, with_env.then(env_source))
    }

    /// Defaults, an optional file, then an optional environment source (tests inject a map
    /// with `Environment::source`). A key no default names is refused, with the closest
    /// known key as a hint: a misspelt setting must not silently fall back to its default.
    pub fn load_from(file: Option<&str>, env: Option<Environment>) -> Result<Settings, config::ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::with_name(path).required(true));
        }
        if let Some(env) = env {
            builder = builder.add_source(env);
        }
        let merged = builder.build()?;
        keys::refuse_unknown(&merged.cache)?;
        let settings: Settings = merged.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    /// Rejects combinations that would make the server misbehave rather than fail fast.
    fn check(&self) -> Result<(), config::ConfigError> {
        let bad = |m: &str| Err(config::ConfigError::Message(m.to_string()));
        if self.auth.admin_token.len() < 8 || self.auth.fulfillment_token.len() < 8 {
            return bad("auth tokens must be at least 8 characters");
        }
        if self.auth.admin_token == self.auth.fulfillment_token {
            return bad("auth.admin_token and auth.fulfillment_token must differ");
        }
        if self.cluster.lease_ms < 300 || self.cluster.node_id.len() > 128 {
            return bad("cluster.lease_ms must be >= 300 and cluster.node_id at most 128 characters");
        }
        if !(1..=60_000).contains(&self.cluster.cache_poll_ms) {
            return bad("cluster.cache_poll_ms must be 1 to 60000");
        }
        if self.storage.backend == Backend::Postgres {
            let pg = &self.storage.postgres;
            if pg.url.is_empty() {
                return bad("storage.backend = \"postgres\" needs storage.postgres.url");
            }
            if pg.pool_size == 0 {
                return bad("storage.postgres.pool_size must be >= 1");
            }
            if pg.client_cert.is_empty() != pg.client_key.is_empty() {
                return bad("storage.postgres.client_cert and storage.postgres.client_key go together");
            }
            // The schema is spliced into SQL as an identifier: keep it to plain ones.
            let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
            if pg.schema.is_empty() || pg.schema.len() > 48 || !pg.schema.chars().all(plain) {
                return bad("storage.postgres.schema must be 1-48 characters of a-z, 0-9 and _");
            }
        }
        let server = &self.server;
        if server.header_read_timeout_ms == 0
            || server.body_read_timeout_ms == 0
            || server.keep_alive_idle_timeout_ms == 0
            || server.max_connections == 0
        {
            return bad("server timeouts and server.max_connections must be >= 1");
        }
        if self.catalog.name_min == 0 || self.catalog.name_min > self.catalog.name_max {
            return bad("catalog.name_min must be >= 1 and <= catalog.name_max");
        }
        if self.cart.max_lines == 0 || self.cart.max_line_quantity == 0 {
            return bad("cart.max_lines and cart.max_line_quantity must be >= 1");
        }
        // These bound what one record can weigh (a product with its variants, a cart, an
        // order, a stored webhook body): above them a record could approach the size at
        // which sled moves tree nodes into files it never fsyncs. Lower is always fine.
        let bounds = [
            ("catalog.name_max", self.catalog.name_max, 200),
            ("catalog.description_max", self.catalog.description_max, 5000),
            ("catalog.category_name_max", self.catalog.category_name_max, 100),
            ("cart.max_lines", self.cart.max_lines, 100),
            ("server.max_body_bytes", self.server.max_body_bytes, 65536),
        ];
        if let Some((key, value, max)) = bounds.iter().find(|(_, value, max)| value > max) {
            return bad(&format!(
                "{key} = {value} is above its maximum {max} (records must stay small; see the durability contract)"
            ));
        }
        if self.checkout.idempotency_ttl_secs > self.sagas.retention_secs {
            // A key outliving its saga would answer a repeat with 404 instead of the saga.
            return bad("checkout.idempotency_ttl_secs must not exceed sagas.retention_secs");
        }
        if self.operator.bulk_max == 0 {
            return bad("operator.bulk_max must be >= 1");
        }
        if !matches!(self.notifications.transport.as_str(), "log" | "smtp") {
            return bad("notifications.transport must be \"log\" or \"smtp\"");
        }
        if self.shipping.domestic_country.len() != 2 {
            return bad("shipping.domestic_country must be an ISO 3166-1 alpha-2 code");
        }
        Ok(())
    }

    /// The secrets that must not guard a real deployment: shipped defaults, empty or short.
    pub fn weak_secrets(&self) -> Vec<WeakSecret> {
        secrets::weak_secrets(self)
    }

    pub fn arbiter_count(&self) -> usize {
        if self.actors.arbiters == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            self.actors.arbiters
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse() {
        let s = Settings::load_layers(None, false).expect("defaults parse");
        assert_eq!(s.storage.durability, Durability::Durable);
        assert_eq!(s.webhooks.tolerance_secs, 300);
        assert_eq!(s.shipping.flat_rate.to_string(), "5.99");
        assert_eq!(s.notifications.transport, "log");
    }

    #[test]
    fn a_file_layer_overrides_defaults_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("local.toml");
        std::fs::write(&file, "[server]\naddr = \"127.0.0.1:0\"\n[shipping]\nflat_rate = \"4.50\"\n").unwrap();
        let s = Settings::load_layers(file.to_str(), false).unwrap();
        assert_eq!(s.server.addr.port(), 0);
        assert_eq!(s.shipping.flat_rate.to_string(), "4.50");
        assert_eq!(s.catalog.name_max, 200);

        std::fs::write(&file, "[shipping]\nflat_rate = \"4.505\"\n").unwrap();
        assert!(Settings::load_layers(file.to_str(), false).is_err());
        std::fs::write(&file, "[auth]\nadmin_token = \"same-token\"\nfulfillment_token = \"same-token\"\n").unwrap();
        assert!(Settings::load_layers(file.to_str(), false).is_err());
        assert!(Settings::load_layers(Some("/nonexistent/cartwright.toml"), false).is_err());
        std::fs::write(&file, "[catalog]\ndescription_max = 5001\n").unwrap();
        let err = Settings::load_layers(file.to_str(), false).unwrap_err().to_string();
        assert!(err.contains("catalog.description_max"), "{err}");
        std::fs::write(&file, "[checkout]\nidempotency_ttl_secs = 100\n[sagas]\nretention_secs = 99\n").unwrap();
        let err = Settings::load_layers(file.to_str(), false).unwrap_err().to_string();
        assert!(err.contains("idempotency_ttl_secs"), "{err}");
    }

    fn env(vars: &[(&str, &str)]) -> Option<Environment> {
        let map = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Some(env_source().source(Some(map)))
    }

    #[test]
    fn a_postgres_client_certificate_without_its_key_is_refused() {
        let pg = |extra: &[(&str, &str)]| {
            let mut vars = vec![
                ("CARTWRIGHT__STORAGE__BACKEND", "postgres"),
                ("CARTWRIGHT__STORAGE__POSTGRES__URL", "postgres://db/shop"),
            ];
            vars.extend_from_slice(extra);
            Settings::load_from(None, env(&vars))
        };
        let cert = ("CARTWRIGHT__STORAGE__POSTGRES__CLIENT_CERT", "/etc/cartwright/pg.pem");
        let key = ("CARTWRIGHT__STORAGE__POSTGRES__CLIENT_KEY", "/etc/cartwright/pg.key");
        for lone in [cert, key] {
            let err = pg(&[lone]).unwrap_err().to_string();
            assert!(err.contains("storage.postgres.client_cert and storage.postgres.client_key go together"), "{err}");
        }
        let s = pg(&[cert, key, ("CARTWRIGHT__STORAGE__POSTGRES__CA_FILE", "/etc/cartwright/pg-ca.pem")]).unwrap();
        assert_eq!(s.storage.postgres.ca_file, "/etc/cartwright/pg-ca.pem");
        assert_eq!((s.storage.postgres.client_cert.as_str(), s.storage.postgres.client_key.as_str()), (cert.1, key.1));
    }

    #[test]
    fn an_unknown_key_in_a_file_is_refused_with_the_closest_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("local.toml");
        std::fs::write(&file, "[storage]\nbakend = \"postgres\"\n[server]\nshutdown_grace = 3\n").unwrap();
        let err = Settings::load_from(file.to_str(), None).unwrap_err().to_string();
        assert!(err.contains("unknown setting storage.bakend (did you mean storage.backend?)"), "{err}");
        assert!(
            err.contains("unknown setting server.shutdown_grace (did you mean server.shutdown_grace_secs?)"),
            "{err}"
        );
        assert!(err.contains("local.toml"), "{err}");
    }

    #[test]
    fn an_unknown_environment_variable_is_refused_naming_it() {
        let err = Settings::load_from(None, env(&[("CARTWRIGHT__STORAGE__BAKEND", "postgres")])).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("unknown setting storage.bakend (did you mean storage.backend?)"), "{err}");
        assert!(err.contains("environment variable CARTWRIGHT__STORAGE__BAKEND"), "{err}");
        // A whole section that does not exist gets no far-fetched hint.
        let err = Settings::load_from(None, env(&[("CARTWRIGHT__QUEUE__KIND", "kafka")])).unwrap_err();
        assert!(err.to_string().starts_with("unknown setting queue.kind from"), "{err}");
    }

    #[test]
    fn known_environment_variables_still_apply_and_other_prefixes_are_not_settings() {
        let s = Settings::load_from(
            None,
            env(&[
                ("CARTWRIGHT__SERVER__SHUTDOWN_GRACE_SECS", "3"),
                ("CARTWRIGHT__PAYMENT__HTTP__TIMEOUT_MS", "250"),
                ("CARTWRIGHT_CONFIG", "/etc/cartwright.toml"),
                ("CARTWRIGHT_TOKEN", "for-the-cli"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.shutdown_grace_secs, 3);
        assert_eq!(s.payment.http.timeout_ms, 250);
    }

    #[test]
    fn shipped_empty_and_short_secrets_are_weak() {
        let mut s = Settings::load_layers(None, false).unwrap();
        let weak: Vec<_> = s.weak_secrets().into_iter().map(|w| (w.setting, w.why)).collect();
        use secrets::Weakness::*;
        assert_eq!(
            weak,
            [
                ("auth.admin_token", ShippedDefault),
                ("auth.fulfillment_token", ShippedDefault),
                ("webhooks.payment_secret", ShippedDefault),
                ("webhooks.carrier_secret", ShippedDefault),
            ]
        );
        s.auth.admin_token = "0123456789abcdef".into();
        s.auth.fulfillment_token = "fifteen-chars!!".into();
        s.webhooks.payment_secret = String::new();
        s.webhooks.carrier_secret = "a-carrier-secret-long-enough".into();
        let weak = s.weak_secrets();
        assert_eq!(
            weak.iter().map(|w| (w.setting, w.why)).collect::<Vec<_>>(),
            [("auth.fulfillment_token", TooShort), ("webhooks.payment_secret", Empty)]
        );
        let message = weak[1].to_string();
        assert!(message.contains("webhooks.payment_secret is empty"), "{message}");
        assert!(message.contains("CARTWRIGHT__WEBHOOKS__PAYMENT_SECRET"), "{message}");
    }

    #[test]
    fn console_trusted_proxies_are_a_list_or_comma_separated_text() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("local.toml");
        for (text, n) in [("[\"10.0.0.1\", \"::1\"]", 2), ("\"10.0.0.1, 10.0.0.2,\"", 2), ("\"\"", 0)] {
            std::fs::write(&file, format!("[console]\ntrusted_proxies = {text}\n")).unwrap();
            assert_eq!(Settings::load_layers(file.to_str(), false).unwrap().console.trusted_proxies.len(), n, "{text}");
        }
        std::fs::write(&file, "[console]\ntrusted_proxies = \"proxy.local\"\n").unwrap();
        let err = Settings::load_layers(file.to_str(), false).unwrap_err().to_string();
        assert!(err.contains("not an IP address"), "{err}");
    }
}
