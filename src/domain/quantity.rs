//! Quantities: whole units, at least 1, bounded so arithmetic can never overflow.

use serde::{Deserialize, Serialize};

/// The largest quantity one request may carry.
pub const MAX_QUANTITY: u64 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Quantity(u32);

impl Quantity {
    /// Accepts a JSON integer in `1..=MAX_QUANTITY`; anything else (0, negative, fractional,
    /// a string) is refused with the reason.
    pub fn from_json(v: &serde_json::Value) -> Result<Quantity, String> {
        match v.as_i64() {
            Some(n) if n >= 1 && (n as u64) <= MAX_QUANTITY => Ok(Quantity(n as u32)),
            Some(n) if n < 1 => Err(format!("quantity must be at least 1, got {n}")),
            Some(_) => Err(format!("quantity must be at most {MAX_QUANTITY}")),
            None if v.is_u64() => Err(format!("quantity must be at most {MAX_QUANTITY}")),
            None => Err("quantity must be a whole number".to_string()),
        }
    }

    pub fn new(n: u32) -> Option<Quantity> {
        (n >= 1 && u64::from(n) <= MAX_QUANTITY).then_some(Quantity(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_integers_only() {
        assert_eq!(Quantity::from_json(&json!(3)).unwrap().get(), 3);
        for bad in [json!(0), json!(-1), json!(1.5), json!("3"), json!(null), json!(1e12), json!(u64::MAX)] {
            assert!(Quantity::from_json(&bad).is_err(), "{bad}");
        }
    }
}
