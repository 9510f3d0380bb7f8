//! Email transports. `log` records the message in the log (the outbox row is the record);
//! [`FaultInjecting`] wraps any transport to fail the first attempts, for drills and tests.

use std::future::Future;
use std::pin::Pin;

use crate::store::Notification;

pub type SendResult<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

pub trait EmailTransport: Send + Sync {
    fn send<'a>(&'a self, n: &'a Notification) -> SendResult<'a>;
}

pub struct LogTransport {
    pub from: String,
}

impl EmailTransport for LogTransport {
    fn send<'a>(&'a self, n: &'a Notification) -> SendResult<'a> {
        Box::pin(async move {
            tracing::info!(
                notification_id = %n.notification_id,
                kind = %n.kind,
                from = %self.from,
                to = %n.to,
                subject = %n.subject,
                payload = %n.payload,
                "email sent (log transport)"
            );
            Ok(())
        })
    }
}

/// Fails every notification's first `fail_first_attempts` attempts, then delegates.
pub struct FaultInjecting<T> {
    pub inner: T,
    pub fail_first_attempts: u32,
}

impl<T: EmailTransport> EmailTransport for FaultInjecting<T> {
    fn send<'a>(&'a self, n: &'a Notification) -> SendResult<'a> {
        if n.attempts < self.fail_first_attempts {
            let attempt = n.attempts + 1;
            return Box::pin(async move { Err(format!("injected failure (attempt {attempt})")) });
        }
        self.inner.send(n)
    }
}
