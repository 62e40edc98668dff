//! `[runs]`: bounds on runs that plugins start through `runs.start`.

use super::document::Table;
use crate::diag::Diagnostics;
use serde::Deserialize;
use toml::Spanned;

/// `[runs]`: bounds on runs that plugins start through `runs.start`
/// (each start also needs the plugin in the caller's grant `run_plugins`,
/// and counts against that grant's `max_started_runs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Deepest a run started by runs may be: a run requested by an alert,
    /// a schedule or a person has depth 0, a run it starts depth 1, ...; a
    /// run at this depth may start none.
    pub max_chain_depth: u32,
    /// A start is refused while the started plugin has this many runs
    /// queued (from any source).
    pub max_queued_per_plugin: u32,
}

impl RunLimits {
    /// Default `max_chain_depth`: 3.
    pub const fn default_max_chain_depth() -> u32 {
        3
    }

    /// Largest `max_chain_depth`: 16. Every level multiplies the runs one
    /// request can lead to by the fan-out; a chain deeper than this is a
    /// loop, not a procedure.
    pub const fn max_max_chain_depth() -> u32 {
        16
    }

    /// Default `max_queued_per_plugin`: 100.
    pub const fn default_max_queued_per_plugin() -> u32 {
        100
    }
}

impl Default for RunLimits {
    fn default() -> Self {
        RunLimits {
            max_chain_depth: RunLimits::default_max_chain_depth(),
            max_queued_per_plugin: RunLimits::default_max_queued_per_plugin(),
        }
    }
}

/// `[runs]` as written: bounds on runs started by runs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunsFile {
    /// Longest chain of runs started by runs (`runs.start`), A starting B
    /// starting C, self-recursion and cycles included: a run requested by
    /// an alert, a schedule or a person has depth 0, a run it starts depth
    /// 1, and so on; a run at this depth may start no other. 1 to 16;
    /// default 3.
    max_chain_depth: Option<Spanned<i64>>,
    /// Most queued runs of one plugin for `runs.start` to queue another:
    /// a start is refused while the started plugin has this many runs
    /// queued, whoever queued them. At least 1; default 100.
    max_queued_per_plugin: Option<Spanned<i64>>,
}

/// `[runs]`, checked: each field within its bounds, else its default and
/// a diagnostic.
pub(super) fn run_limits(table: &Table<'_, RunsFile>, diags: &mut Diagnostics) -> RunLimits {
    let file = &table.value;
    let mut bounded = |value: &Option<Spanned<i64>>,
                       field: &str,
                       default: u32,
                       range: std::ops::RangeInclusive<u32>,
                       hint: &str| {
        let Some(value) = value else {
            return default;
        };
        match u32::try_from(*value.get_ref()) {
            Ok(n) if range.contains(&n) => n,
            _ => {
                diags.push(table.source.error(
                    &value.span(),
                    table.field(field),
                    format!(
                        "{} is out of range: {hint} (default {default})",
                        value.get_ref()
                    ),
                ));
                default
            }
        }
    };
    let max_chain_depth = bounded(
        &file.max_chain_depth,
        "max_chain_depth",
        RunLimits::default_max_chain_depth(),
        1..=RunLimits::max_max_chain_depth(),
        &format!(
            "use 1 to {}; to let no plugin start runs, list none in any grant's `run_plugins`",
            RunLimits::max_max_chain_depth()
        ),
    );
    let max_queued_per_plugin = bounded(
        &file.max_queued_per_plugin,
        "max_queued_per_plugin",
        RunLimits::default_max_queued_per_plugin(),
        1..=u32::MAX,
        "use at least 1; to let no plugin start runs, list none in any grant's `run_plugins`",
    );
    RunLimits {
        max_chain_depth,
        max_queued_per_plugin,
    }
}
