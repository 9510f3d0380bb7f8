//! Quarantine: an operator pauses one key (a cart, an order, an inventory item) without
//! stopping anything else. While it is paused, commands to its actor are refused and sagas
//! that reach a step touching it park PAUSED; reads still work.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::text::{is_visible_text, Layout};
use super::time::Timestamp;

/// Which actor a quarantined key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyKind {
    /// A customer's cart: its key is the customer id (one cart per customer).
    Cart,
    Order,
    /// A product's stock: every inventory item of the product (all its variants).
    Inventory,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Cart, KeyKind::Order, KeyKind::Inventory];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Cart => "cart",
            KeyKind::Order => "order",
            KeyKind::Inventory => "inventory",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The audit trail's entity type for this kind.
    pub fn entity_type(self) -> &'static str {
        self.as_str()
    }
}

/// One key that can be paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QuarantineKey {
    pub kind: KeyKind,
    pub id: Uuid,
}

impl QuarantineKey {
    pub fn new(kind: KeyKind, id: Uuid) -> QuarantineKey {
        QuarantineKey { kind, id }
    }
}

impl fmt::Display for QuarantineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.id)
    }
}

/// A paused key: why, by whom, since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub key: QuarantineKey,
    pub reason: String,
    /// The operator: the credential's role, with the `X-Operator` name when one was given.
    pub paused_by: String,
    pub paused_at: Timestamp,
}

impl QuarantineEntry {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.key.kind.as_str(),
            "key": self.key.id,
            "reason": self.reason,
            "paused_by": self.paused_by,
            "paused_at": self.paused_at.rfc3339(),
        })
    }
}

/// Longest reason an operator may give, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// A reason as stored: trimmed, 1 to 500 characters, one line of visible text (it is shown
/// to every client a command is refused to, and on operators' screens).
pub fn reason(text: &str) -> Result<String, String> {
    let r = text.trim();
    if r.is_empty() || r.chars().count() > MAX_REASON_CHARS {
        return Err(format!("reason must be 1 to {MAX_REASON_CHARS} characters"));
    }
    if !is_visible_text(r, Layout::SingleLine) {
        return Err("reason must not contain control, bidirectional or zero-width characters".into());
    }
    Ok(r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_their_names_only() {
        for k in KeyKind::ALL {
            assert_eq!(KeyKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(KeyKind::parse("product"), None);
        assert_eq!(KeyKind::parse("Cart"), None);
    }

    #[test]
    fn reasons_are_one_visible_line_of_1_to_500_characters() {
        assert_eq!(reason("  poisoned stock count ").unwrap(), "poisoned stock count");
        assert!(reason("   ").is_err());
        assert!(reason(&"é".repeat(500)).is_ok());
        assert!(reason(&"é".repeat(501)).is_err());
        assert!(reason("a\u{202E}b").is_err());
        assert!(reason("a\nb").is_err());
    }
}
