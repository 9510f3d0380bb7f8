//! The outside world: email transports (and, later, payment gateways).

pub mod email;
pub mod payment;
