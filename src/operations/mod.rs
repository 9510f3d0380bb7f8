//! What starts or drives sagas, above the saga engine: payment and carrier webhooks,
//! quarantine (releasing a key resumes the sagas parked on it), operators' bulk resumes and
//! aborts, unpaid-order expiry, and the retention sweep (which must not delete a saga's
//! records while it runs). The entity services below (`services`) never call these; the
//! saga engine's steps call those services.

pub mod bulk;
pub mod expiry;
pub mod quarantine;
pub mod retention;
pub mod saga_audit;
pub mod share;
pub mod webhooks;

/// What this layer refuses; defined with the one status and code mapping.
mod error;
pub use error::OperationError;
