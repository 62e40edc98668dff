//! The HTTP listener against slow, idle and too many clients (issue 12):
//! whatever they do, the webhook keeps answering, and the server closes
//! their connections within `[http]`'s timeouts.
//!
//! Clients here are raw sockets, to send exactly the bytes (and at exactly
//! the pace) of the attack. Health checks use a fresh `reqwest` client each
//! time, so that no pooled connection meets its idle timeout mid-request.

use crate::daemon::{Api, Daemon, Proc, alert, payload};
use crate::world::{TOKEN, World};
use std::os::fd::AsRawFd as _;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use warden_tests::{wait_for, wait_for_value};

/// How much later than its deadline the server may close a connection (a
/// loaded test machine).
const SLACK: Duration = Duration::from_secs(5);
/// How fast a normal request must be answered while the attack goes on.
const PROMPT: Duration = Duration::from_secs(3);

/// A request head that never ends (no blank line).
fn endless_head() -> Vec<u8> {
    format!(
        "POST /api/v1/alerts HTTP/1.1\r\nHost: warden\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nX-Padding: {}\r\n",
        "p".repeat(200)
    )
    .into_bytes()
}

/// A complete head for a POST of `len` bytes to `path`, waiting for
/// `100 Continue` (which the server sends once the handler reads the body).
fn body_head(path: &str, token: Option<&str>, len: usize) -> Vec<u8> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST {path} HTTP/1.1\r\nHost: warden\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
    )
    .into_bytes()
}

/// A client connection driven by hand.
struct Client {
    read: OwnedReadHalf,
    write: Option<OwnedWriteHalf>,
    opened: Instant,
    trickler: Option<JoinHandle<()>>,
    /// Bytes read so far.
    got: Vec<u8>,
}

impl Client {
    async fn open(addr: &str) -> Client {
        let opened = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (read, write) = stream.into_split();
        Client {
            read,
            write: Some(write),
            opened,
            trickler: None,
            got: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.write
            .as_mut()
            .expect("not trickling")
            .write_all(bytes)
            .await
            .unwrap();
    }

    /// Sends `bytes` one at a time, one every `every`, in the background;
    /// stops at the first failed write (the server closed).
    fn trickle(&mut self, bytes: Vec<u8>, every: Duration) {
        let mut write = self.write.take().expect("trickling already");
        self.trickler = Some(tokio::spawn(async move {
            for b in bytes {
                if write.write_all(&[b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
            // Keep the connection half-open rather than closing it.
            std::future::pending::<()>().await;
        }));
    }

    /// True while the server has neither closed the connection nor sent
    /// anything on it (a peek that does not wait).
    fn waiting(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local buffer on an open socket.
        let n = unsafe {
            libc::recv(
                self.read.as_ref().as_raw_fd(),
                (&raw mut byte).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
    }

    /// Reads until `done` holds for what came so far; panics after `within`.
    async fn read_until(&mut self, within: Duration, done: impl Fn(&[u8]) -> bool) -> String {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        while !done(&self.got) {
            match tokio::time::timeout_at(deadline, self.read.read(&mut buf)).await {
                Err(_) => panic!(
                    "nothing more within {within:?}; got {:?}",
                    String::from_utf8_lossy(&self.got)
                ),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => self.got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&self.got).into_owned()
    }

    /// Reads one whole answer with a `Content-Length` body; returns it and
    /// forgets it.
    async fn answer(&mut self) -> String {
        let text = self
            .read_until(PROMPT, |got| {
                let text = String::from_utf8_lossy(got);
                let Some(end) = text.find("\r\n\r\n") else {
                    return false;
                };
                let len = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                got.len() >= end + 4 + len
            })
            .await;
        self.got.clear();
        text
    }

    /// Waits until the server closes the connection (end of file or
    /// reset); returns what it sent and the time since the connection was
    /// opened. Panics if it is still open after `within`.
    async fn closed(&mut self, within: Duration) -> (String, Duration) {
        let deadline = Instant::now() + within;
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.read.read(&mut buf)).await {
                Err(_) => panic!(
                    "the server did not close the connection within {within:?} (opened {:?} ago); got {:?}",
                    self.opened.elapsed(),
                    String::from_utf8_lossy(&self.got)
                ),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => self.got.extend_from_slice(&buf[..n]),
            }
        }
        let elapsed = self.opened.elapsed();
        if let Some(t) = self.trickler.take() {
            t.abort();
        }
        (String::from_utf8_lossy(&self.got).into_owned(), elapsed)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(t) = self.trickler.take() {
            t.abort();
        }
    }
}

/// A world whose `[http]` has `lines` (timeouts, cap).
fn world(lines: &str) -> World {
    World::new().sqlite_target("app", "app.db").http_with(lines)
}

fn addr(api: &Api) -> String {
    api.base.trim_start_matches("http://").to_string()
}

/// The webhook accepts an alert, `/healthz` answers, both within
/// [`PROMPT`], on new connections.
async fn answers_promptly(base: &str, what: &str) {
    let api = Api::new(base);
    let start = Instant::now();
    let body = api
        .alerts(&payload(vec![alert(
            "firing",
            &format!("fp-{}", uuid::Uuid::now_v7()),
            &[("alertname", "Probe")],
        )]))
        .await;
    assert_eq!(body["accepted"], 1, "{body}");
    let (code, text) = api
        .send(reqwest::Method::GET, "/healthz", None, None, &[])
        .await;
    assert_eq!(code, 200, "{text}");
    let took = start.elapsed();
    assert!(
        took < PROMPT,
        "the webhook and /healthz took {took:?} {what}"
    );
}

/// The value of the metric line starting `name` (labels included).
async fn metric(base: &str, name: &str) -> f64 {
    let (code, text) = Api::new(base)
        .send(reqwest::Method::GET, "/metrics", None, None, &[])
        .await;
    assert_eq!(code, 200);
    let text = text.as_str().unwrap().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_are_cut_at_header_timeout_and_the_webhook_keeps_answering() {
    let header = Duration::from_secs(2);
    let w = world("header_timeout = \"2s\"\nrequest_timeout = \"30s\"\nidle_timeout = \"30s\"");
    let d = Daemon::start(&w).await;
    let addr = addr(&d.api);
    let head = endless_head();
    let mut stalled = Vec::new();
    for i in 0..30 {
        let mut c = Client::open(&addr).await;
        match i % 3 {
            // Slowloris: one byte a second.
            0 => c.trickle(head.clone(), Duration::from_secs(1)),
            // The whole head but its blank line, then nothing.
            1 => c.send(&head).await,
            // Nothing at all.
            _ => {}
        }
        stalled.push(c);
    }
    answers_promptly(&d.api.base, "with 30 slow heads open").await;
    for (i, c) in stalled.iter().enumerate() {
        assert!(c.waiting(), "stalled connection {i} was closed early");
    }
    for (i, c) in stalled.iter_mut().enumerate() {
        let (sent, after) = c.closed(header + SLACK).await;
        assert!(
            (header..header + SLACK).contains(&after),
            "connection {i} closed after {after:?}, not at header_timeout"
        );
        assert_eq!(sent, "", "connection {i}: no answer to an unfinished head");
    }
    answers_promptly(&d.api.base, "after the slow heads").await;
    let cut = metric(
        &d.api.base,
        "warden_http_connections_closed_total{reason=\"header_timeout\"}",
    )
    .await;
    assert!(cut >= 30.0, "{cut} closes counted");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_are_answered_408_at_request_timeout() {
    let request = Duration::from_secs(3);
    let w = world("header_timeout = \"2s\"\nrequest_timeout = \"3s\"\nidle_timeout = \"30s\"");
    let d = Daemon::start(&w).await;
    let addr = addr(&d.api);
    let mut slow = Vec::new();
    for i in 0..9 {
        let mut c = Client::open(&addr).await;
        let path = ["/api/v1/alerts", "/api/v1/runs", "/api/v1/alerts"][i % 3];
        c.send(&body_head(path, Some(TOKEN), 5000)).await;
        // The handler is reading the body: the request phase has begun.
        let cont = c.read_until(PROMPT, |g| g.ends_with(b"\r\n\r\n")).await;
        assert!(cont.starts_with("HTTP/1.1 100 Continue"), "{cont}");
        c.got.clear();
        match i % 3 {
            // A few bytes at once, then nothing.
            0 => c.send(b"{\"version\": \"4\", ").await,
            // One byte every half second.
            1 => c.trickle(vec![b' '; 5000], Duration::from_millis(500)),
            // Nothing.
            _ => {}
        }
        slow.push(c);
    }
    // Without the token, the body is never waited for.
    let mut anonymous = Client::open(&addr).await;
    anonymous
        .send(&body_head("/api/v1/alerts", None, 5000))
        .await;
    anonymous.trickle(vec![b' '; 5000], Duration::from_millis(500));
    let (sent, after) = anonymous.closed(PROMPT).await;
    assert!(sent.starts_with("HTTP/1.1 401"), "{sent}");
    assert!(after < request, "{after:?}");

    answers_promptly(&d.api.base, "with 9 slow bodies open").await;
    for (i, c) in slow.iter().enumerate() {
        assert!(c.waiting(), "slow body {i} was answered early");
    }
    for (i, c) in slow.iter_mut().enumerate() {
        let (sent, after) = c.closed(request + SLACK).await;
        assert!(
            (request..request + SLACK).contains(&after),
            "slow body {i} answered after {after:?}, not at request_timeout"
        );
        assert!(sent.starts_with("HTTP/1.1 408"), "slow body {i}: {sent}");
        assert!(sent.contains("request_timeout"), "slow body {i}: {sent}");
        assert!(
            sent.to_ascii_lowercase().contains("connection: close"),
            "{sent}"
        );
    }
    answers_promptly(&d.api.base, "after the slow bodies").await;
    let cut = metric(
        &d.api.base,
        "warden_http_connections_closed_total{reason=\"request_timeout\"}",
    )
    .await;
    assert!(cut >= 9.0, "{cut} 408s counted");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_at_idle_timeout() {
    let idle = Duration::from_secs(1);
    let header = Duration::from_secs(3);
    let w = world("header_timeout = \"3s\"\nrequest_timeout = \"30s\"\nidle_timeout = \"1s\"");
    let d = Daemon::start(&w).await;
    let addr = addr(&d.api);
    let get = b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n";

    // Twenty clients that ask once and keep the connection.
    let mut idlers = Vec::new();
    for _ in 0..20 {
        let mut c = Client::open(&addr).await;
        // Idle from the answer on, so from no earlier than this.
        c.opened = Instant::now();
        c.send(get).await;
        let answer = c.answer().await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        idlers.push(c);
    }
    // One that starts its next request at once but sends it slowly: it is
    // reading a head, so header_timeout applies, not idle_timeout.
    let mut slow_next = Client::open(&addr).await;
    slow_next.opened = Instant::now();
    slow_next.send(get).await;
    assert!(slow_next.answer().await.starts_with("HTTP/1.1 200"));
    slow_next.trickle(endless_head(), Duration::from_millis(200));
    answers_promptly(&d.api.base, "with 20 idle connections open").await;

    // One that asks again and again, less than idle_timeout apart, for
    // three times idle_timeout: never closed.
    let mut busy = Client::open(&addr).await;
    let asking = tokio::spawn(async move {
        let start = Instant::now();
        let mut asked = 0;
        while start.elapsed() < idle * 3 {
            busy.send(get).await;
            let answer = busy.answer().await;
            assert!(
                answer.starts_with("HTTP/1.1 200"),
                "request {asked}: {answer}"
            );
            asked += 1;
            tokio::time::sleep(idle / 3).await; // the client's pace
        }
        busy
    });

    for (i, c) in idlers.iter_mut().enumerate() {
        let (sent, after) = c.closed(idle + SLACK).await;
        assert!(
            (idle..idle + SLACK).contains(&after),
            "idle connection {i} closed after {after:?}"
        );
        assert_eq!(sent, "", "idle connection {i}");
    }
    let (sent, after) = slow_next.closed(header + SLACK).await;
    assert!(
        (header..header + SLACK).contains(&after),
        "a slow second head was closed after {after:?}, not at header_timeout"
    );
    assert_eq!(sent, "");
    let busy = asking.await.unwrap();
    assert!(busy.waiting(), "an active connection was closed");
    let base = d.api.base.clone();
    assert!(
        metric(
            &base,
            "warden_http_connections_closed_total{reason=\"idle_timeout\"}"
        )
        .await
            >= 20.0
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_waiting_connections_make_room_and_busy_ones_get_503() {
    let request = Duration::from_secs(3);
    let cap = 8;
    let w = world(&format!(
        "header_timeout = \"60s\"\nrequest_timeout = \"3s\"\nidle_timeout = \"60s\"\nmax_connections = {cap}"
    ));
    let d = Daemon::start(&w).await;
    let addr = addr(&d.api);
    let head = endless_head();

    // Twice the cap of slow heads: each one past the cap takes the place of
    // the oldest, long before any timeout.
    let mut stalled = Vec::new();
    for i in 0..2 * cap {
        let mut c = Client::open(&addr).await;
        if i % 2 == 0 {
            c.trickle(head.clone(), Duration::from_secs(1));
        }
        stalled.push(c);
    }
    answers_promptly(&d.api.base, "with twice the cap of slow heads").await;
    for (i, c) in stalled.iter_mut().take(cap).enumerate() {
        let (sent, after) = c.closed(SLACK).await;
        assert_eq!(sent, "", "stalled {i}");
        assert!(after < SLACK, "stalled {i} closed after {after:?}");
    }
    for (i, c) in stalled.iter().enumerate().skip(cap + 2) {
        assert!(c.waiting(), "stalled {i}, among the newest, was closed");
    }

    // Fill every slot with requests in progress: they are never closed to
    // make room, so the next connection is refused.
    let mut busy = Vec::new();
    for _ in 0..cap {
        let mut c = Client::open(&addr).await;
        c.send(&body_head("/api/v1/alerts", Some(TOKEN), 100)).await;
        let cont = c.read_until(PROMPT, |g| g.ends_with(b"\r\n\r\n")).await;
        assert!(cont.starts_with("HTTP/1.1 100 Continue"), "{cont}");
        c.got.clear();
        busy.push(c);
    }
    for (i, c) in stalled.iter_mut().enumerate() {
        c.closed(SLACK).await;
        assert!(c.opened.elapsed() < Duration::from_secs(60), "stalled {i}");
    }
    let mut refused = Client::open(&addr).await;
    let (sent, after) = refused.closed(PROMPT).await;
    assert!(sent.starts_with("HTTP/1.1 503"), "{sent}");
    assert!(
        sent.contains(&format!("all {cap} ([http] max_connections)")),
        "{sent}"
    );
    assert!(after < PROMPT);
    // A client that sends its request at once gets the same answer.
    let mut refused = Client::open(&addr).await;
    refused
        .send(b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n")
        .await;
    let (sent, _) = refused.closed(PROMPT).await;
    assert!(sent.starts_with("HTTP/1.1 503"), "{sent}");
    let (code, text) = Api::new(&d.api.base)
        .send(reqwest::Method::GET, "/healthz", None, None, &[])
        .await;
    assert_eq!(code, 503, "{text}");

    // The requests in progress end at their deadline, and the listener,
    // which never stopped accepting, serves again.
    for (i, c) in busy.iter_mut().enumerate() {
        let (sent, after) = c.closed(request + SLACK).await;
        assert!(sent.starts_with("HTTP/1.1 408"), "busy {i}: {sent}");
        assert!(after >= request, "busy {i}: {after:?}");
    }
    answers_promptly(&d.api.base, "once the requests in progress ended").await;
    let base = d.api.base.clone();
    let evicted = metric(
        &base,
        "warden_http_connections_closed_total{reason=\"evicted\"}",
    )
    .await;
    assert!(evicted >= (2 * cap) as f64, "{evicted} evictions counted");
    let refused = metric(
        &base,
        "warden_http_connections_closed_total{reason=\"refused\"}",
    )
    .await;
    assert!(refused >= 3.0, "{refused} refusals counted");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_closes_waiting_connections_and_bounds_requests_in_progress() {
    let request = Duration::from_secs(3);
    let w = world("header_timeout = \"60s\"\nrequest_timeout = \"3s\"\nidle_timeout = \"60s\"");
    let d = Daemon::start(&w).await;
    let addr = addr(&d.api);
    let mut waiting = Vec::new();
    for i in 0..10 {
        let mut c = Client::open(&addr).await;
        if i % 2 == 0 {
            c.trickle(endless_head(), Duration::from_secs(1));
        } else {
            c.send(b"GET /healthz HTTP/1.1\r\nHost: warden\r\n\r\n")
                .await;
            assert!(c.answer().await.starts_with("HTTP/1.1 200"));
        }
        waiting.push(c);
    }
    let mut body = Client::open(&addr).await;
    body.send(&body_head("/api/v1/alerts", Some(TOKEN), 100))
        .await;
    body.read_until(PROMPT, |g| g.ends_with(b"\r\n\r\n")).await;
    body.got.clear();

    let start = Instant::now();
    let stopping = tokio::spawn(d.stop());
    for (i, c) in waiting.iter_mut().enumerate() {
        let (sent, _) = c.closed(SLACK).await;
        assert_eq!(sent, "", "waiting {i}");
        assert!(start.elapsed() < SLACK, "waiting {i} closed late");
    }
    let (sent, _) = body.closed(request + SLACK).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
    tokio::time::timeout(SLACK, stopping)
        .await
        .expect("the drain did not end with the last request")
        .unwrap();
    assert!(
        start.elapsed() < request + SLACK,
        "drain took {:?}",
        start.elapsed()
    );
    assert!(
        TcpStream::connect(&addr).await.is_err(),
        "still accepting after the drain"
    );
}

/// `warden run` as a child process with `max_files` open files at most.
async fn proc_with_files(w: &World, max_files: u64) -> Proc {
    let config = w.write();
    Proc::start_with(&config, &[], Some(max_files)).await
}

fn pid(p: &Proc) -> u32 {
    p.child.id()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// User plus system CPU time of `pid`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_files_the_listener_backs_off_and_recovers() {
    let request = Duration::from_secs(4);
    let max_files = 128;
    let w = world("header_timeout = \"60s\"\nrequest_timeout = \"4s\"\nidle_timeout = \"60s\"");
    let p = proc_with_files(&w, max_files).await;
    let pid = pid(&p);
    let addr = addr(&p.api);
    // The default cap (512) does not fit in 128 files: said at start.
    let probe = p.log.clone();
    wait_for("the open-file limit warning", SLACK, || {
        let text = probe.lock().unwrap().join("\n");
        async move { text.contains("max_connections = 512 leaves too few") }
    })
    .await;
    answers_promptly(&p.api.base, "before the flood").await;

    // Requests in progress, which are never closed to make room, one after
    // the other until the process is out of files, then more that wait to
    // be accepted.
    let mut busy = Vec::new();
    loop {
        let mut c = Client::open(&addr).await;
        c.send(&body_head("/api/v1/alerts", Some(TOKEN), 100)).await;
        let served = wait_for_value("100 Continue, or no file left", SLACK, || {
            let served = !c.waiting();
            let full = open_files(pid) >= max_files as usize;
            async move {
                if served {
                    Some(true)
                } else {
                    full.then_some(false)
                }
            }
        })
        .await;
        busy.push(c);
        if !served {
            break;
        }
    }
    let in_progress = busy.len() - 1;
    for _ in 0..20 {
        let mut c = Client::open(&addr).await;
        c.send(&body_head("/api/v1/alerts", Some(TOKEN), 100)).await;
        busy.push(c);
    }
    let probe = p.log.clone();
    wait_for("an accept to fail for want of files", SLACK, || {
        let text = probe.lock().unwrap().join("\n");
        async move { text.contains("cannot accept a connection") }
    })
    .await;
    // While out of files the listener backs off instead of spinning: it
    // uses little CPU until the requests in progress end (request_timeout).
    let cpu_before = cpu_time(pid);
    let wall = Instant::now();
    let (sent, _) = busy[0].closed(request + SLACK).await;
    assert!(sent.contains("HTTP/1.1 408"), "{sent}");
    let (cpu, wall) = (cpu_time(pid) - cpu_before, wall.elapsed());
    assert!(
        cpu < wall / 2,
        "the agent used {cpu:?} of CPU in {wall:?} while out of files"
    );
    // Then it accepts again: the ones left waiting are served in turn (one
    // that had no head yet when files ran out may have made room instead).
    let mut answered = 0;
    for (i, c) in busy.iter_mut().enumerate() {
        let (sent, _) = c.closed(request * 2 + SLACK).await;
        assert!(
            sent.contains("HTTP/1.1 408") || sent.is_empty(),
            "busy {i}: {sent}"
        );
        answered += usize::from(!sent.is_empty());
    }
    assert!(
        answered + 2 >= in_progress + 20,
        "{answered} of {} answered",
        in_progress + 20
    );
    answers_promptly(&p.api.base, "after running out of files").await;
    let errors = metric(&p.api.base, "warden_http_accept_errors_total").await;
    assert!(
        (1.0..=60.0).contains(&errors),
        "{errors} failed accepts: none, or a spin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_files_waiting_connections_make_room() {
    let max_files = 128;
    let w = world("header_timeout = \"60s\"\nrequest_timeout = \"30s\"\nidle_timeout = \"60s\"");
    let p = proc_with_files(&w, max_files).await;
    let addr = addr(&p.api);
    // The state database's connections are open before the flood.
    answers_promptly(&p.api.base, "before the flood").await;
    let mut stalled = Vec::new();
    for i in 0..max_files + 40 {
        let mut c = Client::open(&addr).await;
        if i % 2 == 0 {
            c.send(&endless_head()).await;
        }
        stalled.push(c);
    }
    // The webhook is served although every file was taken: the oldest
    // waiting connections were closed for it.
    answers_promptly(&p.api.base, "with more slow heads than files").await;
    let (sent, after) = stalled[0].closed(SLACK).await;
    assert_eq!(sent, "");
    assert!(after < Duration::from_secs(60));
    let base = p.api.base.clone();
    let errors = wait_for_value("failed accepts counted", SLACK, || {
        let base = base.clone();
        async move {
            let n = metric(&base, "warden_http_accept_errors_total").await;
            (n >= 1.0).then_some(n)
        }
    })
    .await;
    assert!(errors >= 1.0);
    assert!(
        metric(
            &base,
            "warden_http_connections_closed_total{reason=\"evicted\"}"
        )
        .await
            >= 1.0
    );
}
