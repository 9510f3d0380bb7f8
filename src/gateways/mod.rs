//! The outside world: email transports ([`email`]) and payment gateways ([`payment`]).

pub mod email;
pub mod payment;
