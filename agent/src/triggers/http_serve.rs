//! The HTTP API's listener: [`serve`] accepts connections and serves the
//! router on each (HTTP/1.1, hyper), with walls against slow, idle and too
//! many clients. Plain `axum::serve` has none: a client sending one header
//! byte a second kept its connection, and a file descriptor, for ever, and
//! 1,100 of them stopped the agent answering its webhook.
//!
//! ```no_run
//! # async fn demo(router: axum::Router, metrics: warden::telemetry::Metrics) -> std::io::Result<()> {
//! use std::time::Duration;
//! use warden::triggers::http_serve::{Limits, serve};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9470").await?;
//! let limits = Limits {
//!     header_timeout: Duration::from_secs(10),
//!     request_timeout: Duration::from_secs(30),
//!     idle_timeout: Duration::from_secs(60),
//!     max_connections: 512,
//! };
//! let (_stop, stop_rx) = tokio::sync::watch::channel(false);
//! serve(listener, router, limits, metrics, stop_rx).await; // until `_stop` sends true
//! # Ok(()) }
//! ```
//!
//! Every connection is in one phase, and the phase sets its deadline:
//!
//! | phase   | what the server waits for        | counted from                    | at the deadline                  |
//! |---------|----------------------------------|---------------------------------|----------------------------------|
//! | new     | the first byte                   | accept                          | closed (`header_timeout`)        |
//! | head    | the rest of the request head     | accept, or the first byte of a later request | closed (`header_timeout`) |
//! | request | the body, the handler, the answer being taken | the end of the head | 408 and closed (`request_timeout`); an answer the client has not taken [`ANSWER_GRACE`] later is cut off |
//! | idle    | the next request (keep-alive)    | the end of the answer           | closed (`idle_timeout`)          |
//!
//! At most `max_connections` are open. At the cap a new connection takes
//! the place of the one that has kept the server waiting longest for a
//! request (new, reading a head or idle, and nothing left to read on its
//! socket): such clients cost nothing to keep waiting, and none of them has
//! handed the agent a request yet. If every connection carries a request
//! (or has one unread), the new one is refused: its request head is read,
//! answered `503` with a one-line reason, and the connection closed once
//! the client has read it (all within [`REFUSAL_LINGER`], so that the
//! client sees an answer to its request rather than a reset; at most
//! [`MAX_REFUSING`] at a time, beyond that the answer is written and the
//! connection closed at once).
//!
//! An accept that fails for want of files (EMFILE, ENFILE) closes the
//! connection that has waited longest without a request, if there is one,
//! and tries again; any other failure, or nothing to close, waits
//! [`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`]. The listener stops only on
//! shutdown: then it stops accepting, closes the connections without a
//! request, and waits for the requests in progress (each bounded by its
//! deadline).
//!
//! Every refusal and close is counted in
//! `warden_http_connections_closed_total{reason}`, open connections in
//! `warden_http_connections`, failed accepts in
//! `warden_http_accept_errors_total`.

use crate::config::HttpConfig;
use crate::telemetry::Metrics;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Time an answer has to be taken by the client once the request deadline
/// has passed (the 408 itself, or an answer still being written).
pub const ANSWER_GRACE: Duration = Duration::from_secs(1);
/// Most refused connections being answered at once; each holds a socket
/// for at most [`REFUSAL_LINGER`].
pub const MAX_REFUSING: usize = 64;
/// Longest a refused connection is kept: to read the client's request,
/// answer 503 and read what else it sends before closing.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// First wait after a failed accept.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait after failed accepts in a row.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Largest request head (request line and headers); larger ones are
/// answered 431 by hyper.
pub const MAX_HEAD: usize = 64 * 1024;
/// Files the agent needs besides its HTTP connections (state database,
/// plugins, logs, watches), for the open-file limit check.
const FILE_RESERVE: usize = 128;
/// Longest wait for a connection closed to make room.
const EVICTION_WAIT: Duration = Duration::from_secs(1);
/// Most times the accept loop lets connections accepted just now be read
/// before deciding that none can make room.
const MAX_EVICTION_YIELDS: usize = 64;
/// Least time between two log lines about refusals, or about connections
/// closed for want of files.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// Longest timeout kept; longer ones are cut to it (so deadlines cannot overflow).
const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The listener's walls (`[http]` in `warden.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl From<&HttpConfig> for Limits {
    fn from(c: &HttpConfig) -> Limits {
        Limits {
            header_timeout: c.header_timeout,
            request_timeout: c.request_timeout,
            idle_timeout: c.idle_timeout,
            max_connections: c.max_connections,
        }
    }
}

impl Limits {
    /// The same limits with every timeout at most [`MAX_TIMEOUT`] and at
    /// least one connection, so that deadlines cannot overflow.
    fn clamped(self) -> Limits {
        Limits {
            header_timeout: self.header_timeout.min(MAX_TIMEOUT),
            request_timeout: self.request_timeout.min(MAX_TIMEOUT),
            idle_timeout: self.idle_timeout.min(MAX_TIMEOUT),
            max_connections: self.max_connections.clamp(1, u32::MAX as usize),
        }
    }
}

/// `t + d`, or `t` in the (clamped, impossible) case of an overflow.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or(t)
}

/// Where a connection is; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted at `since`; no byte yet.
    New { since: Instant },
    /// Reading a request head, since `since`.
    Head { since: Instant },
    /// Request number `seq` (of this connection) has its head; answered
    /// 408 at `deadline`.
    Request { seq: u64, deadline: Instant },
    /// Kept alive after an answer, since `since`.
    Idle { since: Instant },
}

impl Phase {
    /// When a connection still in this phase is closed, and the reason
    /// counted.
    fn deadline(self, limits: &Limits) -> (Instant, &'static str) {
        match self {
            Phase::New { since } | Phase::Head { since } => {
                (later(since, limits.header_timeout), "header_timeout")
            }
            Phase::Request { deadline, .. } => (later(deadline, ANSWER_GRACE), "answer_timeout"),
            Phase::Idle { since } => (later(since, limits.idle_timeout), "idle_timeout"),
        }
    }

    /// Since when the connection has waited without handing over a
    /// request; `None` while it carries one.
    fn waiting_since(self) -> Option<Instant> {
        match self {
            Phase::New { since } | Phase::Head { since } | Phase::Idle { since } => Some(since),
            Phase::Request { .. } => None,
        }
    }
}

struct ConnState {
    phase: Phase,
    /// Requests seen so far.
    requests: u64,
    /// The server has tried to read from the socket.
    polled: bool,
    /// The last read found nothing: the client keeps the server waiting.
    starved: bool,
    /// Closed to make room: the connection task closes it.
    evicted: bool,
}

/// One connection, shared by its task, its service, its socket wrapper and
/// the registry.
struct Conn {
    id: u64,
    state: Mutex<ConnState>,
    /// Wakes the connection task when the phase changes or it is evicted.
    changed: tokio::sync::Notify,
    /// `true` once the socket is closed and the slot given back.
    done: watch::Sender<bool>,
}

impl Conn {
    fn new(id: u64, now: Instant) -> Conn {
        Conn {
            id,
            state: Mutex::new(ConnState {
                phase: Phase::New { since: now },
                requests: 0,
                polled: false,
                starved: false,
                evicted: false,
            }),
            changed: tokio::sync::Notify::new(),
            done: watch::channel(false).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read found nothing to read.
    fn read_pending(&self) {
        let mut s = self.lock();
        s.polled = true;
        s.starved = true;
    }

    /// Bytes came in: a new or idle connection is now reading a head.
    fn bytes_read(&self) {
        let mut s = self.lock();
        s.polled = true;
        s.starved = false;
        s.phase = match s.phase {
            // The head's time counts from accept, not from the first byte.
            Phase::New { since } => Phase::Head { since },
            Phase::Idle { .. } => Phase::Head {
                since: Instant::now(),
            },
            Phase::Head { .. } | Phase::Request { .. } => return,
        };
        drop(s);
        self.changed.notify_one();
    }

    /// A request head is complete; returns its number.
    fn request(&self, deadline: Instant) -> u64 {
        let mut s = self.lock();
        s.requests += 1;
        let seq = s.requests;
        s.phase = Phase::Request { seq, deadline };
        drop(s);
        self.changed.notify_one();
        seq
    }

    /// The answer to request `seq` was taken: idle until the next one.
    fn answered(&self, seq: u64) {
        let mut s = self.lock();
        if !matches!(s.phase, Phase::Request { seq: current, .. } if current == seq) {
            return;
        }
        s.phase = Phase::Idle {
            since: Instant::now(),
        };
        // Waiting for the next request begins with a read.
        s.starved = false;
        drop(s);
        self.changed.notify_one();
    }

    /// Marks the connection to be closed to make room, unless it carries a
    /// request, has not kept the server waiting (a request may be unread in
    /// its socket), or is marked already.
    fn evict(&self) -> bool {
        let mut s = self.lock();
        if s.evicted || !s.starved || s.phase.waiting_since().is_none() {
            return false;
        }
        s.evicted = true;
        drop(s);
        self.changed.notify_one();
        true
    }

    fn snapshot(&self) -> (Phase, bool) {
        let s = self.lock();
        (s.phase, s.evicted)
    }

    /// True while the server has not read from the connection yet.
    fn unpolled(&self) -> bool {
        !self.lock().polled
    }

    /// Waits until the connection's socket is closed, at most `within`.
    async fn closed(&self, within: Duration) {
        let mut done = self.done.subscribe();
        let _ = tokio::time::timeout(within, done.wait_for(|d| *d)).await;
    }
}

/// The open connections, for eviction.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection; sets the open-connections gauge.
    fn add(&self, metrics: &Metrics) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, Instant::now()));
        let mut conns = self.lock();
        conns.insert(id, conn.clone());
        metrics.set_http_connections(conns.len() as i64);
        conn
    }

    /// Forgets a closed connection; sets the open-connections gauge.
    fn remove(&self, id: u64, metrics: &Metrics) {
        let mut conns = self.lock();
        conns.remove(&id);
        metrics.set_http_connections(conns.len() as i64);
    }

    /// Marks the connection that has kept the server waiting longest
    /// without a request to be closed, and returns it.
    fn evict_oldest(&self) -> Eviction {
        let conns = self.lock();
        let mut waiting: Vec<(Instant, &Arc<Conn>)> = conns
            .values()
            .filter_map(|c| c.snapshot().0.waiting_since().map(|since| (since, c)))
            .collect();
        waiting.sort_by_key(|(since, c)| (*since, c.id));
        if let Some((_, victim)) = waiting.iter().find(|(_, c)| c.evict()) {
            return Eviction::Closing(Arc::clone(victim));
        }
        if waiting.iter().any(|(_, c)| c.unpolled()) {
            Eviction::NotYet
        } else {
            Eviction::Nothing
        }
    }

    /// [`Registry::evict_oldest`], letting connections accepted just now
    /// be read first (a burst of accepts can outrun their tasks): `None`
    /// if every connection carries a request or has just sent one.
    async fn make_room(&self) -> Option<Arc<Conn>> {
        for _ in 0..MAX_EVICTION_YIELDS {
            match self.evict_oldest() {
                Eviction::Closing(victim) => return Some(victim),
                Eviction::Nothing => return None,
                Eviction::NotYet => tokio::task::yield_now().await,
            }
        }
        None
    }
}

/// What [`Registry::evict_oldest`] found.
enum Eviction {
    /// This connection is being closed.
    Closing(Arc<Conn>),
    /// Nothing to close yet: some connections have not been read from.
    NotYet,
    /// Nothing to close: every connection carries a request or is busy
    /// sending one.
    Nothing,
}

/// What every connection task shares.
struct Shared {
    router: Router,
    limits: Limits,
    metrics: Metrics,
    builder: hyper::server::conn::http1::Builder,
    registry: Registry,
    /// Slots for refusals in progress.
    refusing: Arc<Semaphore>,
    refusal_log: Throttle,
    out_of_files_log: Throttle,
}

/// Lets a log line through at most once per [`LOG_EVERY`] (an attack must
/// not flood the log; the metrics count every event).
#[derive(Default)]
struct Throttle(Mutex<Option<Instant>>);

impl Throttle {
    fn ready(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            true
        } else {
            false
        }
    }
}

/// Serves `router` on `listener` until `stop` turns `true` (or its sender
/// is dropped), then drains: see the module docs. Never returns early.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let limits = limits.clamped();
    check_open_file_limit(limits.max_connections);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The connection task keeps the deadlines (hyper's header timer would
    // need a timer and counts an idle keep-alive wait as head time).
    builder.header_read_timeout(None).max_header_size(MAX_HEAD);
    let shared = Arc::new(Shared {
        router,
        limits,
        metrics,
        builder,
        registry: Registry::default(),
        refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
        refusal_log: Throttle::default(),
        out_of_files_log: Throttle::default(),
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                backoff = BACKOFF_MIN;
                stream
            }
            // The client gave up before the accept: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                shared.metrics.http_accept_error();
                if is_out_of_files(&e)
                    && let Some(victim) = shared.registry.make_room().await
                {
                    if shared.out_of_files_log.ready() {
                        tracing::warn!(error = %e, "the HTTP listener is out of files ({e}): closing the connections that have waited longest without a request to accept new ones");
                    }
                    victim.closed(EVICTION_WAIT).await;
                    continue;
                }
                tracing::error!(error = %e, retry_in = ?backoff, "the HTTP listener cannot accept a connection ({e}); trying again in {backoff:?}");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => match shared.registry.make_room().await {
                Some(victim) => {
                    victim.closed(EVICTION_WAIT).await;
                    slots.clone().try_acquire_owned().ok()
                }
                None => None,
            },
        };
        match slot {
            Some(slot) => {
                let conn = shared.registry.add(&shared.metrics);
                tokio::spawn(connection(stream, conn, slot, shared.clone(), stop.clone()));
            }
            None => refuse(stream, &shared),
        }
    }
    drop(listener);
    tracing::info!(
        open = shared.registry.lock().len(),
        "the HTTP API stopped accepting; waiting for requests in progress"
    );
    // Every connection gives its slot back when it closes.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Errors of one connection that leave the listener fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn is_out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Warns when the open-file limit leaves no room for `max_connections`.
fn check_open_file_limit(max_connections: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    let need = max_connections + MAX_REFUSING + FILE_RESERVE;
    if limit.rlim_cur != libc::RLIM_INFINITY && (limit.rlim_cur as u128) < need as u128 {
        tracing::warn!(
            max_connections,
            open_file_limit = limit.rlim_cur,
            "[http] max_connections = {max_connections} leaves too few of the {} files this process may open (it needs about {need}): lower max_connections or raise the limit (ulimit -n, systemd LimitNOFILE=); until then, accepts failing for want of files close idle connections or back off",
            limit.rlim_cur
        );
    }
}

/// Answers 503 and closes: see the module docs.
fn refuse(stream: TcpStream, shared: &Shared) {
    shared.metrics.http_connection_closed("refused");
    let max = shared.limits.max_connections;
    if shared.refusal_log.ready() {
        tracing::warn!(
            max_connections = max,
            "refusing HTTP connections (503): all {max} connections ([http] max_connections) carry requests"
        );
    }
    let body = format!(
        "warden: too many connections: all {max} ([http] max_connections) carry requests; try again later\n"
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    match shared.refusing.clone().try_acquire_owned() {
        Ok(permit) => {
            tokio::spawn(async move {
                let _permit = permit;
                answer_and_close(stream, answer.as_bytes()).await;
            });
        }
        Err(_) => {
            // Too many refusals in progress: best effort, then close.
            let _ = stream.try_write(answer.as_bytes());
        }
    }
}

/// Reads the client's request head (for at most half of
/// [`REFUSAL_LINGER`]), so that the answer is not one it did not ask for
/// yet, writes `answer`, and reads what else comes until the client closes
/// (at most the other half), so that closing does not reset the connection
/// before the client has read the answer.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_LINGER / 2, async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < MAX_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(REFUSAL_LINGER / 2, async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut left = 64usize << 10;
        while left > 0 {
            match stream.read(&mut buf).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<(), io::Error>(())
    })
    .await;
}

/// Gives the slot back, leaves the registry and tells waiters, when the
/// connection task ends (after the socket is closed).
struct Registered {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        drop(self.slot.take());
        self.shared
            .registry
            .remove(self.conn.id, &self.shared.metrics);
        self.conn.done.send_replace(true);
    }
}

/// Serves one connection within its deadlines.
async fn connection(
    stream: TcpStream,
    conn: Arc<Conn>,
    slot: OwnedSemaphorePermit,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    // Declared first, dropped last: after the socket.
    let _registered = Registered {
        conn: conn.clone(),
        shared: shared.clone(),
        slot: Some(slot),
    };
    let io = TokioIo::new(Watched {
        inner: stream,
        conn: conn.clone(),
    });
    let service = ConnService {
        router: shared.router.clone(),
        conn: conn.clone(),
        shared: shared.clone(),
    };
    let http = shared.builder.serve_connection(io, service);
    let mut http = std::pin::pin!(http);
    let mut draining = false;
    loop {
        let (phase, evicted) = conn.snapshot();
        if evicted {
            shared.metrics.http_connection_closed("evicted");
            tracing::debug!(connection = conn.id, "HTTP connection closed to make room");
            return;
        }
        if draining && phase.waiting_since().is_some() {
            return;
        }
        let (deadline, reason) = phase.deadline(&shared.limits);
        if Instant::now() >= deadline {
            shared.metrics.http_connection_closed(reason);
            tracing::debug!(connection = conn.id, reason, "HTTP connection closed");
            return;
        }
        tokio::select! {
            result = http.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(connection = conn.id, error = %e, "HTTP connection ended");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = conn.changed.notified() => {}
            _ = stop.wait_for(|s| *s), if !draining => {
                draining = true;
                http.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The socket, telling its connection when bytes come in.
struct Watched {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => this.conn.bytes_read(),
            Poll::Pending => this.conn.read_pending(),
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router for one connection: starts the request phase and answers 408
/// at its deadline.
#[derive(Clone)]
struct ConnService {
    router: Router,
    conn: Arc<Conn>,
    shared: Arc<Shared>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        let timeout = self.shared.limits.request_timeout;
        let deadline = later(Instant::now(), timeout);
        let seq = self.conn.request(deadline);
        let conn = self.conn.clone();
        let metrics = self.shared.metrics.clone();
        let handled = self.router.clone().oneshot(request.map(Body::new));
        Box::pin(async move {
            let response = match tokio::time::timeout_at(deadline, handled).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    metrics.http_connection_closed("request_timeout");
                    request_timed_out(timeout)
                }
            };
            Ok(response.map(|body| {
                Body::new(Answer {
                    inner: body,
                    conn,
                    seq,
                    done: false,
                })
            }))
        })
    }
}

/// The 408 answer (the API's error shape), closing the connection.
fn request_timed_out(timeout: Duration) -> Response {
    let body = serde_json::json!({
        "error": format!(
            "the request was not complete within {} ([http] request_timeout); the connection is closed",
            humantime::format_duration(timeout)
        )
    });
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        axum::Json(body),
    )
        .into_response()
}

/// An answer's body, telling its connection when it has been taken.
struct Answer {
    inner: Body,
    conn: Arc<Conn>,
    seq: u64,
    done: bool,
}

impl Answer {
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.conn.answered(self.seq);
        }
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) {
            this.finish();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        max_connections: 4,
    };

    #[test]
    fn each_phase_has_its_deadline() {
        let t = Instant::now();
        let s = |n| t + Duration::from_secs(n);
        assert_eq!(
            Phase::New { since: t }.deadline(&LIMITS),
            (s(10), "header_timeout")
        );
        assert_eq!(
            Phase::Head { since: t }.deadline(&LIMITS),
            (s(10), "header_timeout")
        );
        assert_eq!(
            Phase::Request {
                seq: 1,
                deadline: s(30)
            }
            .deadline(&LIMITS),
            (s(31), "answer_timeout")
        );
        assert_eq!(
            Phase::Idle { since: t }.deadline(&LIMITS),
            (s(60), "idle_timeout")
        );
    }

    #[test]
    fn the_first_byte_keeps_the_accept_time_and_an_idle_one_restarts_it() {
        let conn = Conn::new(0, Instant::now() - Duration::from_secs(5));
        conn.bytes_read();
        let (Phase::Head { since }, _) = conn.snapshot() else {
            panic!("{:?}", conn.snapshot().0)
        };
        assert!(since.elapsed() >= Duration::from_secs(5));
        let seq = conn.request(Instant::now());
        conn.answered(seq + 1); // a stale answer changes nothing
        assert!(matches!(conn.snapshot().0, Phase::Request { .. }));
        conn.answered(seq);
        assert!(matches!(conn.snapshot().0, Phase::Idle { .. }));
        conn.bytes_read();
        let (Phase::Head { since }, _) = conn.snapshot() else {
            panic!()
        };
        assert!(since.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn eviction_takes_the_longest_waiting_and_never_a_request() {
        let registry = Registry::default();
        let a = registry.add(&Metrics::new());
        let b = registry.add(&Metrics::new());
        let c = registry.add(&Metrics::new());
        let d = registry.add(&Metrics::new());
        let victim = |r: &Registry| match r.evict_oldest() {
            Eviction::Closing(v) => Some(v.id),
            Eviction::NotYet => None,
            Eviction::Nothing => Some(u64::MAX),
        };
        // d was never read from: it may hold a whole request unread.
        assert_eq!(victim(&registry), None);
        // a carries a request; b has waited since before c.
        a.request(Instant::now() + Duration::from_secs(30));
        *b.state.lock().unwrap() = ConnState {
            phase: Phase::Idle {
                since: Instant::now() - Duration::from_secs(3),
            },
            requests: 1,
            polled: true,
            starved: true,
            evicted: false,
        };
        c.bytes_read();
        c.read_pending();
        d.read_pending();
        d.bytes_read(); // bytes came after the wait: not waiting on d
        assert_eq!(victim(&registry), Some(b.id));
        assert_eq!(victim(&registry), Some(c.id));
        assert_eq!(
            victim(&registry),
            Some(u64::MAX),
            "a is busy, d is being read, b and c taken"
        );
        assert!(!a.snapshot().1 && !d.snapshot().1);
    }
}
