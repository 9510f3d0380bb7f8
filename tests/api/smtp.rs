//! `notifications.transport = "smtp"`: real mail over a real socket to the in-process SMTP
//! server of `mail_server.rs`, whose inbox says what arrived (envelope and text) and what the
//! client did on the wire.

use cartwright::config::{Settings, SmtpTls};

use crate::helpers::*;
use crate::mail_server::{Mail, SmtpServer};

fn smtp_to(port: u16, tls: SmtpTls) -> impl FnOnce(&mut Settings) {
    move |s| {
        s.notifications.transport = "smtp".into();
        s.notifications.smtp.host = "127.0.0.1".into();
        s.notifications.smtp.port = port;
        s.notifications.smtp.tls = tls;
        s.notifications.smtp.timeout_ms = 2000;
    }
}

/// The message's headers with folded lines joined, and its body with quoted-printable soft
/// line breaks joined (lettre may encode the plain-text body that way), lines ending in `\n`.
fn headers_and_body(mail: &Mail) -> (String, String) {
    let text = mail.text.replace("\r\n", "\n");
    let (headers, body) = text.split_once("\n\n").expect("a blank line between headers and body");
    let quoted_printable = headers.contains("Content-Transfer-Encoding: quoted-printable");
    let body = if quoted_printable { body.replace("=\n", "") } else { body.to_string() };
    (headers.replace("\n ", " ").replace("\n\t", " "), body)
}

#[tokio::test]
async fn shipping_emails_are_sent_over_smtp_with_the_tracking_number() {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(smtp_to(smtp.port, SmtpTls::None)).await;
    let (c, _, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap();
    app.capture("cap-smtp", order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap())
        .await;
    assert_eq!(app.ship(FULFILLMENT, id, "1ZSMTP42").await.0, 200);
    app.eventually("shipping email delivered to the SMTP server", || async {
        smtp.mails().iter().any(|m| m.text.contains("1ZSMTP42"))
    })
    .await;
    let shipped = smtp.mails().into_iter().find(|m| m.text.contains("1ZSMTP42")).unwrap();
    // The envelope: what the server delivers by, whatever the headers say.
    assert_eq!(shipped.from, "no-reply@cartwright.local", "{shipped:?}");
    assert_eq!(shipped.to, vec![c.email.clone()], "{shipped:?}");
    let (headers, body) = headers_and_body(&shipped);
    assert!(headers.contains(&format!("To: {}", c.email)), "{headers}");
    assert!(headers.contains(&format!("Subject: Your order {id} has shipped: tracking number 1ZSMTP42")), "{headers}");
    assert!(headers.contains("From: Cartwright <no-reply@cartwright.local>"), "{headers}");
    assert!(body.lines().any(|l| l == "tracking number: 1ZSMTP42"), "{body}");
    assert!(body.lines().any(|l| l == format!("order id: {id}")), "{body}");
    assert!(body.starts_with(&format!("Your order {id} has shipped: tracking number 1ZSMTP42\n")), "{body}");
    // The verification email went the same way, to the same customer.
    let verification = smtp.mails().into_iter().find(|m| m.text.contains("Subject: Verify your email address"));
    assert_eq!(verification.map(|m| m.to), Some(vec![c.email.clone()]));
    // The server files the message before its 250 reaches the client, which only then
    // records the notification as sent.
    app.eventually("the shipping notification is SENT", || async {
        app.notifications("order_shipped").await.iter().any(|n| n["status"] == "SENT")
    })
    .await;
    assert_eq!(app.notifications("order_shipped").await.len(), 1);
    assert_eq!(smtp.mails().iter().filter(|m| m.text.contains("1ZSMTP42")).count(), 1, "sent once");
}

#[tokio::test]
async fn an_smtp_server_that_is_down_exercises_the_retries_then_failed() {
    // A port nothing listens on: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(smtp_to(port, SmtpTls::None)).await;
    let (status, _) = app.register("nobody-home@example.com").await;
    assert_eq!(status, 201, "the account exists whatever the mail server does");
    app.eventually("verification email FAILED after 3 retries", || async {
        app.notifications("email_verification").await.iter().any(|n| n["status"] == "FAILED")
    })
    .await;
    let n = &app.notifications("email_verification").await[0];
    assert_eq!(n["attempts"], 4);
    assert!(n["last_error"].as_str().unwrap().contains("smtp"), "{n}");
}

/// Registers a customer against `smtp` with `tls` and waits for the email to end FAILED.
async fn verification_email_fails(smtp: &SmtpServer, tls: SmtpTls) -> serde_json::Value {
    let app = spawn_app_with(smtp_to(smtp.port, tls)).await;
    assert_eq!(app.register("tls-only@example.com").await.0, 201);
    app.eventually("verification email FAILED", || async {
        app.notifications("email_verification").await.iter().any(|n| n["status"] == "FAILED")
    })
    .await;
    app.notifications("email_verification").await[0].clone()
}

#[tokio::test]
async fn starttls_mode_never_sends_mail_in_the_clear_to_a_server_without_starttls() {
    let smtp = SmtpServer::start();
    let n = verification_email_fails(&smtp, SmtpTls::Starttls).await;
    assert_eq!(n["attempts"], 4, "{n}");
    let inbox = smtp.inbox();
    // Each attempt reached the server and said EHLO, saw no STARTTLS, and stopped there.
    assert!(inbox.greetings >= 4, "{inbox:?}");
    assert_eq!((inbox.transactions, inbox.mails.len()), (0, 0), "{inbox:?}");
}

#[tokio::test]
async fn implicit_tls_mode_never_speaks_plain_smtp() {
    let smtp = SmtpServer::start();
    let n = verification_email_fails(&smtp, SmtpTls::Tls).await;
    assert_eq!(n["attempts"], 4, "{n}");
    let inbox = smtp.inbox();
    // Each attempt connected and opened with a TLS handshake, never with an SMTP command.
    assert!(inbox.connections >= 4, "{inbox:?}");
    assert_eq!((inbox.greetings, inbox.transactions, inbox.mails.len()), (0, 0, 0), "{inbox:?}");
}
