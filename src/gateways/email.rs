//! Email transports. `log` records the message in the log (the outbox row is the record);
//! `smtp` ([`SmtpTransport`]) sends real mail; [`FaultInjecting`] wraps any transport to fail
//! the first attempts, for drills and tests.

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
            // Never the payload: it carries secrets (a verification token is a credential).
            // The outbox row, readable by the admin, is the record of what was sent.
            tracing::info!(
                notification_id = %n.notification_id,
                kind = %n.kind,
                to = %n.to,
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

/// Real mail over SMTP (lettre), plain, STARTTLS or implicit TLS, with optional credentials.
pub struct SmtpTransport {
    mailer: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpTransport {
    pub fn new(settings: &crate::config::NotificationSettings) -> Result<SmtpTransport, String> {
        use crate::config::SmtpTls;
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, Tokio1Executor};
        let smtp = &settings.smtp;
        let builder = match smtp.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(|e| format!("smtp: {e}"))?
            }
            SmtpTls::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(|e| format!("smtp: {e}"))?
            }
        };
        let mut builder = builder.port(smtp.port).timeout(Some(std::time::Duration::from_millis(smtp.timeout_ms)));
        if !smtp.username.is_empty() {
            builder = builder.credentials(Credentials::new(smtp.username.clone(), smtp.password.clone()));
        }
        let from = settings.from.parse().map_err(|e| format!("notifications.from: {e}"))?;
        Ok(SmtpTransport { mailer: builder.build(), from })
    }
}

/// The email text: the subject, then the payload's fields one per line.
pub fn body_text(n: &Notification) -> String {
    let mut text = format!("{}\n\n", n.subject);
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(&n.payload) {
        for (k, v) in fields {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            text.push_str(&format!("{}: {v}\n", k.replace('_', " ")));
        }
    }
    text
}

impl EmailTransport for SmtpTransport {
    fn send<'a>(&'a self, n: &'a Notification) -> SendResult<'a> {
        use lettre::AsyncTransport;
        Box::pin(async move {
            let to = n.to.parse().map_err(|e| format!("recipient {}: {e}", n.to))?;
            let message = lettre::Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(n.subject.clone())
                .header(lettre::message::header::ContentType::TEXT_PLAIN)
                .body(body_text(n))
                .map_err(|e| format!("message: {e}"))?;
            self.mailer.send(message).await.map(drop).map_err(|e| format!("smtp: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// TLS through rustls needs a crypto provider and a root store chosen by lettre's Cargo
    /// features; without them building a STARTTLS or TLS transport panics or fails here.
    #[test]
    fn every_tls_mode_builds_an_smtp_transport() {
        use crate::config::SmtpTls;
        let mut settings = crate::config::Settings::load_layers(None, false).unwrap().notifications;
        settings.smtp.host = "smtp.example.com".into();
        for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
            settings.smtp.tls = tls;
            assert_eq!(SmtpTransport::new(&settings).err(), None, "{tls:?}");
        }
    }

    #[test]
    fn the_log_transport_logs_who_and_which_but_never_the_payload() {
        let n = Notification::queued(
            "email_verification",
            "ada@example.com",
            "Verify your email address".into(),
            serde_json::json!({ "verification_token": "cwv_secret_token_value" }),
        );
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
        let transport = LogTransport { from: "shop@example.com".into() };
        tracing::subscriber::with_default(subscriber, || futures::executor::block_on(transport.send(&n))).unwrap();
        let logged = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains(&n.notification_id.to_string()) && logged.contains("ada@example.com"), "{logged}");
        assert!(!logged.contains("cwv_secret_token_value"), "{logged}");
    }
}
