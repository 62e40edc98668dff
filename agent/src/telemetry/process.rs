//! The standard process metrics, read from `/proc/self` at each scrape
//! (Linux; elsewhere, and for any value that cannot be read, the metric is
//! left out rather than shown as 0):
//!
//! | metric | type | from |
//! |---|---|---|
//! | `process_cpu_seconds_total` | counter | `/proc/self/stat` utime + stime |
//! | `process_resident_memory_bytes` | gauge | `/proc/self/stat` rss × page size |
//! | `process_virtual_memory_bytes` | gauge | `/proc/self/stat` vsize |
//! | `process_start_time_seconds` | gauge | `/proc/self/stat` starttime + `/proc/stat` btime |
//! | `process_open_fds` | gauge | entries of `/proc/self/fd` |
//! | `process_max_fds` | gauge | `RLIMIT_NOFILE` soft limit |

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// The values of one scrape; `None` when they could not be read.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub virtual_bytes: Option<f64>,
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<f64>,
    pub max_fds: Option<f64>,
}

/// The fields of `/proc/<pid>/stat` this module uses.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    utime_ticks: u64,
    stime_ticks: u64,
    start_ticks: u64,
    vsize: u64,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may hold spaces and parentheses: fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

/// `btime` (boot time, Unix seconds) from `/proc/stat`.
fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|v| *v > 0)
}

impl ProcessStats {
    /// Reads this process's values now.
    pub fn read() -> ProcessStats {
        let stat = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|t| parse_stat(&t));
        let ticks = sysconf(libc::_SC_CLK_TCK).map(|t| t as f64);
        let page = sysconf(libc::_SC_PAGESIZE).map(|p| p as f64);
        let btime = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| parse_btime(&t));
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            // The directory handle itself is one of the entries: not counted.
            .map(|d| d.count().saturating_sub(1) as f64);
        let max_fds = {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the struct we pass.
            let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
            (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as f64)
        };
        ProcessStats {
            cpu_seconds: stat
                .zip(ticks)
                .map(|(s, t)| (s.utime_ticks + s.stime_ticks) as f64 / t),
            resident_bytes: stat.zip(page).map(|(s, p)| s.rss_pages as f64 * p),
            virtual_bytes: stat.map(|s| s.vsize as f64),
            start_time_seconds: stat
                .zip(ticks)
                .zip(btime)
                .map(|((s, t), b)| b as f64 + s.start_ticks as f64 / t),
            open_fds,
            max_fds,
        }
    }
}

/// Registered in [`super::Metrics`]: encodes [`ProcessStats::read`].
#[derive(Debug)]
pub(crate) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = ProcessStats::read();
        if let Some(v) = s.cpu_seconds {
            let c = ConstCounter::new(v);
            let m = encoder.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent",
                Some(&Unit::Seconds),
                c.metric_type(),
            )?;
            c.encode(m)?;
        }
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                s.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(Unit::Bytes),
                s.virtual_bytes,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(Unit::Seconds),
                s.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                s.open_fds,
            ),
            (
                "process_max_fds",
                "Most open file descriptors allowed (soft limit)",
                None,
                s.max_fds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                let m = encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?;
                g.encode(m)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        // Names with spaces and parentheses, as a process may call itself.
        for name in ["warden", "a b", "x) (y", ") 1 2 3 ("] {
            let line = format!(
                "4242 ({name}) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                 150 50 0 0 20 0 9 0 12345 104857600 2560 18446744073709551615 \
                 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"
            );
            assert_eq!(
                parse_stat(&line),
                Some(Stat {
                    utime_ticks: 150,
                    stime_ticks: 50,
                    start_ticks: 12345,
                    vsize: 104857600,
                    rss_pages: 2560,
                }),
                "{name}"
            );
        }
        assert_eq!(parse_stat("4242 (warden) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn btime_is_read_from_proc_stat() {
        let text = "cpu  1 2 3\nintr 5\nbtime 1764763200\nprocesses 9\n";
        assert_eq!(parse_btime(text), Some(1764763200));
        assert_eq!(parse_btime("cpu 1 2 3\n"), None);
    }

    #[test]
    fn this_process_has_plausible_values() {
        // Open 8 more descriptors: the count grows by 8. Other tests of
        // this binary open and close files meanwhile, so a few tries are
        // allowed for one undisturbed pair of readings.
        let (before, after) = (0..20)
            .map(|_| {
                let before = ProcessStats::read();
                let files: Vec<_> = (0..8)
                    .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
                    .collect();
                let after = ProcessStats::read();
                drop(files);
                (before, after)
            })
            .find(|(b, a)| a.open_fds.unwrap() - b.open_fds.unwrap() == 8.0)
            .expect("the descriptor count never grew by exactly the 8 files opened");
        let rss = after.resident_bytes.unwrap();
        assert!(rss > 1e6, "{rss}");
        assert!(after.virtual_bytes.unwrap() >= rss);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = after.start_time_seconds.unwrap();
        assert!(start <= now + 1.0 && start > now - 86400.0, "{start} {now}");
        assert!(after.cpu_seconds.unwrap() >= before.cpu_seconds.unwrap());
        assert!(after.max_fds.unwrap() >= after.open_fds.unwrap());
    }
}
