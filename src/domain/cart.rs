//! The Cart aggregate (SEQ-CART-001..003): pure decisions and their application.
//! Prices are not stored in the cart: a view always shows the product's current price.

use serde::{Deserialize, Serialize};

use super::events::{DomainEvent, TakenLine};
use super::ids::{CustomerId, LineId, ProductId, SagaId, VariantId};
use super::quantity::Quantity;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub line_id: LineId,
    pub product_id: ProductId,
    pub variant_id: Option<VariantId>,
    pub quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cart {
    pub cart_id: LineId,
    pub customer_id: CustomerId,
    pub lines: Vec<CartLine>,
    /// The last checkout that emptied this cart: clearing for it again is a no-op, so a
    /// retried step never wipes what the customer added after checking out.
    pub last_cleared_by: Option<SagaId>,
}

/// Bounds that keep one cart record small (see docs/storage.md on sled blobs).
#[derive(Debug, Clone, Copy)]
pub struct CartLimits {
    pub max_lines: usize,
    pub max_line_quantity: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartCommand {
    /// `available` is the stock the inventory reported for this item just before.
    AddItem {
        product_id: ProductId,
        variant_id: Option<VariantId>,
        quantity: Quantity,
        available: u64,
    },
    UpdateQuantity {
        line_id: LineId,
        quantity: u32,
        available: u64,
    },
    RemoveItem {
        line_id: LineId,
    },
    /// Take out of the cart what checkout `by` ordered (once per checkout): lines added or
    /// increased while it ran keep what it did not take.
    Clear {
        by: SagaId,
        taken: Vec<TakenLine>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CartError {
    #[error("the product is out of stock")]
    OutOfStock,
    #[error("only {available} available")]
    QuantityExceedsStock { available: u64 },
    #[error("no such item in the cart")]
    ItemNotFound,
    #[error("a cart holds at most {max} different items")]
    CartFull { max: usize },
    #[error("a cart line holds at most {max} units")]
    LineQuantityTooLarge { max: u32 },
}

/// What a command decided: the events to persist, and whether an update was capped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CartDecision {
    pub events: Vec<DomainEvent>,
    /// Set when an update asked for more than was available and was capped to this.
    pub capped_at: Option<u64>,
}

impl Cart {
    pub fn new(customer_id: CustomerId) -> Cart {
        Cart { cart_id: LineId::new(), customer_id, lines: Vec::new(), last_cleared_by: None }
    }

    pub fn line(&self, id: LineId) -> Option<&CartLine> {
        self.lines.iter().find(|l| l.line_id == id)
    }

    fn line_for(&self, product: ProductId, variant: Option<VariantId>) -> Option<&CartLine> {
        self.lines.iter().find(|l| l.product_id == product && l.variant_id == variant)
    }

    /// Decides; never mutates. An error means nothing changes.
    pub fn handle(&self, cmd: &CartCommand, limits: CartLimits) -> Result<CartDecision, CartError> {
        let customer_id = self.customer_id;
        match cmd {
            &CartCommand::AddItem { product_id, variant_id, quantity, available } => {
                if available == 0 {
                    return Err(CartError::OutOfStock);
                }
                let existing = self.line_for(product_id, variant_id);
                let current = existing.map_or(0, |l| l.quantity);
                let wanted = u64::from(current) + u64::from(quantity.get());
                if wanted > available {
                    return Err(CartError::QuantityExceedsStock { available });
                }
                if wanted > u64::from(limits.max_line_quantity) {
                    return Err(CartError::LineQuantityTooLarge { max: limits.max_line_quantity });
                }
                if existing.is_none() && self.lines.len() >= limits.max_lines {
                    return Err(CartError::CartFull { max: limits.max_lines });
                }
                let line_id = existing.map_or_else(LineId::new, |l| l.line_id);
                Ok(CartDecision {
                    events: vec![DomainEvent::ItemAddedToCart {
                        customer_id,
                        line_id,
                        product_id,
                        variant_id,
                        quantity: quantity.get(),
                        line_quantity: wanted as u32,
                    }],
                    capped_at: None,
                })
            }
            &CartCommand::UpdateQuantity { line_id, quantity, available } => {
                let line = self.line(line_id).ok_or(CartError::ItemNotFound)?;
                if quantity > limits.max_line_quantity {
                    return Err(CartError::LineQuantityTooLarge { max: limits.max_line_quantity });
                }
                let capped = u64::from(quantity) > available;
                let new_quantity = if capped { available as u32 } else { quantity };
                let capped_at = capped.then_some(available);
                let events = if new_quantity == 0 {
                    vec![DomainEvent::ItemRemovedFromCart {
                        customer_id,
                        line_id,
                        product_id: line.product_id,
                        variant_id: line.variant_id,
                    }]
                } else if new_quantity == line.quantity {
                    Vec::new()
                } else {
                    vec![DomainEvent::CartQuantityUpdated {
                        customer_id,
                        line_id,
                        old_quantity: line.quantity,
                        new_quantity,
                        capped,
                    }]
                };
                Ok(CartDecision { events, capped_at })
            }
            &CartCommand::RemoveItem { line_id } => {
                // Removing a line that is not there succeeds silently (idempotent).
                let events = self
                    .line(line_id)
                    .map(|l| DomainEvent::ItemRemovedFromCart {
                        customer_id,
                        line_id,
                        product_id: l.product_id,
                        variant_id: l.variant_id,
                    })
                    .into_iter()
                    .collect();
                Ok(CartDecision { events, capped_at: None })
            }
            CartCommand::Clear { by, taken } => {
                let events = if self.last_cleared_by == Some(*by) {
                    Vec::new()
                } else {
                    vec![DomainEvent::CartCleared { customer_id, saga_id: *by, taken: taken.clone() }]
                };
                Ok(CartDecision { events, capped_at: None })
            }
        }
    }

    /// Applies an event this aggregate emitted; events of other aggregates are not ours.
    pub fn apply(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::ItemAddedToCart { line_id, product_id, variant_id, line_quantity, .. } => {
                match self.lines.iter_mut().find(|l| l.line_id == *line_id) {
                    Some(line) => line.quantity = *line_quantity,
                    None => self.lines.push(CartLine {
                        line_id: *line_id,
                        product_id: *product_id,
                        variant_id: *variant_id,
                        quantity: *line_quantity,
                    }),
                }
            }
            DomainEvent::CartQuantityUpdated { line_id, new_quantity, .. } => {
                if let Some(line) = self.lines.iter_mut().find(|l| l.line_id == *line_id) {
                    line.quantity = *new_quantity;
                }
            }
            DomainEvent::ItemRemovedFromCart { line_id, .. } => {
                self.lines.retain(|l| l.line_id != *line_id);
            }
            DomainEvent::CartCleared { saga_id, taken, .. } => {
                for t in taken {
                    if let Some(line) =
                        self.lines.iter_mut().find(|l| l.product_id == t.product_id && l.variant_id == t.variant_id)
                    {
                        line.quantity = line.quantity.saturating_sub(t.quantity);
                    }
                }
                self.lines.retain(|l| l.quantity > 0);
                self.last_cleared_by = Some(*saga_id);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: CartLimits = CartLimits { max_lines: 3, max_line_quantity: 50 };

    fn given(cmds: &[CartCommand]) -> Cart {
        let mut cart = Cart::new(CustomerId::new());
        for c in cmds {
            let d = cart.handle(c, LIMITS).expect("given command succeeds");
            d.events.iter().for_each(|e| cart.apply(e));
        }
        cart
    }

    fn add(p: ProductId, q: u32, available: u64) -> CartCommand {
        CartCommand::AddItem { product_id: p, variant_id: None, quantity: Quantity::new(q).unwrap(), available }
    }

    #[test]
    fn adding_same_product_adds_to_line() {
        let p = ProductId::new();
        let cart = given(&[add(p, 2, 10), add(p, 3, 10)]);
        assert_eq!(cart.lines.len(), 1);
        assert_eq!(cart.lines[0].quantity, 5);
    }

    #[test]
    fn out_of_stock_and_exceeding_stock_are_refused() {
        let p = ProductId::new();
        let cart = given(&[add(p, 2, 10)]);
        assert_eq!(cart.handle(&add(p, 1, 0), LIMITS), Err(CartError::OutOfStock));
        assert_eq!(cart.handle(&add(p, 9, 10), LIMITS), Err(CartError::QuantityExceedsStock { available: 10 }));
    }

    #[test]
    fn limits_bound_the_cart() {
        let cart = given(&[add(ProductId::new(), 1, 9), add(ProductId::new(), 1, 9), add(ProductId::new(), 1, 9)]);
        assert_eq!(cart.handle(&add(ProductId::new(), 1, 9), LIMITS), Err(CartError::CartFull { max: 3 }));
        let p = ProductId::new();
        assert_eq!(given(&[]).handle(&add(p, 51, 100), LIMITS), Err(CartError::LineQuantityTooLarge { max: 50 }));
    }

    #[test]
    fn update_caps_at_available_and_zero_removes() {
        let p = ProductId::new();
        let cart = given(&[add(p, 2, 10)]);
        let line_id = cart.lines[0].line_id;
        let d = cart.handle(&CartCommand::UpdateQuantity { line_id, quantity: 8, available: 5 }, LIMITS).unwrap();
        assert_eq!(d.capped_at, Some(5));
        let mut c2 = cart.clone();
        d.events.iter().for_each(|e| c2.apply(e));
        assert_eq!(c2.lines[0].quantity, 5);
        let d = cart.handle(&CartCommand::UpdateQuantity { line_id, quantity: 0, available: 5 }, LIMITS).unwrap();
        let mut c3 = cart.clone();
        d.events.iter().for_each(|e| c3.apply(e));
        assert!(c3.lines.is_empty());
    }

    fn taken(p: ProductId, quantity: u32) -> TakenLine {
        TakenLine { product_id: p, variant_id: None, quantity }
    }

    #[test]
    fn clear_happens_once_per_checkout() {
        let p = ProductId::new();
        let mut cart = given(&[add(p, 2, 10)]);
        let by = SagaId::new();
        let clear = CartCommand::Clear { by, taken: vec![taken(p, 2)] };
        let d = cart.handle(&clear, LIMITS).unwrap();
        d.events.iter().for_each(|e| cart.apply(e));
        assert!(cart.lines.is_empty());
        // The customer shops again; the same checkout's retried clear must not wipe it.
        let d = cart.handle(&add(p, 1, 10), LIMITS).unwrap();
        d.events.iter().for_each(|e| cart.apply(e));
        assert!(cart.handle(&clear, LIMITS).unwrap().events.is_empty());
        assert_eq!(cart.lines.len(), 1);
    }

    #[test]
    fn clear_takes_only_what_the_checkout_ordered() {
        let (p, q, r) = (ProductId::new(), ProductId::new(), ProductId::new());
        // The checkout loaded p x2 and r x1; meanwhile p went up to 5, q was added, r removed.
        let mut cart = given(&[add(p, 5, 10), add(q, 1, 10)]);
        let clear = CartCommand::Clear { by: SagaId::new(), taken: vec![taken(p, 2), taken(r, 1)] };
        let d = cart.handle(&clear, LIMITS).unwrap();
        d.events.iter().for_each(|e| cart.apply(e));
        let left: Vec<(ProductId, u32)> = cart.lines.iter().map(|l| (l.product_id, l.quantity)).collect();
        assert_eq!(left, vec![(p, 3), (q, 1)]);
        // A line lowered below what was taken goes entirely.
        let mut cart = given(&[add(p, 1, 10)]);
        let d = cart.handle(&CartCommand::Clear { by: SagaId::new(), taken: vec![taken(p, 2)] }, LIMITS).unwrap();
        d.events.iter().for_each(|e| cart.apply(e));
        assert!(cart.lines.is_empty());
    }

    #[test]
    fn update_unknown_line_is_item_not_found_and_remove_is_idempotent() {
        let cart = given(&[]);
        let missing = LineId::new();
        assert_eq!(
            cart.handle(&CartCommand::UpdateQuantity { line_id: missing, quantity: 1, available: 5 }, LIMITS),
            Err(CartError::ItemNotFound)
        );
        assert!(cart.handle(&CartCommand::RemoveItem { line_id: missing }, LIMITS).unwrap().events.is_empty());
    }

    proptest! {
        /// Whatever the sequence, no line ever exceeds the availability it was written with.
        #[test]
        fn lines_never_exceed_availability(ops in proptest::collection::vec((0usize..3, 0u32..20, 0u64..30, 0u8..3), 1..60)) {
            let products = [ProductId::new(), ProductId::new(), ProductId::new()];
            let mut cart = Cart::new(CustomerId::new());
            for (pi, q, available, kind) in ops {
                let cmd = match (kind, cart.lines.get(pi)) {
                    (1, Some(l)) => CartCommand::UpdateQuantity { line_id: l.line_id, quantity: q, available },
                    (2, Some(l)) => CartCommand::RemoveItem { line_id: l.line_id },
                    _ => match Quantity::new(q) {
                        Some(q) => CartCommand::AddItem { product_id: products[pi], variant_id: None, quantity: q, available },
                        None => continue,
                    },
                };
                let before = cart.clone();
                match cart.handle(&cmd, LIMITS) {
                    Ok(d) => {
                        d.events.iter().for_each(|e| cart.apply(e));
                        for l in &cart.lines {
                            let touched = before.line(l.line_id) != Some(l);
                            prop_assert!(!touched || u64::from(l.quantity) <= available);
                            prop_assert!(l.quantity >= 1 && l.quantity <= LIMITS.max_line_quantity);
                        }
                    }
                    Err(_) => prop_assert_eq!(&cart, &before),
                }
                prop_assert!(cart.lines.len() <= LIMITS.max_lines);
            }
        }
    }
}
