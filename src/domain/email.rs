//! Email addresses: syntax checked by the `email_address` crate, plus a dotted domain;
//! uniqueness is case-insensitive, so the lookup key is the lower-cased address.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 254 {
            return Err("email must be 1 to 254 characters".into());
        }
        let parsed = email_address::EmailAddress::from_str(s).map_err(|e| format!("invalid email: {e}"))?;
        let domain = parsed.domain();
        if !domain.contains('.') || domain.starts_with('[') || domain.ends_with('.') {
            return Err("email domain must be a dotted host name".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("email must not contain spaces".into());
        }
        Ok(Email(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key under which uniqueness is enforced.
    pub fn lookup_key(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        let e = Email::parse(" Ada.Lovelace+shop@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ada.Lovelace+shop@Example.COM");
        assert_eq!(e.lookup_key(), "ada.lovelace+shop@example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "plain", "a@b", "@example.com", "a@", "a b@example.com", "a@example.", "a@@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
