//! `[[schedule]]`: run a plugin on a target at cron times.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use rand::Rng;
use serde::Deserialize;
use toml::Spanned;

use super::fields::{self, DEFAULT_APPROVAL_TTL, ParamsFile, is_valid_schedule_name};
use super::grant::known_list;
use super::rule::{Retry, RetryFile, check_retry};
use super::window::{self, Window, WindowFile};
use super::{Location, is_valid_plugin_name};
use crate::config::document::Table;
use crate::config::units::HumanDuration;
use crate::diag::Diagnostics;

/// One `[[schedule]]` table of a policy file (see `GrantFile` for the
/// shape).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleFile {
    /// The schedule's name, unique among schedules: lowercase letters,
    /// digits, `_` and `-`, starting with a letter. Required.
    name: Option<Spanned<String>>,
    /// The plugin to run. Required.
    plugin: Option<Spanned<String>>,
    /// The target to run it on: a `[[target]]` of `warden.toml`. Required.
    target: Option<Spanned<String>>,
    /// When: a cron expression of 5 fields (minute hour day-of-month month
    /// day-of-week) or 6 (seconds first), or `@daily` and the like.
    /// Required.
    cron: Option<Spanned<String>>,
    /// The time zone of `cron`, like `"Europe/Berlin"`. Default `"UTC"`.
    timezone: Option<Spanned<String>>,
    /// The plugin's params: strings, numbers or booleans.
    params: Option<ParamsFile>,
    /// Waits a random time up to this before each run, like `"30s"`.
    /// Default none.
    jitter: Option<Spanned<HumanDuration>>,
    /// When runs are allowed (in `timezone` unless it names one).
    window: Option<Spanned<WindowFile>>,
    /// Run the plugin in dry-run mode. Default `false`.
    dry_run: Option<bool>,
    /// Wait for an approval before running. Default `false`.
    require_approval: Option<bool>,
    /// How long a run waits for approval. Default `"24h"`.
    approval_ttl: Option<Spanned<HumanDuration>>,
    /// Retries a failed run.
    retry: Option<Spanned<RetryFile>>,
    /// What to do at start about ticks missed while the agent was down
    /// (each is recorded as a `missed` run either way): `"none"` (the
    /// default) or `"latest"` (run the latest missed tick once, like
    /// systemd's `Persistent=true`).
    catch_up: Option<CatchUp>,
}

/// `catch_up` of a `[[schedule]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Missed ticks are recorded, not run.
    #[default]
    None,
    /// The latest missed tick is run once at start.
    Latest,
}

/// A plugin run on a target at cron times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    pub plugin: String,
    pub target: String,
    /// The cron expression as written.
    pub cron: String,
    /// The time zone `cron` is read in.
    pub timezone: Tz,
    pub params: BTreeMap<String, String>,
    /// Each run waits a random time up to this.
    pub jitter: Duration,
    pub window: Option<Window>,
    pub dry_run: bool,
    pub require_approval: bool,
    pub approval_ttl: Duration,
    pub retry: Option<Retry>,
    /// What to do at start about ticks missed while the agent was down.
    pub catch_up: CatchUp,
    /// The `[[schedule]]` this comes from.
    pub source: Location,
    /// `cron`, parsed.
    parsed: Cron,
}

impl Schedule {
    /// The first fire time strictly after `after`, on the wall clock of
    /// `timezone` (a time skipped by a change to summer time fires at the
    /// end of the gap; a repeated one fires once), without jitter. `None`
    /// if there is none.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.timezone);
        self.parsed
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The fire times in `(after, until]`, oldest first: at most `keep` of
    /// the latest, and how many older ones there are beyond those (counted
    /// back up to `count_max`; more are reported as `count_max`).
    pub fn ticks_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        keep: usize,
        count_max: u64,
    ) -> (Vec<DateTime<Utc>>, u64) {
        let mut ticks = Vec::new();
        let mut beyond = 0u64;
        let mut at = until;
        while let Some(tick) = self.prev_at_or_before(at) {
            if tick <= after {
                break;
            }
            if ticks.len() < keep {
                ticks.push(tick);
            } else {
                beyond += 1;
                if beyond >= count_max {
                    break;
                }
            }
            // Cron times are whole seconds.
            at = tick - chrono::Duration::seconds(1);
        }
        ticks.reverse();
        (ticks, beyond)
    }

    /// The latest fire time at or before `at`.
    fn prev_at_or_before(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.timezone);
        self.parsed
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|prev| prev.with_timezone(&Utc))
    }

    /// A random delay in `[0, jitter]`.
    pub fn jitter_delay(&self) -> Duration {
        let max = u64::try_from(self.jitter.as_nanos()).unwrap_or(u64::MAX);
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rand::rng().random_range(0..=max))
    }
}

/// The cron nicknames croner reads.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// The fields of a 5-field expression: name and allowed values.
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L or W"),
    ("month", "1-12 or jan-dec"),
    ("day-of-week", "0-7 or sun-sat, # or L"),
];

/// Parses a cron expression of 5 fields, or 6 with seconds first, or a
/// nickname like `@daily`. The error says which field is wrong and why.
pub(super) fn parse_cron(expression: &str) -> Result<Cron, String> {
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let invalid = |what: String| format!("invalid cron expression {expression:?}: {what}");
    let trimmed = expression.trim();
    if trimmed.starts_with('@') {
        if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(trimmed)) {
            return Err(invalid(format!(
                "unknown nickname: use one of {}",
                NICKNAMES.join(", ")
            )));
        }
        return parser.parse(trimmed).map_err(|e| invalid(cron_error(&e)));
    }
    let parts: Vec<&str> = trimmed.split_whitespace().collect();
    let mut fields: Vec<(&str, &str)> = Vec::new();
    match parts.len() {
        5 => {}
        6 => fields.push(("second", "0-59")),
        n => {
            return Err(invalid(format!(
                "it has {n} field{}, expected 5 (minute hour day-of-month month day-of-week) or \
                 6 (with seconds first)",
                if n == 1 { "" } else { "s" }
            )));
        }
    }
    fields.extend(FIELDS);
    match parser.parse(trimmed) {
        Ok(cron) => Ok(cron),
        Err(error) => {
            // Find the field at fault: the first that fails with every
            // other field `*`.
            for (i, (part, (name, allowed))) in parts.iter().zip(&fields).enumerate() {
                let alone: Vec<&str> = (0..parts.len())
                    .map(|j| if j == i { *part } else { "*" })
                    .collect();
                if let Err(e) = parser.parse(&alone.join(" ")) {
                    return Err(invalid(format!(
                        "bad {name} field `{part}`: {} (allowed: {allowed})",
                        cron_error(&e)
                    )));
                }
            }
            Err(invalid(cron_error(&error)))
        }
    }
}

/// A croner error in words, without its prefix.
fn cron_error(error: &CronError) -> String {
    let text = match error {
        CronError::ComponentError(text) | CronError::InvalidPattern(text) => text.clone(),
        CronError::IllegalCharacters(_) => "it has a character not allowed there".to_owned(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_lowercase().chain(chars).collect()
    })
}

/// A checked [`Schedule`] with what the checks across schedules need.
pub(super) struct Checked {
    pub(super) schedule: Schedule,
    /// The span and field path of `name`.
    pub(super) name: (Range<usize>, String),
    /// The span and field path of `target`.
    pub(super) target: (Range<usize>, String),
}

/// Checks one `[[schedule]]`, reporting every problem. `None` if anything
/// was reported.
pub(super) fn check(
    table: &Table<'_, ScheduleFile>,
    known_targets: &[&str],
    diags: &mut Diagnostics,
) -> Option<Checked> {
    let file = &table.value;
    let source = table.source;
    let before = diags.len();
    let name = table.require("name", &file.name, diags);
    let plugin = table.require("plugin", &file.plugin, diags);
    let target = table.require("target", &file.target, diags);
    let cron = table.require("cron", &file.cron, diags);

    if let Some(name) = name
        && !is_valid_schedule_name(name.get_ref())
    {
        diags.push(source.error(
            &name.span(),
            table.field("name"),
            format!(
                "invalid schedule name {:?}: use lowercase letters, digits, `_` and `-`, \
                 starting with a letter",
                name.get_ref()
            ),
        ));
    }
    if let Some(plugin) = plugin
        && !is_valid_plugin_name(plugin.get_ref())
    {
        diags.push(source.error(
            &plugin.span(),
            table.field("plugin"),
            format!(
                "invalid plugin name {:?}: use lowercase letters, digits and `-`, starting with \
                 a letter",
                plugin.get_ref()
            ),
        ));
    }
    if let Some(target) = target
        && !known_targets.contains(&target.get_ref().as_str())
    {
        diags.push(source.error(
            &target.span(),
            table.field("target"),
            format!(
                "unknown target {:?}: {}",
                target.get_ref(),
                known_list(known_targets)
            ),
        ));
    }
    let parsed = cron.and_then(|cron| match parse_cron(cron.get_ref()) {
        Ok(parsed) => Some(parsed),
        Err(message) => {
            diags.push(source.error(&cron.span(), table.field("cron"), message));
            None
        }
    });
    let timezone = match &file.timezone {
        None => Some(chrono_tz::UTC),
        Some(name) => fields::timezone(source, || table.field("timezone"), name, diags),
    };

    let params = fields::params(&table.field("params"), &file.params)
        .into_iter()
        .map(|(key, value, _, _)| (key, value))
        .collect();
    let jitter = fields::duration(
        source,
        || table.field("jitter"),
        &file.jitter,
        Duration::ZERO,
        false,
        diags,
    );
    let approval_ttl = fields::duration(
        source,
        || table.field("approval_ttl"),
        &file.approval_ttl,
        DEFAULT_APPROVAL_TTL,
        true,
        diags,
    );
    let retry = file
        .retry
        .as_ref()
        .and_then(|value| check_retry(source, &table.field("retry"), value, diags));
    let window = file.window.as_ref().and_then(|value| {
        window::check(
            source,
            &table.field("window"),
            value,
            timezone.unwrap_or(chrono_tz::UTC),
            diags,
        )
    });

    let (name, plugin, target, cron, parsed, timezone) =
        (name?, plugin?, target?, cron?, parsed?, timezone?);
    if diags.len() != before {
        return None;
    }
    Some(Checked {
        schedule: Schedule {
            name: name.get_ref().clone(),
            plugin: plugin.get_ref().clone(),
            target: target.get_ref().clone(),
            cron: cron.get_ref().clone(),
            timezone,
            params,
            jitter,
            window,
            dry_run: file.dry_run.unwrap_or(false),
            require_approval: file.require_approval.unwrap_or(false),
            approval_ttl,
            retry,
            catch_up: file.catch_up.unwrap_or_default(),
            source: fields::location(source, &table.span),
            parsed,
        },
        name: (name.span(), table.field("name")),
        target: (target.span(), table.field("target")),
    })
}
