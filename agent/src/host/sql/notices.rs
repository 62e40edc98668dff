//! Server notices and warnings, captured per call.
//!
//! PostgreSQL answers some statements that "succeed" with a `WARNING`
//! instead of an error (`VACUUM`/`ANALYZE` of a table the role does not own:
//! `skipping "t" --- only table or database owner can vacuum it`). sqlx
//! 0.8 does not hand notices to the caller: `PgStream::recv` emits each one
//! as a `tracing` event with target [`TARGET`] (level WARN for `WARNING`,
//! INFO for `NOTICE`, TRACE for `INFO`/`LOG`, field `message`) and drops it.
//!
//! [`capture`] runs one call's future under a scoped dispatcher (one
//! process-wide [`Capture`] subscriber) that takes the notice events into
//! the call's buffer and forwards everything else to the dispatcher that
//! was the default when the call began (the agent's logging subscriber, or
//! a test's). The buffer and that dispatcher travel in a task-local, so
//! concurrent runs never see each other's notices. For the callsite
//! interest cache shared by all dispatchers, [`Capture`] reports `sometimes`
//! for [`TARGET`] (every notice is then checked dynamically, and outside a
//! capture the default dispatcher alone decides, as before) and `never` for
//! the rest (so the default dispatcher alone decides for them).
//!
//! Captured notices are not forwarded: the host logs them redacted, as
//! events of the call's span ([`super`]). Bounded: [`MAX_NOTICES`] per call,
//! [`MAX_NOTICE_BYTES`] per message, [`MAX_CALL_BYTES`] per call; the rest
//! are counted in [`Captured::dropped`].

use crate::runs::Notice;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tracing::field::{Field, Visit};
use tracing::instrument::WithSubscriber as _;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber, span};

/// The `tracing` target sqlx gives PostgreSQL notices.
pub const TARGET: &str = "sqlx::postgres::notice";
/// Most notices kept per call.
pub const MAX_NOTICES: usize = 32;
/// Longest message kept (longer ones are cut).
pub const MAX_NOTICE_BYTES: usize = 2048;
/// Most message bytes kept per call.
pub const MAX_CALL_BYTES: usize = 16 * 1024;

/// The notices of one call, in the order the server sent them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Captured {
    pub notices: Vec<Notice>,
    /// Notices over the bounds, not kept.
    pub dropped: u32,
    bytes: usize,
}

impl Captured {
    /// Keeps a notice if it fits the bounds, else counts it.
    pub fn push(&mut self, severity: &str, mut message: String) {
        // `truncate_utf8` marks a cut message with `…[truncated]`.
        if message.len() > MAX_NOTICE_BYTES {
            crate::text::truncate_utf8(&mut message, MAX_NOTICE_BYTES - "…[truncated]".len());
        }
        if self.notices.len() >= MAX_NOTICES || self.bytes + message.len() > MAX_CALL_BYTES {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.bytes += message.len();
        self.notices.push(Notice {
            severity: severity.to_string(),
            code: String::new(),
            message,
        });
    }

    /// The same notices with every message passed through `redact` (and cut
    /// again: redaction may lengthen a message).
    pub fn redacted(self, redact: impl Fn(&str) -> String) -> Captured {
        let mut out = Captured {
            dropped: self.dropped,
            ..Captured::default()
        };
        for n in self.notices {
            out.push(&n.severity, redact(&n.message));
        }
        out
    }
}

/// PostgreSQL's severity for sqlx's level (see `PgStream::recv`).
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "NOTICE",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "INFO",
    }
}

/// One call's capture: its buffer and the dispatcher to forward to.
struct Scope {
    inner: Dispatch,
    sink: Mutex<Captured>,
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

fn is_notice(meta: &Metadata<'_>) -> bool {
    meta.target() == TARGET
}

/// The subscriber of the scoped dispatcher; see the module docs.
struct Capture;

impl Capture {
    fn with_inner<T>(f: impl FnOnce(&Dispatch) -> T) -> T {
        match SCOPE.try_with(|s| s.inner.clone()) {
            Ok(inner) => f(&inner),
            Err(_) => f(&Dispatch::none()),
        }
    }
}

struct MessageVisitor(Option<String>);

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && self.0.is_none() {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl Subscriber for Capture {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_notice(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // PostgreSQL's INFO and LOG notices come at TRACE.
        Some(LevelFilter::TRACE)
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        is_notice(meta) || Capture::with_inner(|d| d.enabled(meta))
    }

    fn new_span(&self, attrs: &span::Attributes<'_>) -> span::Id {
        Capture::with_inner(|d| d.new_span(attrs))
    }

    fn record(&self, id: &span::Id, values: &span::Record<'_>) {
        Capture::with_inner(|d| d.record(id, values));
    }

    fn record_follows_from(&self, id: &span::Id, follows: &span::Id) {
        Capture::with_inner(|d| d.record_follows_from(id, follows));
    }

    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        if is_notice(meta) {
            let mut visitor = MessageVisitor(None);
            event.record(&mut visitor);
            let message = visitor.0.unwrap_or_default();
            let kept = SCOPE.try_with(|s| {
                s.sink
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(severity(*meta.level()), message);
            });
            if kept.is_ok() {
                return;
            }
        }
        Capture::with_inner(|d| {
            if d.enabled(meta) {
                d.event(event);
            }
        });
    }

    fn enter(&self, id: &span::Id) {
        Capture::with_inner(|d| d.enter(id));
    }

    fn exit(&self, id: &span::Id) {
        Capture::with_inner(|d| d.exit(id));
    }

    fn clone_span(&self, id: &span::Id) -> span::Id {
        Capture::with_inner(|d| d.clone_span(id))
    }

    fn try_close(&self, id: span::Id) -> bool {
        Capture::with_inner(|d| d.try_close(id))
    }

    fn current_span(&self) -> tracing_core::span::Current {
        Capture::with_inner(Dispatch::current_span)
    }
}

/// The process-wide capturing dispatcher (created once: creating a
/// dispatcher makes `tracing` recompute every callsite's interest).
fn dispatch() -> &'static Dispatch {
    static DISPATCH: OnceLock<Dispatch> = OnceLock::new();
    DISPATCH.get_or_init(|| Dispatch::new(Capture))
}

/// Runs `fut` and returns its output with the notices the database sent
/// while it ran (unredacted: see [`Captured::redacted`]).
pub async fn capture<F: Future>(fut: F) -> (F::Output, Captured) {
    let mut inner = tracing::dispatcher::get_default(Dispatch::clone);
    if inner.is::<Capture>() {
        // A capture inside a capture: forward to the outer one's dispatcher.
        inner = SCOPE
            .try_with(|s| s.inner.clone())
            .unwrap_or_else(|_| Dispatch::none());
    }
    let scope = Arc::new(Scope {
        inner,
        sink: Mutex::new(Captured::default()),
    });
    let out = SCOPE
        .scope(scope.clone(), fut.with_subscriber(dispatch().clone()))
        .await;
    let captured = std::mem::take(&mut *scope.sink.lock().unwrap_or_else(PoisonError::into_inner));
    (out, captured)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn notices_are_bounded_in_count_and_bytes() {
        let mut c = Captured::default();
        for i in 0..(MAX_NOTICES + 5) {
            c.push("NOTICE", format!("n{i}"));
        }
        assert_eq!(c.notices.len(), MAX_NOTICES);
        assert_eq!(c.dropped, 5);
        assert_eq!(c.notices[0].message, "n0");
        assert_eq!(
            c.notices[MAX_NOTICES - 1].message,
            format!("n{}", MAX_NOTICES - 1)
        );

        let mut c = Captured::default();
        for _ in 0..20 {
            c.push("WARNING", "é".repeat(MAX_NOTICE_BYTES));
        }
        assert!(
            c.notices
                .iter()
                .all(|n| n.message.len() <= MAX_NOTICE_BYTES)
        );
        let total: usize = c.notices.iter().map(|n| n.message.len()).sum();
        assert!(total <= MAX_CALL_BYTES, "{total}");
        assert_eq!(c.notices.len() + c.dropped as usize, 20);
        assert!(c.dropped > 0);
    }

    #[tokio::test]
    async fn events_of_the_notice_target_are_captured_in_order_and_others_pass_through() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // The default dispatcher: counts what reaches it.
        struct Counting(Arc<AtomicUsize>);
        impl Subscriber for Counting {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
                span::Id::from_u64(1)
            }
            fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
            fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
            fn event(&self, _: &Event<'_>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn enter(&self, _: &span::Id) {}
            fn exit(&self, _: &span::Id) {}
        }
        let seen = Arc::new(AtomicUsize::new(0));
        let _guard = tracing::dispatcher::set_default(&Dispatch::new(Counting(seen.clone())));
        let ((), captured) = capture(async {
            tracing::event!(target: "sqlx::postgres::notice", Level::INFO, message = "first");
            tokio::task::yield_now().await;
            if tracing::enabled!(target: "sqlx::postgres::notice", Level::WARN) {
                tracing::event!(target: "sqlx::postgres::notice", Level::WARN, message = "second");
            }
            tracing::event!(target: "warden::other", Level::INFO, "not a notice");
        })
        .await;
        let got: Vec<(&str, &str)> = captured
            .notices
            .iter()
            .map(|n| (n.severity.as_str(), n.message.as_str()))
            .collect();
        assert_eq!(got, [("NOTICE", "first"), ("WARNING", "second")]);
        assert_eq!(
            seen.load(Ordering::SeqCst),
            1,
            "the other event reaches the default"
        );
        // Outside a capture, a notice goes to the default dispatcher as before.
        tracing::event!(target: "sqlx::postgres::notice", Level::WARN, message = "outside");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
    }
}
