//! UTC calendar arithmetic on Unix seconds, without a date library: civil
//! dates (proleptic Gregorian), ISO weeks, RFC 3339 parsing and the
//! `2026-11-22T10-15-00Z` stamp of artifact names. Pure functions, tested on
//! the build host.

/// Seconds in a day.
pub const DAY: i64 = 86_400;

/// A UTC date and time of day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are within 1..=31 and 1..=12 by construction.
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl DateTime {
    /// The date and time of Unix seconds.
    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(DAY);
        let rest = secs.rem_euclid(DAY);
        let (year, month, day) = civil_from_days(days);
        let part = |n: i64| u32::try_from(n).unwrap_or(0);
        DateTime {
            year,
            month,
            day,
            hour: part(rest / 3_600),
            minute: part(rest % 3_600 / 60),
            second: part(rest % 60),
        }
    }

    /// Unix seconds, or `None` when a field is out of range.
    pub fn to_unix(self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || self.day == 0
            || self.day > days_in_month(self.year, self.month)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        // A leap second (`:60`) counts as the next second.
        Some(
            days * DAY
                + i64::from(self.hour) * 3_600
                + i64::from(self.minute) * 60
                + i64::from(self.second),
        )
    }
}

/// `2026-11-22` (UTC) of Unix seconds.
pub fn day_label(secs: i64) -> String {
    let t = DateTime::from_unix(secs);
    format!("{:04}-{:02}-{:02}", t.year, t.month, t.day)
}

/// `2026-11` (UTC) of Unix seconds.
pub fn month_label(secs: i64) -> String {
    let t = DateTime::from_unix(secs);
    format!("{:04}-{:02}", t.year, t.month)
}

/// The ISO 8601 week (week-numbering year, week 1..=53) of a day count:
/// weeks start on Monday and week 1 holds the year's first Thursday.
pub fn iso_week(days: i64) -> (i64, u32) {
    // 1970-01-01 was a Thursday: Monday = 0 .. Sunday = 6.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, u32::try_from(week).unwrap_or(1))
}

/// `2026-W47` (UTC) of Unix seconds.
pub fn week_label(secs: i64) -> String {
    let (year, week) = iso_week(secs.div_euclid(DAY));
    format!("{year:04}-W{week:02}")
}

/// `2026-11-22T10:15:00Z` of Unix seconds.
#[cfg(test)]
pub fn rfc3339(secs: i64) -> String {
    let t = DateTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// The stamp of an artifact name, `2026-11-22T10-15-00Z`: RFC 3339 in UTC
/// with `-` for `:` (artifact names allow only `[A-Za-z0-9._-]`), so names
/// sort by time.
pub fn name_stamp(secs: i64) -> String {
    let t = DateTime::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// The length of a [`name_stamp`] (years 0000..=9999).
pub const NAME_STAMP_LEN: usize = 20;

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a [`name_stamp`] exactly (`2026-11-22T10-15-00Z`, nothing more).
pub fn parse_name_stamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != NAME_STAMP_LEN
        || [b[4], b[7], b[13], b[16]] != [b'-'; 4]
        || b[10] != b'T'
        || b[19] != b'Z'
    {
        return None;
    }
    DateTime {
        year: i64::from(digits(s.get(0..4)?)?),
        month: digits(s.get(5..7)?)?,
        day: digits(s.get(8..10)?)?,
        hour: digits(s.get(11..13)?)?,
        minute: digits(s.get(14..16)?)?,
        second: digits(s.get(17..19)?)?,
    }
    .to_unix()
}

/// Parses RFC 3339 (`2026-11-22T10:15:00Z`, `2026-11-22T10:15:00.123456+02:00`,
/// `t` or a space for `T`, `z` for `Z`) into Unix seconds (UTC, the fraction
/// dropped).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let s = text.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let local = DateTime {
        year: i64::from(digits(s.get(0..4)?)?),
        month: digits(s.get(5..7)?)?,
        day: digits(s.get(8..10)?)?,
        hour: digits(s.get(11..13)?)?,
        minute: digits(s.get(14..16)?)?,
        second: digits(s.get(17..19)?)?,
    }
    .to_unix()?;
    let mut rest = s.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if len == 0 {
            return None;
        }
        rest = fraction.get(len..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, minutes) = rest.get(1..)?.split_once(':')?;
            if hours.len() != 2 || minutes.len() != 2 {
                return None;
            }
            let (hours, minutes) = (digits(hours)?, digits(minutes)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (i64::from(hours) * 3_600 + i64::from(minutes) * 60)
        }
    };
    Some(local - offset)
}

/// A duration in whole units for humans: `45 s`, `3 min`, `5 h`, `12 days`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 120 {
        format!("{secs} s")
    } else if secs < 2 * 3_600 {
        format!("{} min", secs / 60)
    } else if secs < 2 * DAY {
        format!("{} h", secs / 3_600)
    } else {
        format!("{} days", secs / DAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22T10:15:00Z.
    const T: i64 = 1_795_342_500;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }

    #[test]
    fn date_time_fields() {
        let t = DateTime::from_unix(T);
        assert_eq!(
            t,
            DateTime {
                year: 2026,
                month: 11,
                day: 22,
                hour: 10,
                minute: 15,
                second: 0
            }
        );
        assert_eq!(t.to_unix(), Some(T));
        assert_eq!(rfc3339(T), "2026-11-22T10:15:00Z");
        assert_eq!(DateTime { day: 31, ..t }.to_unix(), None);
        assert_eq!(
            DateTime {
                month: 2,
                day: 29,
                ..t
            }
            .to_unix(),
            None
        );
    }

    #[test]
    fn stamps() {
        assert_eq!(name_stamp(T), "2026-11-22T10-15-00Z");
        assert_eq!(name_stamp(T).len(), NAME_STAMP_LEN);
        assert_eq!(parse_name_stamp("2026-11-22T10-15-00Z"), Some(T));
        assert_eq!(parse_name_stamp("2026-11-22T10:15:00Z"), None);
        assert_eq!(parse_name_stamp("2026-11-22T10-15-00"), None);
        assert_eq!(parse_name_stamp("2026-13-22T10-15-00Z"), None);
        assert_eq!(parse_name_stamp("2026-11-22T10-15-00Z "), None);
        assert_eq!(parse_name_stamp("2026-1a-22T10-15-00Z"), None);
        assert_eq!(parse_name_stamp("+026-11-22T10-15-00Z"), None);
    }

    #[test]
    fn rfc3339_parsing() {
        assert_eq!(parse_rfc3339("2026-11-22T10:15:00Z"), Some(T));
        assert_eq!(parse_rfc3339("2026-11-22t10:15:00.999999z"), Some(T));
        assert_eq!(parse_rfc3339("2026-11-22 12:15:00+02:00"), Some(T));
        assert_eq!(parse_rfc3339("2026-11-22T05:45:00.5-04:30"), Some(T));
        assert_eq!(parse_rfc3339(" 2026-11-22T10:15:00+00:00 "), Some(T));
        assert_eq!(parse_rfc3339("2026-11-22T10:15:00"), None);
        assert_eq!(parse_rfc3339("2026-11-22T10:15:00.Z"), None);
        assert_eq!(parse_rfc3339("2026-11-22T10:15:00+0200"), None);
        assert_eq!(parse_rfc3339("2026-11-31T10:15:00Z"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(parse_rfc3339(""), None);
    }

    #[test]
    fn iso_weeks() {
        let week = |y, m, d| iso_week(days_from_civil(y, m, d));
        assert_eq!(week(2026, 11, 22), (2026, 47)); // a Sunday
        assert_eq!(week(2026, 11, 23), (2026, 48)); // the next Monday
        assert_eq!(week(2021, 1, 3), (2020, 53)); // Sunday in the last week of 2020
        assert_eq!(week(2021, 1, 4), (2021, 1));
        assert_eq!(week(2024, 12, 30), (2025, 1)); // Monday in week 1 of 2025
        assert_eq!(week(2026, 1, 1), (2026, 1)); // a Thursday
        assert_eq!(week_label(T), "2026-W47");
        assert_eq!(day_label(T), "2026-11-22");
        assert_eq!(month_label(T), "2026-11");
    }

    #[test]
    fn ages() {
        assert_eq!(age(-5), "0 s");
        assert_eq!(age(90), "90 s");
        assert_eq!(age(600), "10 min");
        assert_eq!(age(5 * 3_600), "5 h");
        assert_eq!(age(12 * DAY + 5), "12 days");
    }
}
