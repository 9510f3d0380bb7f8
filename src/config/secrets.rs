//! Secrets that must not guard a real deployment. The shipped tokens and webhook secrets are
//! public (they are in this repository), so a server reachable from other machines with
//! one of them would accept anyone as admin, or a forged `payment.captured` as a payment.
//! `app::run` refuses to serve such settings on a non-loopback address and warns on loopback.

use std::fmt;

use super::{keys, Settings, DEFAULT_TOML};

/// Shorter secrets are refused: 16 characters is the floor for a guessing attack over HTTP.
pub const MIN_SECRET_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakSecret {
    /// The dotted setting, e.g. `auth.admin_token`.
    pub setting: &'static str,
    pub why: Weakness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weakness {
    ShippedDefault,
    Empty,
    TooShort,
}

impl fmt::Display for WeakSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.why {
            Weakness::ShippedDefault => "is the shipped default",
            Weakness::Empty => "is empty",
            Weakness::TooShort => "is shorter than 16 characters",
        };
        write!(
            f,
            "{} {why}: set a random secret of at least {MIN_SECRET_LEN} characters with {} \
             (or in the file named by CARTWRIGHT_CONFIG)",
            self.setting,
            keys::env_var(self.setting)
        )
    }
}

pub(super) fn weak_secrets(settings: &Settings) -> Vec<WeakSecret> {
    let secrets: [(&'static str, &str); 4] = [
        ("auth.admin_token", &settings.auth.admin_token),
        ("auth.fulfillment_token", &settings.auth.fulfillment_token),
        ("webhooks.payment_secret", &settings.webhooks.payment_secret),
        ("webhooks.carrier_secret", &settings.webhooks.carrier_secret),
    ];
    secrets
        .into_iter()
        .filter_map(|(setting, value)| weakness(setting, value).map(|why| WeakSecret { setting, why }))
        .collect()
}

fn weakness(setting: &str, value: &str) -> Option<Weakness> {
    if value.is_empty() {
        Some(Weakness::Empty)
    } else if Some(value) == shipped(setting).as_deref() {
        Some(Weakness::ShippedDefault)
    } else if value.chars().count() < MIN_SECRET_LEN {
        Some(Weakness::TooShort)
    } else {
        None
    }
}

/// The value `default.toml` ships for a dotted key (read from the file itself, so changing
/// a shipped secret there cannot make this check pass it).
fn shipped(setting: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(DEFAULT_TOML).ok()?;
    let (section, key) = setting.split_once('.')?;
    table.get(section)?.get(key)?.as_str().map(str::to_string)
}
