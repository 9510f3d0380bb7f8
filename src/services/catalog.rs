//! ProductService (SEQ-PROD-001/002) and categories. Products are store-backed records
//! (read far more than written); a price change is serialised per product and audited.

use std::sync::Arc;

use serde_json::json;

use super::caches::RecordCache;
pub use super::error::CatalogError;
use super::ServiceError;
use super::Stripes;
use crate::config::Settings;
use crate::domain::events::DomainEvent;
use crate::domain::ids::{CategoryId, ItemKey, ProductId, VariantId};
use crate::domain::inventory::{StockRecord, MAX_STOCK};
use crate::domain::product::{
    check_description, check_name, check_price, check_product_name, CatalogRules, Category, Product, Variant,
};
use crate::domain::time::Timestamp;
use crate::store::{keys, AuditEntry, Invalidation, Store, Table, WriteSet};

/// At most this many variants per product (bounds the product record).
pub const MAX_VARIANTS: usize = 100;

#[derive(Debug, Clone)]
pub struct NewVariant {
    pub name: String,
    pub initial_stock: u64,
}

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub price: String,
    pub category_id: CategoryId,
    pub initial_stock: Option<u64>,
    pub variants: Option<Vec<NewVariant>>,
}

#[derive(Clone)]
pub struct CatalogService {
    store: Store,
    rules: CatalogRules,
    stripes: Arc<Stripes>,
    /// Products as last committed. Every cart view reads each line's product, and the
    /// catalogue is small next to memory: a write replaces the entry after its commit, a
    /// miss only fills an empty entry, and a change made on another server drops it (see
    /// `caches`, `invalidations`).
    products: Arc<RecordCache<ProductId, Arc<Product>>>,
}

impl CatalogService {
    pub fn new(store: Store, settings: Arc<Settings>) -> CatalogService {
        let rules = settings.catalog;
        CatalogService { store, rules, stripes: Arc::new(Stripes::new(64)), products: Default::default() }
    }

    pub async fn create_category(&self, name: &str, by: &str) -> Result<Category, ServiceError> {
        let name = check_name(name, 1, self.rules.category_name_max).map_err(CatalogError::InvalidCategoryName)?;
        let category = Category { category_id: CategoryId::new(), name };
        let ws = WriteSet::new()
            .save(keys::category(category.category_id), &category)
            .event(&DomainEvent::CategoryCreated { category_id: category.category_id, name: category.name.clone() })
            .audit(audit(
                by,
                "category.created",
                "category",
                &category.category_id.to_string(),
                json!(null),
                json!(category),
            ));
        self.store.commit(ws).await?;
        Ok(category)
    }

    pub fn categories(&self) -> Result<Vec<Category>, ServiceError> {
        Ok(self.store.page::<Category>(Table::Categories, None, 10_000)?.into_iter().map(|(_, c)| c).collect())
    }

    /// Validates everything first, then writes the product and its inventory items at once.
    pub async fn create_product(&self, new: NewProduct, by: &str) -> Result<Product, ServiceError> {
        let rules = &self.rules;
        let name = check_product_name(&new.name, rules)?;
        let description = check_description(&new.description, rules)?;
        let price = check_price(&new.price, rules)?;
        let variants = new.variants.unwrap_or_default();
        if variants.len() > MAX_VARIANTS {
            return Err(ServiceError::invalid("variants", format!("at most {MAX_VARIANTS} variants")));
        }
        if !variants.is_empty() && new.initial_stock.is_some() {
            return Err(ServiceError::invalid(
                "initial_stock",
                "a product with variants takes initial_stock per variant",
            ));
        }
        // The product's stock lies in its variants' (or its own) partition: minted in one
        // this server owns, so the one write set that creates the product and its stock is
        // this server's to write, whoever owns the other partitions.
        let product_id = ProductId(self.store.owned().fresh_id());
        let mut product_variants = Vec::with_capacity(variants.len());
        for (i, v) in variants.iter().enumerate() {
            let vname =
                check_name(&v.name, 1, 100).map_err(|m| ServiceError::invalid(&format!("variants[{i}].name"), m))?;
            if product_variants.iter().any(|p: &Variant| p.name.to_lowercase() == vname.to_lowercase()) {
                return Err(ServiceError::invalid(&format!("variants[{i}].name"), "variant names must be unique"));
            }
            check_stock(v.initial_stock)?;
            let variant_id = VariantId(crate::domain::partition::alike(uuid::Uuid::now_v7(), &product_id.0));
            product_variants.push(Variant { variant_id, name: vname });
        }
        check_stock(new.initial_stock.unwrap_or(0))?;
        if !self.store.exists(&keys::category(new.category_id))? {
            return Err(CatalogError::CategoryNotFound.into());
        }
        let now = Timestamp::now();
        let product = Product {
            product_id,
            name,
            description,
            price,
            category_id: new.category_id,
            is_active: true,
            variants: product_variants,
            created_at: now,
            updated_at: now,
        };
        let items: Vec<(Option<VariantId>, u64)> = if variants.is_empty() {
            vec![(None, new.initial_stock.unwrap_or(0))]
        } else {
            product.variants.iter().zip(&variants).map(|(pv, v)| (Some(pv.variant_id), v.initial_stock)).collect()
        };
        let pid = product.product_id;
        // A new id: no server has a copy of it to drop.
        let mut ws = WriteSet::new().save(keys::product(pid), &product).event(&DomainEvent::ProductCreated {
            product_id: pid,
            name: product.name.clone(),
            price,
            category_id: product.category_id,
            variant_ids: product.variants.iter().map(|v| v.variant_id).collect(),
        });
        for (variant_id, on_hand) in items {
            let key = ItemKey { product_id: pid, variant_id };
            ws = ws
                .save(keys::stock(&key), &StockRecord { key, on_hand, reserved: 0 })
                .event(&DomainEvent::InventoryInitialized { product_id: pid, variant_id, on_hand });
        }
        ws = ws.audit(audit(by, "product.created", "product", &pid.to_string(), json!(null), json!(product)));
        let ticket = self.products.ticket();
        self.store.commit(ws).await?;
        self.products.written(pid, Arc::new(product.clone()), ticket);
        tracing::info!(product_id = %pid, "product created");
        Ok(product)
    }

    /// SEQ-PROD-002: carts show the new price on their next view.
    pub async fn update_price(&self, id: ProductId, raw_price: &str, by: &str) -> Result<Product, ServiceError> {
        let _guard = self.stripes.lock(id.as_bytes()).await;
        let mut product: Product = (*self.product(id)?).clone();
        let price = check_price(raw_price, &self.rules)?;
        if price == product.price {
            return Ok(product);
        }
        let old_price = product.price;
        product.price = price;
        product.updated_at = Timestamp::now();
        let ws = WriteSet::new()
            .save(keys::product(id), &product)
            .event(&DomainEvent::ProductUpdated { product_id: id, old_price, new_price: price })
            .audit(audit(
                by,
                "product.price_changed",
                "product",
                &id.to_string(),
                json!({ "price": old_price }),
                json!({ "price": price }),
            ))
            .invalidate(Invalidation::Product(id));
        let ticket = self.products.ticket();
        self.store.commit(ws).await?;
        self.products.written(id, Arc::new(product.clone()), ticket);
        tracing::info!(product_id = %id, %old_price, new_price = %price, "price changed");
        Ok(product)
    }

    /// An existing product (active or not), or PRODUCT_NOT_FOUND.
    pub fn product(&self, id: ProductId) -> Result<Arc<Product>, ServiceError> {
        if let Some(p) = self.products.get(&id) {
            return Ok(p);
        }
        let ticket = self.products.ticket();
        let product = self.store.load::<Product>(&keys::product(id))?.ok_or(CatalogError::ProductNotFound)?;
        Ok(self.products.read(id, Arc::new(product), ticket))
    }

    /// A product changed on another server (its invalidation): read from the store next.
    pub fn forget_product(&self, id: ProductId) {
        self.products.forget(&id);
    }

    /// Invalidations were missed: every product is read from the store next.
    pub fn forget_cached(&self) {
        self.products.forget_all();
    }

    /// A product customers may see and buy.
    pub fn active_product(&self, id: ProductId) -> Result<Arc<Product>, ServiceError> {
        Some(self.product(id)?).filter(|p| p.is_active).ok_or(CatalogError::ProductNotFound.into())
    }

    /// Active products after `cursor`, in creation order.
    pub fn list_active(
        &self,
        cursor: Option<ProductId>,
        limit: usize,
    ) -> Result<(Vec<Product>, Option<ProductId>), ServiceError> {
        let mut out = Vec::with_capacity(limit);
        let mut after = cursor.map(|c| keys::product(c).into_bytes());
        loop {
            let page = self.store.page::<Product>(Table::Products, after.as_deref(), limit.max(1) * 2)?;
            let exhausted = page.len() < limit.max(1) * 2;
            for (k, p) in page {
                after = Some(k);
                if p.is_active {
                    out.push(p);
                    if out.len() == limit {
                        let next = out.last().map(|p| p.product_id);
                        return Ok((out, next));
                    }
                }
            }
            if exhausted {
                return Ok((out, None));
            }
        }
    }
}

fn check_stock(n: u64) -> Result<(), ServiceError> {
    if n > MAX_STOCK {
        return Err(ServiceError::InvalidQuantity(format!("initial stock must be at most {MAX_STOCK}")));
    }
    Ok(())
}

pub fn audit(
    by: &str,
    action: &str,
    entity_type: &str,
    entity_id: &str,
    before: serde_json::Value,
    after: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        at: Timestamp::now(),
        actor: by.to_string(),
        action: action.to_string(),
        entity_type: entity_type.to_string(),
        entity_id: entity_id.to_string(),
        before: before.to_string(),
        after: after.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The domain's own tests use these numbers without reading the settings.
    #[test]
    fn the_default_settings_give_the_limits_the_domain_tests_assume() {
        let rules = Settings::load_layers(None, false).unwrap().catalog;
        assert_eq!(rules, crate::domain::product::tests::rules());
    }
}
