//! Catalogue records and their validation rules (SEQ-PROD-001/002).

use serde::{Deserialize, Serialize};

use super::ids::{CategoryId, ProductId, VariantId};
use super::money::Money;
use super::text::{is_visible_text, Layout};
use super::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub category_id: CategoryId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub variant_id: VariantId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub product_id: ProductId,
    pub name: String,
    pub description: String,
    pub price: Money,
    pub category_id: CategoryId,
    pub is_active: bool,
    pub variants: Vec<Variant>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Product {
    pub fn has_variants(&self) -> bool {
        !self.variants.is_empty()
    }

    pub fn variant(&self, id: VariantId) -> Option<&Variant> {
        self.variants.iter().find(|v| v.variant_id == id)
    }

    /// Which inventory item a (product, maybe variant) choice refers to.
    pub fn resolve_variant(&self, variant: Option<VariantId>) -> Result<Option<VariantId>, VariantChoiceError> {
        match (self.has_variants(), variant) {
            (true, None) => Err(VariantChoiceError::Required),
            (true, Some(v)) if self.variant(v).is_some() => Ok(Some(v)),
            (_, Some(_)) => Err(VariantChoiceError::NotFound),
            (false, None) => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VariantChoiceError {
    #[error("this product has variants: choose one")]
    Required,
    #[error("variant not found")]
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProductRuleError {
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    DescriptionTooLong(String),
    #[error("{0}")]
    InvalidDescription(String),
    #[error("{0}")]
    InvalidPrice(String),
}

/// The catalogue's limits. The domain states the rules; how strict they are is configuration:
/// the `[catalog]` settings deserialize straight into this (the domain never reads settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CatalogRules {
    pub min_price: Money,
    pub max_price: Money,
    pub name_min: usize,
    pub name_max: usize,
    pub description_max: usize,
    pub category_name_max: usize,
}

/// A display name: trimmed, no control, bidi or zero-width characters, length in
/// characters within bounds.
pub fn check_name(raw: &str, min: usize, max: usize) -> Result<String, String> {
    let name = raw.trim();
    let len = name.chars().count();
    if !is_visible_text(name, Layout::SingleLine) {
        return Err("name must not contain control, bidirectional or zero-width characters".into());
    }
    if len < min || len > max {
        return Err(format!("name must be {min} to {max} characters, got {len}"));
    }
    Ok(name.to_string())
}

pub fn check_product_name(raw: &str, rules: &CatalogRules) -> Result<String, ProductRuleError> {
    check_name(raw, rules.name_min, rules.name_max).map_err(ProductRuleError::InvalidName)
}

pub fn check_description(raw: &str, rules: &CatalogRules) -> Result<String, ProductRuleError> {
    let len = raw.chars().count();
    if len > rules.description_max {
        return Err(ProductRuleError::DescriptionTooLong(format!(
            "description must be at most {} characters, got {len}",
            rules.description_max
        )));
    }
    if !is_visible_text(raw, Layout::MultiLine) {
        return Err(ProductRuleError::InvalidDescription(
            "description must not contain control, bidirectional or zero-width characters (newlines and tabs are fine)"
                .into(),
        ));
    }
    Ok(raw.to_string())
}

pub fn check_price(raw: &str, rules: &CatalogRules) -> Result<Money, ProductRuleError> {
    let price = Money::parse(raw).map_err(|e| ProductRuleError::InvalidPrice(format!("price {e}")))?;
    if price < rules.min_price {
        return Err(ProductRuleError::InvalidPrice(format!("price must be at least {}", rules.min_price)));
    }
    if price > rules.max_price {
        return Err(ProductRuleError::InvalidPrice(format!("price must be at most {}", rules.max_price)));
    }
    Ok(price)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The shipped defaults (config/default.toml; the catalog service's tests check them).
    pub(crate) fn rules() -> CatalogRules {
        CatalogRules {
            min_price: Money::from_cents(1),
            max_price: Money::from_cents(100_000_000),
            name_min: 2,
            name_max: 200,
            description_max: 5000,
            category_name_max: 100,
        }
    }

    #[test]
    fn names_count_characters_not_bytes() {
        let r = rules();
        let at_max = "é".repeat(r.name_max);
        assert_eq!(check_product_name(&at_max, &r).unwrap().chars().count(), r.name_max);
        assert!(check_product_name(&"é".repeat(r.name_max + 1), &r).is_err());
        assert!(check_product_name("x", &r).is_err());
        assert!(check_product_name("  ok  ", &r).is_ok());
        assert!(check_product_name("bad\u{0}name", &r).is_err());
    }

    #[test]
    fn price_rules() {
        let r = rules();
        assert!(check_price("0.00", &r).is_err());
        assert!(check_price("0.01", &r).is_ok());
        assert!(check_price("1.999", &r).is_err());
        assert!(check_price("-5", &r).is_err());
        assert!(check_price("1000000.01", &r).is_err());
    }

    #[test]
    fn description_limit() {
        let r = rules();
        assert!(check_description(&"a".repeat(r.description_max), &r).is_ok());
        assert!(check_description(&"a".repeat(r.description_max + 1), &r).is_err());
        assert!(check_description("two\n\tlines", &r).is_ok());
        assert!(matches!(check_description("evil\u{202E}txt", &r), Err(ProductRuleError::InvalidDescription(_))));
    }

    #[test]
    fn names_refuse_invisible_characters() {
        assert!(check_name("Ada\u{200B}", 1, 100).is_err());
        assert!(check_name("\u{2067}Ada", 1, 100).is_err());
        assert!(check_name("line\nbreak", 1, 100).is_err());
    }
}
