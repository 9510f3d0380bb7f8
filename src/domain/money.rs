//! Money: a non-negative decimal with at most two fraction digits, one shop currency.
//! On the wire it is a string with exactly two digits ("19.90").

use std::fmt;
use std::iter::Sum;
use std::ops::Add;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("not a decimal number")]
    NotADecimal,
    #[error("must not be negative")]
    Negative,
    #[error("at most two decimal places")]
    TooPrecise,
}

/// Upper bound of anything we add up, far above any real basket; keeps arithmetic exact.
const MAX_ABS: i64 = 1_000_000_000_000;

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Parses "19.9", "19.90" or "20"; rejects signs, exponents, spaces and a third decimal.
    pub fn parse(s: &str) -> Result<Money, MoneyError> {
        let well_formed = !s.is_empty()
            && s.len() <= 24
            && s.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-')
            && s.chars().filter(|c| *c == '.').count() <= 1
            && !s.starts_with('.')
            && !s.ends_with('.');
        if !well_formed {
            return Err(MoneyError::NotADecimal);
        }
        if s.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        if s.contains('-') {
            return Err(MoneyError::NotADecimal);
        }
        let d = Decimal::from_str(s).map_err(|_| MoneyError::NotADecimal)?;
        if d.normalize().scale() > 2 {
            return Err(MoneyError::TooPrecise);
        }
        if d > Decimal::from(MAX_ABS) {
            return Err(MoneyError::NotADecimal);
        }
        let mut d = d.normalize();
        d.rescale(2);
        Ok(Money(d))
    }

    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    pub fn times(self, quantity: u32) -> Money {
        let mut d = self.0 * Decimal::from(quantity);
        d.rescale(2);
        Money(d)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        let mut d = self.0 + rhs.0;
        d.rescale(2);
        Money(d)
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        let s = String::deserialize(d)?;
        Money::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_renders_two_places() {
        assert_eq!(Money::parse("19.9").unwrap().to_string(), "19.90");
        assert_eq!(Money::parse("20").unwrap().to_string(), "20.00");
        assert_eq!(Money::parse("0.01").unwrap().to_string(), "0.01");
        assert_eq!(Money::parse("1.500").unwrap().to_string(), "1.50");
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Money::parse("1.999"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse("-1.00"), Err(MoneyError::Negative));
        for bad in ["", "abc", "1e3", " 1.00", "1.00 ", "1..0", ".5", "5.", "1-2", "NaN"] {
            assert_eq!(Money::parse(bad), Err(MoneyError::NotADecimal), "{bad:?}");
        }
        assert!(Money::parse("99999999999999999999999").is_err());
    }

    #[test]
    fn arithmetic_is_exact() {
        let p = Money::parse("0.10").unwrap();
        assert_eq!(p.times(3).to_string(), "0.30");
        assert_eq!((p + Money::parse("0.20").unwrap()).to_string(), "0.30");
    }

    proptest! {
        #[test]
        fn any_cents_round_trip(cents in 0i64..100_000_000_000) {
            let m = Money::from_cents(cents);
            prop_assert_eq!(Money::parse(&m.to_string()).unwrap(), m);
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = Money::parse(&s);
        }
    }
}
