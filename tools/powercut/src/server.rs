//! The cartwright server as a child process, found the way the integration tests find it:
//! bound to port 0, its address read from its "listening on" log line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::http::ADMIN;

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

pub struct ServerConfig {
    pub binary: PathBuf,
    /// `CARTWRIGHT__STORAGE__DURABILITY=relaxed`: replies before the fsync (self-check).
    pub relaxed: bool,
}

impl Server {
    /// Starts the server on `data` and waits until it listens; its output goes to `log`.
    /// An error means it never got there (for instance sled refused to open the store).
    pub fn start(config: &ServerConfig, data: &Path, log: &Path) -> io::Result<Server> {
        let log_file = File::create(log)?;
        let mut command = Command::new(&config.binary);
        if config.relaxed {
            command.env("CARTWRIGHT__STORAGE__DURABILITY", "relaxed");
        }
        let mut child = command
            .env("CARTWRIGHT__SERVER__ADDR", "127.0.0.1:0")
            .env("CARTWRIGHT__STORAGE__PATH", data)
            .env("CARTWRIGHT__AUTH__ADMIN_TOKEN", ADMIN)
            .env("CARTWRIGHT__AUTH__FULFILLMENT_TOKEN", "powercut-fulfillment-token")
            .env("CARTWRIGHT__AUTH__ARGON2_MEMORY_KIB", "1024")
            .env("CARTWRIGHT__AUTH__ARGON2_ITERATIONS", "1")
            // Every client logs in from 127.0.0.1: the per-address login limit would refuse most.
            .env("CARTWRIGHT__AUTH__LOGIN_PER_IP_PER_MINUTE", "0")
            .env("CARTWRIGHT__ACTORS__ARBITERS", "2")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file.try_clone()?)
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (found, address) = mpsc::channel();
        // Copies every line to the log (so the pipe never fills) and reports the address.
        std::thread::spawn(move || {
            let mut log_file = log_file;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = writeln!(log_file, "{line}");
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        match address.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => {
                let addr = addr.parse().map_err(|e| io::Error::other(format!("address {addr:?}: {e}")))?;
                Ok(Server { child, addr })
            }
            Err(_) => {
                let _ = child.kill();
                let status = child.wait()?;
                Err(io::Error::other(format!("server did not start ({status}): {}", why(log))))
            }
        }
    }

    /// SIGKILL, and wait until the process is gone: once it is reaped, every file system
    /// request it made has been answered or dropped by the kernel.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a clean stop after verification), SIGKILL if it hangs.
    pub fn stop(mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
    }
}

/// Why a server stopped, from its log: the panic message or error lines, else its last lines.
fn why(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut picked: Vec<&str> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("panicked at") {
            picked.extend(lines.get(i..i + 2).unwrap_or_default());
        } else if line.contains(" ERROR ") {
            picked.push(line);
        }
    }
    if picked.is_empty() {
        picked = lines[lines.len().saturating_sub(5)..].to_vec();
    }
    picked.join(" | ")
}
