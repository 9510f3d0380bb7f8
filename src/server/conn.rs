//! One connection's phase, and the deadline that goes with it. A connection is *idle* (no
//! request started: fresh, or between keep-alive requests), reading a request *head*, or
//! *busy* (head parsed: the handler owns it, and bounds its own body read).
//!
//! The deadlines live in the socket wrapper [`Guarded`]: hyper polls the socket whenever it
//! waits for a request, so a read that would block arms one per-connection timer for the
//! current phase, and a read past the deadline fails, which makes hyper close the
//! connection. No task, channel or allocation per request: the service marks *busy* with one
//! atomic store, and dropping the response body (hyper does when it has sent it) marks *idle*.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle = 0,
    Head = 1,
    Busy = 2,
}

/// How long each phase may last.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub keep_alive_idle: Duration,
}

/// The phase and when it began, shared by the socket wrapper, the service and the accept
/// loop (which closes the idlest connection when at the cap).
#[derive(Debug)]
pub struct ConnState {
    epoch: Instant,
    /// Milliseconds since `epoch` when the phase began, shifted left 2, or'ed with the phase.
    packed: AtomicU64,
}

impl ConnState {
    pub fn new(epoch: Instant) -> ConnState {
        let state = ConnState { epoch, packed: AtomicU64::new(0) };
        state.set(Phase::Idle);
        state
    }

    pub fn phase(&self) -> (Phase, Instant) {
        let packed = self.packed.load(Ordering::Acquire);
        let phase = match packed & 3 {
            0 => Phase::Idle,
            1 => Phase::Head,
            _ => Phase::Busy,
        };
        (phase, self.epoch + Duration::from_millis(packed >> 2))
    }

    fn set(&self, phase: Phase) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.packed.store(ms << 2 | phase as u64, Ordering::Release);
    }

    /// Idle to head, unless the service already took the request (hyper parses buffered
    /// bytes without reading again).
    fn started_head(&self) {
        let current = self.packed.load(Ordering::Acquire);
        if current & 3 == Phase::Idle as u64 {
            let ms = self.epoch.elapsed().as_millis() as u64;
            let _ = self.packed.compare_exchange(
                current,
                ms << 2 | Phase::Head as u64,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }
}

/// The socket, failing a read that would block past the current phase's deadline.
pub struct Guarded {
    io: TcpStream,
    state: Arc<ConnState>,
    limits: Limits,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Guarded {
    pub fn new(io: TcpStream, state: Arc<ConnState>, limits: Limits) -> Guarded {
        let timer = Box::pin(tokio::time::sleep(limits.keep_alive_idle));
        Guarded { io, state, limits, timer, armed: None }
    }

    /// Pending, or the error that closes the connection once the phase's deadline passed.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let (phase, since) = self.state.phase();
            let deadline = match phase {
                Phase::Idle => since + self.limits.keep_alive_idle,
                Phase::Head => since + self.limits.header_read,
                // No deadline while the handler owns the request, but the timer looks again
                // within a keep-alive period: hyper may not read again when it goes idle.
                Phase::Busy => match self.armed {
                    Some(at) if at > since => at,
                    _ => Instant::now() + self.limits.keep_alive_idle,
                },
            };
            if self.armed != Some(deadline) {
                self.timer.as_mut().reset(deadline.into());
                self.armed = Some(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let what = match phase {
                Phase::Idle => "no request on an idle connection",
                Phase::Head => "request head incomplete",
                Phase::Busy => {
                    self.armed = None;
                    continue;
                }
            };
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("{what} in time"))));
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.started_head();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.wait(cx),
            ready => ready,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The TCP peer of a request's connection, in its extensions (`warp::ext::optional`): the
/// client, or the reverse proxy in front of the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The API as hyper's service, marking the connection busy for the life of each request.
pub struct Tracking<S> {
    pub inner: S,
    pub state: Arc<ConnState>,
    pub peer: ClientAddr,
}

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracking<S>
where
    S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<Tracked<B>>;
    type Error = S::Error;
    type Future = Responding<S::Future>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        self.state.set(Phase::Busy);
        req.extensions_mut().insert(self.peer);
        // hyper serves through `&self`, tower through `&mut self`: warp's service is a cheap
        // clone of the filter (what hyper-util's adapter does, too).
        Responding { inner: self.inner.clone().call(req), state: Some(self.state.clone()) }
    }
}

pin_project_lite::pin_project! {
    /// The handler's future; its response body carries the connection back to idle.
    pub struct Responding<F> {
        #[pin]
        inner: F,
        state: Option<Arc<ConnState>>,
    }
}

impl<F, B, E> Future for Responding<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Tracked<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let state = this.state.take().expect("polled after completion");
        Poll::Ready(result.map(|response| response.map(|inner| Tracked { inner, state })))
    }
}

/// A response body; when hyper drops it (sent, or the connection is gone) the connection is
/// idle again.
pub struct Tracked<B> {
    inner: B,
    state: Arc<ConnState>,
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.state.set(Phase::Idle);
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_start_a_head_only_on_an_idle_connection() {
        let state = ConnState::new(Instant::now());
        assert_eq!(state.phase().0, Phase::Idle);
        state.started_head();
        assert_eq!(state.phase().0, Phase::Head);
        state.set(Phase::Busy);
        // More bytes of the body (or of a pipelined request) do not shorten the handler's time.
        state.started_head();
        assert_eq!(state.phase().0, Phase::Busy);
        state.set(Phase::Idle);
        assert_eq!(state.phase().0, Phase::Idle);
    }
}
