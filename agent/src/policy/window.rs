//! `window = { ... }` of a `[[schedule]]` or `[[rule]]`: when runs are
//! allowed (a maintenance window).

use chrono::{DateTime, NaiveTime, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use super::fields;
use crate::config::document::{Source, push_key};
use crate::diag::Diagnostics;

/// A `window` inline table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowFile {
    /// The days the window opens, like `["mon", "tue"]` (or full names, any
    /// case). Default: every day.
    days: Option<Spanned<Vec<Spanned<String>>>>,
    /// When it opens, like `"01:00"`. Required.
    start: Option<Spanned<String>>,
    /// When it closes, like `"05:00"`: before `start`, the window crosses
    /// midnight; equal to `start`, it lasts the whole day. Required.
    end: Option<Spanned<String>>,
    /// The time zone of `start` and `end`, like `"Europe/Berlin"`. Default:
    /// the schedule's, or UTC for a rule.
    timezone: Option<Spanned<String>>,
}

/// When runs are allowed: from `start` to `end` on `days`, in `timezone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The days the window opens (the day it starts, for one crossing
    /// midnight); empty for every day.
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    /// Before `start`, the window crosses midnight and ends the next day;
    /// equal to `start`, the window lasts the whole day.
    pub end: NaiveTime,
    pub timezone: Tz,
}

impl Window {
    /// True if `at` is in the window: from `start` (included) to `end`
    /// (excluded), on a day of `days`, on the wall clock of `timezone`.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone);
        let time = local.time();
        let day = chrono::Datelike::weekday(&local);
        if self.start < self.end {
            self.on(day) && self.start <= time && time < self.end
        } else if self.end < self.start {
            if time >= self.start {
                self.on(day)
            } else {
                time < self.end && self.on(day.pred())
            }
        } else {
            self.on(day)
        }
    }

    /// True if the window opens on `day`.
    fn on(&self, day: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }

    /// Like `"mon,tue 01:00-05:00 Europe/Berlin"`, or `"daily 22:00-02:00
    /// UTC"` for every day.
    pub fn describe(&self) -> String {
        let days = if self.days.is_empty() {
            "daily".to_owned()
        } else {
            let names: Vec<&str> = self.days.iter().map(|day| day_name(*day)).collect();
            names.join(",")
        };
        format!(
            "{days} {}-{} {}",
            format_time(self.start),
            format_time(self.end),
            self.timezone.name()
        )
    }
}

/// `"01:00"`, or `"01:00:30"` with seconds.
fn format_time(time: NaiveTime) -> String {
    if time.second() == 0 {
        time.format("%H:%M").to_string()
    } else {
        time.format("%H:%M:%S").to_string()
    }
}

/// `mon` ... `sun`.
fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// A day by its short or full English name, in any case.
fn parse_day(name: &str) -> Option<Weekday> {
    const DAYS: [(&str, &str, Weekday); 7] = [
        ("mon", "monday", Weekday::Mon),
        ("tue", "tuesday", Weekday::Tue),
        ("wed", "wednesday", Weekday::Wed),
        ("thu", "thursday", Weekday::Thu),
        ("fri", "friday", Weekday::Fri),
        ("sat", "saturday", Weekday::Sat),
        ("sun", "sunday", Weekday::Sun),
    ];
    let name = name.trim().to_ascii_lowercase();
    DAYS.iter()
        .find(|(short, full, _)| name == *short || name == *full)
        .map(|(_, _, day)| *day)
}

/// A time of day written `"HH:MM"` or `"HH:MM:SS"`.
fn parse_time(text: &str) -> Option<NaiveTime> {
    let text = text.trim();
    NaiveTime::parse_from_str(text, "%H:%M")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M:%S"))
        .ok()
}

/// Checks a `window` (at field path `path`, like `schedule[0].window`);
/// `default_timezone` applies when it names none. `None` if something was
/// reported.
pub(super) fn check(
    source: Source<'_>,
    path: &str,
    value: &Spanned<WindowFile>,
    default_timezone: Tz,
    diags: &mut Diagnostics,
) -> Option<Window> {
    let file = value.get_ref();
    let field = |name: &str| push_key(path.to_owned(), name);
    let before = diags.len();

    let mut days = Vec::new();
    if let Some(list) = &file.days {
        for (i, day) in list.get_ref().iter().enumerate() {
            match parse_day(day.get_ref()) {
                Some(parsed) if !days.contains(&parsed) => days.push(parsed),
                Some(_) => {}
                None => diags.push(source.error(
                    &day.span(),
                    format!("{}[{i}]", field("days")),
                    format!(
                        "unknown day {:?}: use `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`",
                        day.get_ref()
                    ),
                )),
            }
        }
    }

    let time_of = |name: &str, slot: &Option<Spanned<String>>, diags: &mut Diagnostics| {
        let Some(slot) = slot else {
            diags.push(source.error(
                &value.span(),
                field(name),
                format!("missing field `{name}`"),
            ));
            return None;
        };
        let parsed = parse_time(slot.get_ref());
        if parsed.is_none() {
            diags.push(source.error(
                &slot.span(),
                field(name),
                format!(
                    "invalid time {:?}: expected a time of day like \"01:00\" or \"23:30:00\"",
                    slot.get_ref()
                ),
            ));
        }
        parsed
    };
    let start = time_of("start", &file.start, diags);
    let end = time_of("end", &file.end, diags);

    let timezone = match &file.timezone {
        None => Some(default_timezone),
        Some(name) => fields::timezone(source, || field("timezone"), name, diags),
    };

    if diags.len() != before {
        return None;
    }
    Some(Window {
        days,
        start: start?,
        end: end?,
        timezone: timezone?,
    })
}
