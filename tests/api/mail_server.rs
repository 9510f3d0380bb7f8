//! An SMTP server inside the test process, on a real socket, that keeps what it receives.
//!
//! The protocol (greeting, EHLO/HELO, MAIL FROM, RCPT TO, DATA with dot-unstuffing, QUIT,
//! and the replies to everything else) is the `mailin` crate's state machine; this module
//! only moves lines between it and the socket, one thread per connection. It offers neither
//! STARTTLS nor AUTH, like a plain relay on a private network.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mailin::{response, Action, Handler, Response, SessionBuilder};

/// One message as delivered: the envelope and the raw text (headers and body).
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub text: String,
}

/// Everything the server saw, for assertions about what a client did or did not do.
#[derive(Debug, Default)]
pub struct Inbox {
    pub connections: usize,
    /// EHLO/HELO commands accepted: the client spoke SMTP in the clear.
    pub greetings: usize,
    /// MAIL FROM commands accepted: the client started to send a message.
    pub transactions: usize,
    pub mails: Vec<Mail>,
}

pub struct SmtpServer {
    pub port: u16,
    inbox: Arc<Mutex<Inbox>>,
    stopping: Arc<AtomicBool>,
}

impl SmtpServer {
    /// Listening on 127.0.0.1 (a free port) before it returns: no wait for it to come up.
    pub fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (accepted_inbox, accepted_stopping) = (inbox.clone(), stopping.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepted_stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let inbox = accepted_inbox.clone();
                std::thread::spawn(move || {
                    // A broken connection is the client's business: the inbox shows the rest.
                    let _ = converse(stream, inbox);
                });
            }
        });
        SmtpServer { port, inbox, stopping }
    }

    pub fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap()
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.inbox().mails.clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        // The accept loop blocks: flag it, then wake it with one last connection.
        self.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One SMTP session: the greeting, then each line the client sends goes through `mailin`,
/// whose response says whether to reply, stay silent (DATA lines) or hang up (QUIT).
fn converse(stream: TcpStream, inbox: Arc<Mutex<Inbox>>) -> std::io::Result<()> {
    // A client that goes quiet must not keep the thread forever.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let peer = stream.peer_addr().map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    inbox.lock().unwrap().connections += 1;
    let mut session = SessionBuilder::new("cartwright-test-smtp").build(peer, Recorder::new(inbox));
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    session.greeting().write_to(&mut writer)?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let reply = session.process(&line);
        match reply.action {
            Action::NoReply => {}
            Action::Reply => reply.write_to(&mut writer)?,
            // QUIT, or an error after which the session is over. (STARTTLS is never offered,
            // so an upgrade cannot be asked for; hang up if it ever were.)
            Action::Close | Action::UpgradeTls => {
                reply.write_to(&mut writer)?;
                return writer.flush();
            }
        }
    }
}

/// Accepts everything and files it in the inbox.
struct Recorder {
    inbox: Arc<Mutex<Inbox>>,
    current: Option<Mail>,
    text: Vec<u8>,
}

impl Recorder {
    fn new(inbox: Arc<Mutex<Inbox>>) -> Recorder {
        Recorder { inbox, current: None, text: Vec::new() }
    }
}

impl Handler for Recorder {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        self.inbox.lock().unwrap().greetings += 1;
        response::OK
    }

    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        self.inbox.lock().unwrap().transactions += 1;
        response::OK
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.current = Some(Mail { from: from.to_string(), to: to.to_vec(), text: String::new() });
        self.text.clear();
        response::OK
    }

    /// One line of the message, already dot-unstuffed, with its line ending.
    fn data(&mut self, line: &[u8]) -> std::io::Result<()> {
        self.text.extend_from_slice(line);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(mut mail) = self.current.take() {
            mail.text = String::from_utf8_lossy(&self.text).into_owned();
            self.inbox.lock().unwrap().mails.push(mail);
        }
        response::OK
    }
}
