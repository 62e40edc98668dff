//! `warden:plugin/log`: plugin log lines into the agent's log and the run
//! record, capped per run so a flood cannot fill the disk or the memory.

use super::HostState;
use super::permission::{LocalCall, check_local};
use crate::host::bindings::warden::plugin::log::{Host, Level};
use crate::runs::LogLine;
use crate::text::truncate_utf8;

/// Lines kept per run; more are counted and dropped.
pub const MAX_LINES: usize = 1000;
/// Bytes kept per run.
pub const MAX_BYTES: usize = 256 * 1024;
/// Longest line kept; longer ones are cut.
pub const MAX_LINE: usize = 4096;

/// One run's log lines.
#[derive(Debug, Default)]
pub struct LogSink {
    pub lines: Vec<LogLine>,
    pub bytes: usize,
    pub dropped: u64,
}

/// The run's log: empty at start, its lines handed back at the end.
impl super::capability::Capability for LogSink {
    fn finish<'a>(
        &'a mut self,
        effects: &'a mut super::RunEffects,
    ) -> futures_util::future::BoxFuture<'a, ()> {
        effects.logs = std::mem::take(&mut self.lines);
        effects.logs_dropped = self.dropped;
        Box::pin(std::future::ready(()))
    }
}

impl LogSink {
    /// True once a cap is reached: further lines are only counted.
    pub fn full(&self) -> bool {
        self.lines.len() >= MAX_LINES || self.bytes >= MAX_BYTES
    }

    /// Keeps a line unless a cap is reached; returns whether it was kept.
    pub fn push(&mut self, level: &str, message: String) -> bool {
        if self.full() {
            self.dropped += 1;
            return false;
        }
        self.push_host(level, message);
        true
    }

    /// Keeps a line the host writes about the run, even when a cap is
    /// reached: for notes the record must not lose to a plugin that filled
    /// its log first. Callers write a bounded number of them per run (one
    /// per `runs.start` bound hit, say).
    pub fn push_host(&mut self, level: &str, mut message: String) {
        truncate_utf8(&mut message, MAX_LINE);
        self.bytes += message.len();
        self.lines.push(LogLine {
            at: chrono::Utc::now(),
            level: level.to_string(),
            message,
        });
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl Host for HostState {
    fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        // Disjoint field borrows: no Arc clone on this hot path.
        let Some(env) = self.env.as_deref() else {
            return Ok(());
        };
        if check_local(Some(env), LocalCall::Log).is_err() {
            return Ok(());
        }
        // Trace lines are for the plugin author: counted against the cap but
        // not stored, so a chatty plugin costs little.
        if matches!(level, Level::Trace) {
            if self.log.lines.len() >= MAX_LINES {
                self.log.dropped += 1;
            }
            return Ok(());
        }
        if self.log.full() {
            self.log.dropped += 1;
            return Ok(());
        }
        let message = env.redactor.redact(&message);
        let name = level_name(level);
        if self.log.push(name, message)
            && let Some(line) = self.log.lines.last()
        {
            let msg = line.message.as_str();
            match level {
                Level::Error => tracing::error!(run = %env.run_id, plugin = %env.plugin, "{msg}"),
                Level::Warn => tracing::warn!(run = %env.run_id, plugin = %env.plugin, "{msg}"),
                Level::Info => tracing::info!(run = %env.run_id, plugin = %env.plugin, "{msg}"),
                Level::Debug | Level::Trace => {
                    tracing::debug!(run = %env.run_id, plugin = %env.plugin, "{msg}")
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_lines_and_bytes() {
        let mut sink = LogSink::default();
        for i in 0..(MAX_LINES + 10) {
            sink.push("info", format!("line {i}"));
        }
        assert_eq!(sink.lines.len(), MAX_LINES);
        assert_eq!(sink.dropped, 10);
        let mut big = LogSink::default();
        for _ in 0..200 {
            big.push("info", "x".repeat(10_000));
        }
        assert!(big.bytes <= MAX_BYTES + MAX_LINE + 20);
        assert!(big.lines.iter().all(|l| l.message.len() <= MAX_LINE + 20));
        assert!(big.dropped > 0);
        // Host notes are kept past the caps (their callers bound them).
        sink.push_host("warn", "host: runs.start refused".into());
        assert_eq!(sink.lines.len(), MAX_LINES + 1);
        assert_eq!(
            sink.lines.last().map(|l| l.message.as_str()),
            Some("host: runs.start refused")
        );
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "é".repeat(10);
        truncate_utf8(&mut s, 5);
        assert!(s.starts_with("éé"));
        assert!(s.ends_with("[truncated]"));
    }
}
