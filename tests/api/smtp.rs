//! `notifications.transport = "smtp"` against a real SMTP server process: Python's aiosmtpd
//! (`pip install aiosmtpd`; `.ci/run` installs it), delivering into a Maildir we read back.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::*;

struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let maildir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            // A path that does not exist yet: the Maildir handler creates it with tmp/new/cur.
            .arg(maildir.path().join("box"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 with aiosmtpd (pip install aiosmtpd; .ci/run installs it)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return SmtpServer { child, port, maildir };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("aiosmtpd did not start on port {port} (is it installed? pip install aiosmtpd)");
    }

    /// Every message delivered so far, as raw text.
    fn messages(&self) -> Vec<String> {
        let new = self.maildir.path().join("box").join("new");
        std::fs::read_dir(new)
            .map(|d| d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect())
            .unwrap_or_default()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_to(port: u16) -> impl FnOnce(&mut cartwright::config::Settings) {
    move |s| {
        s.notifications.transport = "smtp".into();
        s.notifications.smtp.port = port;
        s.notifications.smtp.timeout_ms = 2000;
    }
}

#[tokio::test]
async fn shipping_emails_are_sent_over_smtp_with_the_tracking_number() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(smtp_to(smtp.port)).await;
    let (c, _, order) = app.pending_order(1).await;
    let id = order["order_id"].as_str().unwrap();
    app.capture("cap-smtp", order["payment"]["authorization_id"].as_str().unwrap(), order["total"].as_str().unwrap())
        .await;
    assert_eq!(app.ship(FULFILLMENT, id, "1ZSMTP42").await.0, 200);
    app.eventually("shipping email delivered to the SMTP server", || async {
        smtp.messages().iter().any(|m| m.contains("1ZSMTP42"))
    })
    .await;
    // Long headers are folded onto continuation lines: unfold before reading them.
    let shipped =
        smtp.messages().into_iter().find(|m| m.contains("1ZSMTP42")).unwrap().replace("\r\n ", " ").replace("\n ", " ");
    assert!(shipped.contains(&format!("To: {}", c.email)), "{shipped}");
    assert!(shipped.contains(&format!("Subject: Your order {id} has shipped: tracking number 1ZSMTP42")), "{shipped}");
    assert!(shipped.contains("From: Cartwright <no-reply@cartwright.local>"), "{shipped}");
    // The verification email went the same way, to the same customer.
    assert!(smtp.messages().iter().any(|m| m.contains("Subject: Verify your email address") && m.contains(&c.email)));
    let sent = app.notifications("order_shipped").await;
    assert_eq!((sent.len(), sent[0]["status"].as_str()), (1, Some("SENT")));
}

#[tokio::test]
async fn an_smtp_server_that_is_down_exercises_the_retries_then_failed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = spawn_app_with(smtp_to(port)).await;
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
