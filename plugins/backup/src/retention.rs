//! Grandfather-father-son retention, as a pure function of the backups in
//! the store, the policy and the time (no host calls), so it is unit-tested
//! on the build host.
//!
//! Only the plugin's own artifacts take part: names of the shape
//! `<prefix><stamp><extension>` (see [`crate::naming`]). Anything else in the
//! store is left alone and listed as ignored.
//!
//! The backups are ordered newest first by their completion time (ties by
//! name, the greater name first), and:
//!
//! - **last N**: the `keep_last` newest good backups are kept;
//! - **daily / weekly / monthly**: for each of the `keep_daily` most recent
//!   UTC days, `keep_weekly` ISO weeks and `keep_monthly` months *that have
//!   good backups* (periods without one are skipped, not counted), the
//!   newest good backup of that period is kept;
//! - **newest good**: the newest good backup is always kept, even when
//!   every `keep_*` is 0;
//! - a backup that is not good (it failed verification) is never kept by
//!   the rules above, so it cannot push a good one out: it is kept while it
//!   is newer than every good backup (for inspection, and because it may
//!   still be the most recent copy there is), and deleted once a newer good
//!   backup exists;
//! - every other good backup is deleted, with the reason each rule did not
//!   keep it.
//!
//! The backup of the current run takes part like any other (the caller
//! includes it). The result is the same whatever the order of the input.

use std::collections::BTreeMap;
use std::fmt;

use crate::{clock, naming};

/// How many backups to keep (the `keep_*` parameters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u64,
    pub keep_daily: u64,
    pub keep_weekly: u64,
    pub keep_monthly: u64,
}

/// One artifact of the store, as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub name: String,
    /// When the dump completed, Unix seconds (UTC).
    pub completed_at: i64,
    /// False when the backup failed verification.
    pub good: bool,
}

/// Why a backup is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// One of the `keep_last` newest good backups (1 = the newest).
    Last { position: u64, keep_last: u64 },
    /// The newest good backup of a UTC day (`2026-11-22`).
    Daily { day: String },
    /// The newest good backup of an ISO week (`2026-W47`).
    Weekly { week: String },
    /// The newest good backup of a month (`2026-11`).
    Monthly { month: String },
    /// The newest good backup, which is never deleted.
    NewestGood,
    /// Failed verification, but newer than every good backup.
    FailedNewerThanGood,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Last {
                position,
                keep_last,
            } => write!(f, "#{position} of the last {keep_last}"),
            KeepReason::Daily { day } => write!(f, "newest of day {day}"),
            KeepReason::Weekly { week } => write!(f, "newest of week {week}"),
            KeepReason::Monthly { month } => write!(f, "newest of month {month}"),
            KeepReason::NewestGood => f.write_str("newest good backup (never deleted)"),
            KeepReason::FailedNewerThanGood => f.write_str(
                "failed verification, but newer than every good backup (kept for inspection)",
            ),
        }
    }
}

/// A backup retention keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub name: String,
    pub completed_at: i64,
    pub good: bool,
    /// Every rule that keeps it, in the order last, daily, weekly, monthly,
    /// newest good.
    pub reasons: Vec<KeepReason>,
}

impl Kept {
    /// `name (reason, reason)`.
    pub fn describe(&self) -> String {
        let reasons: Vec<String> = self.reasons.iter().map(ToString::to_string).collect();
        format!("{} ({})", self.name, reasons.join(", "))
    }
}

/// A backup retention deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub name: String,
    pub completed_at: i64,
    pub good: bool,
    /// Why no rule keeps it, for humans: its age, then each rule.
    pub reason: String,
}

/// What retention decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Newest first.
    pub keep: Vec<Kept>,
    /// Newest first.
    pub delete: Vec<Deletion>,
    /// Names that are not the plugin's artifacts under the prefix (left
    /// alone), sorted.
    pub ignored: Vec<String>,
}

#[cfg(test)]
impl Plan {
    /// True when `name` is kept.
    pub fn keeps(&self, name: &str) -> bool {
        self.keep.iter().any(|k| k.name == name)
    }

    /// True when `name` is deleted.
    pub fn deletes(&self, name: &str) -> bool {
        self.delete.iter().any(|d| d.name == name)
    }
}

/// One periodic rule (daily, weekly, monthly).
struct Periodic {
    /// `day`, `week`, `month`.
    unit: &'static str,
    /// The parameter, for explanations.
    param: &'static str,
    keep: u64,
    label: fn(i64) -> String,
    reason: fn(String) -> KeepReason,
}

/// Decides which of `backups` to keep and which to delete; see the module
/// documentation. `now` (Unix seconds) only dates the explanations.
pub fn plan(prefix: &str, backups: &[Backup], policy: &Policy, now: i64) -> Plan {
    let mut ignored: Vec<String> = Vec::new();
    let mut ours: Vec<&Backup> = Vec::new();
    for backup in backups {
        if naming::parse_artifact_name(prefix, &backup.name).is_none() {
            ignored.push(backup.name.clone());
        } else if !ours.iter().any(|b| b.name == backup.name) {
            ours.push(backup);
        }
    }
    ignored.sort();
    ignored.dedup();
    // Newest first; equal times by name, the greater first.
    ours.sort_by(|a, b| {
        b.completed_at
            .cmp(&a.completed_at)
            .then_with(|| b.name.cmp(&a.name))
    });

    let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); ours.len()];
    let mut why_not: Vec<Vec<String>> = vec![Vec::new(); ours.len()];
    let good: Vec<usize> = (0..ours.len())
        .filter(|&i| ours.get(i).is_some_and(|b| b.good))
        .collect();

    // Last N.
    for (rank, &i) in good.iter().enumerate() {
        let position = u64::try_from(rank).unwrap_or(u64::MAX).saturating_add(1);
        if position <= policy.keep_last {
            push(
                &mut reasons,
                i,
                KeepReason::Last {
                    position,
                    keep_last: policy.keep_last,
                },
            );
        } else if policy.keep_last == 0 {
            push(&mut why_not, i, "keep_last = 0".to_owned());
        } else {
            push(
                &mut why_not,
                i,
                format!("not among the last {}", policy.keep_last),
            );
        }
    }

    // Daily, weekly, monthly.
    let periodic = [
        Periodic {
            unit: "day",
            param: "keep_daily",
            keep: policy.keep_daily,
            label: clock::day_label,
            reason: |day| KeepReason::Daily { day },
        },
        Periodic {
            unit: "week",
            param: "keep_weekly",
            keep: policy.keep_weekly,
            label: clock::week_label,
            reason: |week| KeepReason::Weekly { week },
        },
        Periodic {
            unit: "month",
            param: "keep_monthly",
            keep: policy.keep_monthly,
            label: clock::month_label,
            reason: |month| KeepReason::Monthly { month },
        },
    ];
    for rule in &periodic {
        if rule.keep == 0 {
            for &i in &good {
                push(&mut why_not, i, format!("{} = 0", rule.param));
            }
            continue;
        }
        // Period label → (newest backup's name, whether the period is kept).
        let mut seen: BTreeMap<String, (String, bool)> = BTreeMap::new();
        let mut kept_periods = 0u64;
        for &i in &good {
            let Some(backup) = ours.get(i) else { continue };
            let label = (rule.label)(backup.completed_at);
            match seen.get(&label) {
                Some((newer, true)) => push(
                    &mut why_not,
                    i,
                    format!("{} {label} keeps the newer {newer}", rule.unit),
                ),
                Some((_, false)) => push(
                    &mut why_not,
                    i,
                    format!(
                        "{} {label} is older than the {} most recent {}s with backups",
                        rule.unit, rule.keep, rule.unit
                    ),
                ),
                None => {
                    let keep = kept_periods < rule.keep;
                    if keep {
                        kept_periods += 1;
                        push(&mut reasons, i, (rule.reason)(label.clone()));
                    } else {
                        push(
                            &mut why_not,
                            i,
                            format!(
                                "{} {label} is older than the {} most recent {}s with backups",
                                rule.unit, rule.keep, rule.unit
                            ),
                        );
                    }
                    seen.insert(label, (backup.name.clone(), keep));
                }
            }
        }
    }

    // The newest good backup, whatever the policy.
    let newest_good = good.first().copied();
    if let Some(i) = newest_good {
        push(&mut reasons, i, KeepReason::NewestGood);
    }

    let mut plan = Plan {
        ignored,
        ..Plan::default()
    };
    for (i, backup) in ours.iter().enumerate() {
        let age = clock::age(now.saturating_sub(backup.completed_at));
        let mut kept_by: Vec<KeepReason> =
            reasons.get_mut(i).map(std::mem::take).unwrap_or_default();
        let mut reason = None;
        if !backup.good {
            match newest_good.and_then(|g| ours.get(g).map(|b| (g, b))) {
                Some((g, newer)) if g < i => {
                    reason = Some(format!(
                        "{age} old; failed verification, and the newer {} is good",
                        newer.name
                    ));
                }
                _ => kept_by.push(KeepReason::FailedNewerThanGood),
            }
        } else if kept_by.is_empty() {
            let why = why_not.get(i).map(|w| w.join("; ")).unwrap_or_default();
            reason = Some(format!("{age} old; {why}"));
        }
        match reason {
            Some(reason) => plan.delete.push(Deletion {
                name: backup.name.clone(),
                completed_at: backup.completed_at,
                good: backup.good,
                reason,
            }),
            None => plan.keep.push(Kept {
                name: backup.name.clone(),
                completed_at: backup.completed_at,
                good: backup.good,
                reasons: kept_by,
            }),
        }
    }
    plan
}

fn push<T>(lists: &mut [Vec<T>], i: usize, item: T) {
    if let Some(list) = lists.get_mut(i) {
        list.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{DAY, days_from_civil, rfc3339};

    const HOUR: i64 = 3_600;

    /// Unix seconds of a UTC date and hour.
    fn at(y: i64, m: u32, d: u32, h: i64) -> i64 {
        days_from_civil(y, m, d) * DAY + h * HOUR
    }

    /// 2026-11-22 (a Sunday) 03:00 UTC.
    fn now() -> i64 {
        at(2026, 11, 22, 3)
    }

    fn backup(prefix: &str, t: i64) -> Backup {
        Backup {
            name: naming::artifact_name(prefix, t, ".dump"),
            completed_at: t,
            good: true,
        }
    }

    fn bad(prefix: &str, t: i64) -> Backup {
        Backup {
            good: false,
            ..backup(prefix, t)
        }
    }

    fn policy(last: u64, daily: u64, weekly: u64, monthly: u64) -> Policy {
        Policy {
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
        }
    }

    fn kept_names(plan: &Plan) -> Vec<String> {
        plan.keep.iter().map(|k| k.name.clone()).collect()
    }

    fn deleted_names(plan: &Plan) -> Vec<String> {
        plan.delete.iter().map(|d| d.name.clone()).collect()
    }

    fn name(t: i64) -> String {
        naming::artifact_name("", t, ".dump")
    }

    /// Every input name lands in exactly one of keep, delete, ignored.
    fn assert_partition(input: &[Backup], plan: &Plan) {
        let mut all: Vec<String> = kept_names(plan);
        all.extend(deleted_names(plan));
        all.extend(plan.ignored.iter().cloned());
        all.sort();
        let mut expected: Vec<String> = input.iter().map(|b| b.name.clone()).collect();
        expected.sort();
        expected.dedup();
        assert_eq!(all, expected);
    }

    #[test]
    fn empty_store_plans_nothing() {
        assert_eq!(plan("", &[], &policy(7, 7, 4, 6), now()), Plan::default());
    }

    #[test]
    fn keeps_the_last_n() {
        let input: Vec<Backup> = (0..10).map(|h| backup("", now() - h * HOUR)).collect();
        let p = plan("", &input, &policy(3, 0, 0, 0), now());
        assert_eq!(
            kept_names(&p),
            [name(now()), name(now() - HOUR), name(now() - 2 * HOUR)]
        );
        assert_eq!(p.delete.len(), 7);
        assert_eq!(
            p.keep[0].reasons,
            [
                KeepReason::Last {
                    position: 1,
                    keep_last: 3
                },
                KeepReason::NewestGood
            ]
        );
        assert_eq!(
            p.keep[2].reasons,
            [KeepReason::Last {
                position: 3,
                keep_last: 3
            }]
        );
        let reason = &p.delete[0].reason;
        assert!(
            reason.starts_with("3 h old; not among the last 3"),
            "{reason}"
        );
        assert!(reason.contains("keep_daily = 0"), "{reason}");
        assert_partition(&input, &p);
    }

    #[test]
    fn daily_keeps_the_newest_of_each_recent_day() {
        // Three backups a day (01:00, 09:00, 17:00) on 2026-11-17..=21.
        let mut input = Vec::new();
        for d in 17..=21 {
            for h in [1, 9, 17] {
                input.push(backup("", at(2026, 11, d, h)));
            }
        }
        let p = plan("", &input, &policy(0, 3, 0, 0), now());
        assert_eq!(
            kept_names(&p),
            [
                name(at(2026, 11, 21, 17)),
                name(at(2026, 11, 20, 17)),
                name(at(2026, 11, 19, 17))
            ]
        );
        assert_eq!(
            p.keep[1].reasons,
            [KeepReason::Daily {
                day: "2026-11-20".into()
            }]
        );
        let same_day = p
            .delete
            .iter()
            .find(|d| d.name == name(at(2026, 11, 20, 9)))
            .map(|d| d.reason.clone())
            .unwrap_or_default();
        assert!(
            same_day.contains(&format!(
                "day 2026-11-20 keeps the newer {}",
                name(at(2026, 11, 20, 17))
            )),
            "{same_day}"
        );
        let old_day = p
            .delete
            .iter()
            .find(|d| d.name == name(at(2026, 11, 17, 17)))
            .map(|d| d.reason.clone())
            .unwrap_or_default();
        assert!(
            old_day.contains("day 2026-11-17 is older than the 3 most recent days with backups"),
            "{old_day}"
        );
        assert_eq!(p.delete.len(), 12);
        assert_partition(&input, &p);
    }

    #[test]
    fn periods_without_backups_are_skipped() {
        let days = [(11, 1), (11, 3), (11, 10), (11, 20)];
        let input: Vec<Backup> = days
            .iter()
            .map(|&(m, d)| backup("", at(2026, m, d, 2)))
            .collect();
        let p = plan("", &input, &policy(0, 3, 0, 0), now());
        assert_eq!(
            kept_names(&p),
            [
                name(at(2026, 11, 20, 2)),
                name(at(2026, 11, 10, 2)),
                name(at(2026, 11, 3, 2))
            ]
        );
        assert_eq!(deleted_names(&p), [name(at(2026, 11, 1, 2))]);
    }

    #[test]
    fn weekly_uses_iso_weeks() {
        // Sunday 2026-11-22 and Monday 2026-11-16 are in week 47, Sunday
        // 2026-11-15 in week 46; 2021-01-03 is in 2020-W53.
        let input = vec![
            backup("", at(2026, 11, 22, 1)),
            backup("", at(2026, 11, 16, 1)),
            backup("", at(2026, 11, 15, 23)),
            backup("", at(2026, 11, 9, 1)),
            backup("", at(2021, 1, 4, 1)),
            backup("", at(2021, 1, 3, 1)),
        ];
        let p = plan("", &input, &policy(0, 0, 10, 0), now());
        assert_eq!(
            kept_names(&p),
            [
                name(at(2026, 11, 22, 1)),
                name(at(2026, 11, 15, 23)),
                name(at(2021, 1, 4, 1)),
                name(at(2021, 1, 3, 1))
            ]
        );
        assert_eq!(
            p.keep[1].reasons,
            [KeepReason::Weekly {
                week: "2026-W46".into()
            }]
        );
        assert_eq!(
            p.keep[3].reasons,
            [KeepReason::Weekly {
                week: "2020-W53".into()
            }]
        );
        assert_eq!(
            deleted_names(&p),
            [name(at(2026, 11, 16, 1)), name(at(2026, 11, 9, 1))]
        );
    }

    #[test]
    fn monthly_keeps_the_newest_of_each_month() {
        let input = vec![
            backup("", at(2026, 11, 2, 1)),
            backup("", at(2026, 10, 31, 23)),
            backup("", at(2026, 10, 1, 0)),
            backup("", at(2026, 8, 15, 0)),
            backup("", at(2026, 3, 15, 0)),
        ];
        let p = plan("", &input, &policy(0, 0, 0, 3), now());
        assert_eq!(
            kept_names(&p),
            [
                name(at(2026, 11, 2, 1)),
                name(at(2026, 10, 31, 23)),
                name(at(2026, 8, 15, 0))
            ]
        );
        assert_eq!(
            p.keep[2].reasons,
            [KeepReason::Monthly {
                month: "2026-08".into()
            }]
        );
        assert_eq!(
            deleted_names(&p),
            [name(at(2026, 10, 1, 0)), name(at(2026, 3, 15, 0))]
        );
    }

    #[test]
    fn grandfather_father_son_over_ninety_days() {
        // One backup a day at 02:00, 2026-08-25 ..= 2026-11-22.
        let first = days_from_civil(2026, 8, 25);
        let input: Vec<Backup> = (0..90)
            .map(|d| backup("", (first + d) * DAY + 2 * HOUR))
            .collect();
        let p = plan("", &input, &policy(7, 7, 4, 6), now());
        let mut expected: Vec<String> = (16..=22).rev().map(|d| name(at(2026, 11, d, 2))).collect();
        expected.extend([
            name(at(2026, 11, 15, 2)), // week 46
            name(at(2026, 11, 8, 2)),  // week 45
            name(at(2026, 11, 1, 2)),  // week 44
            name(at(2026, 10, 31, 2)), // October
            name(at(2026, 9, 30, 2)),  // September
            name(at(2026, 8, 31, 2)),  // August (only 4 months have backups)
        ]);
        assert_eq!(kept_names(&p), expected);
        assert_eq!(p.delete.len(), 90 - expected.len());
        assert_eq!(
            p.keep[0].reasons,
            [
                KeepReason::Last {
                    position: 1,
                    keep_last: 7
                },
                KeepReason::Daily {
                    day: "2026-11-22".into()
                },
                KeepReason::Weekly {
                    week: "2026-W47".into()
                },
                KeepReason::Monthly {
                    month: "2026-11".into()
                },
                KeepReason::NewestGood,
            ]
        );
        assert_partition(&input, &p);
        // Running retention again on what is kept deletes nothing more.
        let survivors: Vec<Backup> = input.iter().filter(|b| p.keeps(&b.name)).cloned().collect();
        let again = plan("", &survivors, &policy(7, 7, 4, 6), now());
        assert!(again.delete.is_empty(), "{:?}", again.delete);
    }

    #[test]
    fn never_deletes_the_newest_good_backup() {
        let input: Vec<Backup> = (0..5).map(|d| backup("", now() - d * DAY)).collect();
        let p = plan("", &input, &policy(0, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [name(now())]);
        assert_eq!(p.keep[0].reasons, [KeepReason::NewestGood]);
        assert_eq!(p.delete.len(), 4);
        assert!(
            p.delete[0]
                .reason
                .contains("keep_last = 0; keep_daily = 0; keep_weekly = 0; keep_monthly = 0"),
            "{}",
            p.delete[0].reason
        );
        // A single backup survives any policy.
        let one = plan("", &input[2..3], &policy(0, 0, 0, 0), now());
        assert_eq!(kept_names(&one), [name(now() - 2 * DAY)]);
    }

    #[test]
    fn a_failed_fresh_backup_does_not_displace_the_newest_good_one() {
        let input = vec![
            bad("", now()),
            backup("", now() - DAY),
            backup("", now() - 2 * DAY),
        ];
        let p = plan("", &input, &policy(1, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [name(now()), name(now() - DAY)]);
        assert_eq!(p.keep[0].reasons, [KeepReason::FailedNewerThanGood]);
        assert!(!p.keep[0].good);
        assert_eq!(
            p.keep[1].reasons,
            [
                KeepReason::Last {
                    position: 1,
                    keep_last: 1
                },
                KeepReason::NewestGood
            ]
        );
        assert_eq!(deleted_names(&p), [name(now() - 2 * DAY)]);

        // Even with every keep_* at 0.
        let p = plan("", &input, &policy(0, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [name(now()), name(now() - DAY)]);
    }

    #[test]
    fn failed_backups_do_not_count_and_go_once_superseded() {
        let input = vec![
            backup("", now()),
            bad("", now() - HOUR),
            bad("", now() - 2 * HOUR),
            backup("", now() - 3 * HOUR),
            backup("", now() - 4 * HOUR),
        ];
        let p = plan("", &input, &policy(3, 0, 0, 0), now());
        assert_eq!(
            kept_names(&p),
            [name(now()), name(now() - 3 * HOUR), name(now() - 4 * HOUR)]
        );
        assert_eq!(
            deleted_names(&p),
            [name(now() - HOUR), name(now() - 2 * HOUR)]
        );
        assert!(
            p.delete[0].reason.contains(&format!(
                "failed verification, and the newer {} is good",
                name(now())
            )),
            "{}",
            p.delete[0].reason
        );
        assert!(!p.delete[0].good);
    }

    #[test]
    fn with_no_good_backup_nothing_is_deleted() {
        let input: Vec<Backup> = (0..4).map(|d| bad("", now() - d * DAY)).collect();
        let p = plan("", &input, &policy(1, 1, 1, 1), now());
        assert_eq!(p.keep.len(), 4);
        assert!(p.delete.is_empty());
        assert!(
            p.keep
                .iter()
                .all(|k| k.reasons == [KeepReason::FailedNewerThanGood])
        );
    }

    #[test]
    fn foreign_artifacts_are_left_alone() {
        let input = vec![
            backup("nightly/", now()),
            backup("nightly/", now() - DAY),
            backup("weekly/", now() - 2 * DAY),
            backup("", now() - 3 * DAY),
            Backup {
                name: "nightly/manual-before-upgrade.dump".into(),
                completed_at: now() - 10 * DAY,
                good: true,
            },
            Backup {
                name: "nightly/2026-11-01T00-00-00Z.tar".into(),
                completed_at: now() - 20 * DAY,
                good: true,
            },
        ];
        let p = plan("nightly/", &input, &policy(1, 0, 0, 0), now());
        assert_eq!(
            kept_names(&p),
            [naming::artifact_name("nightly/", now(), ".dump")]
        );
        assert_eq!(
            deleted_names(&p),
            [naming::artifact_name("nightly/", now() - DAY, ".dump")]
        );
        assert_eq!(
            p.ignored,
            [
                name(now() - 3 * DAY),
                "nightly/2026-11-01T00-00-00Z.tar".to_owned(),
                "nightly/manual-before-upgrade.dump".to_owned(),
                naming::artifact_name("weekly/", now() - 2 * DAY, ".dump"),
            ]
        );
        assert_partition(&input, &p);
    }

    #[test]
    fn every_extension_of_the_scheme_takes_part() {
        let t = now() - DAY;
        let input = vec![
            backup("", now()),
            Backup {
                name: naming::artifact_name("", t, ""),
                completed_at: t,
                good: true,
            },
            Backup {
                name: naming::artifact_name("", t - DAY, ".sqlite"),
                completed_at: t - DAY,
                good: true,
            },
        ];
        let p = plan("", &input, &policy(1, 0, 0, 0), now());
        assert!(p.ignored.is_empty());
        assert_eq!(p.delete.len(), 2);
    }

    #[test]
    fn order_is_by_completion_time_then_name() {
        // The stamp in the name says nothing: completed_at decides.
        let late = Backup {
            name: naming::artifact_name("", now() - 5 * DAY, ".dump"),
            completed_at: now(),
            good: true,
        };
        let early = Backup {
            name: naming::artifact_name("", now() - HOUR, ".dump"),
            completed_at: now() - 2 * HOUR,
            good: true,
        };
        let p = plan("", &[early, late.clone()], &policy(1, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [late.name]);

        // Equal times: the greater name is the newer, whatever the input order.
        let t = now() - DAY;
        let a = Backup {
            name: naming::artifact_name("", t, ".dump"),
            completed_at: t,
            good: true,
        };
        let b = Backup {
            name: naming::artifact_name("", t, ".sqlite"),
            completed_at: t,
            good: true,
        };
        let c = Backup {
            name: naming::artifact_name("", t, ""),
            completed_at: t,
            good: true,
        };
        let orders = [
            vec![a.clone(), b.clone(), c.clone()],
            vec![c.clone(), a.clone(), b.clone()],
            vec![b.clone(), c.clone(), a.clone()],
        ];
        let plans: Vec<Plan> = orders
            .iter()
            .map(|input| plan("", input, &policy(1, 1, 0, 0), now()))
            .collect();
        assert_eq!(kept_names(&plans[0]), std::slice::from_ref(&b.name));
        assert_eq!(deleted_names(&plans[0]), [a.name, c.name]);
        assert!(plans.iter().all(|p| *p == plans[0]));
        let reason = &plans[0].delete[0].reason;
        assert!(
            reason.contains(&format!(
                "day {} keeps the newer {}",
                clock::day_label(t),
                b.name
            )),
            "{reason}"
        );
    }

    #[test]
    fn the_fresh_backup_counts() {
        let mut input: Vec<Backup> = (1..=3).map(|d| backup("", now() - d * DAY)).collect();
        let before = plan("", &input, &policy(2, 0, 0, 0), now());
        assert_eq!(
            kept_names(&before),
            [name(now() - DAY), name(now() - 2 * DAY)]
        );
        input.push(backup("", now()));
        let after = plan("", &input, &policy(2, 0, 0, 0), now());
        assert_eq!(kept_names(&after), [name(now()), name(now() - DAY)]);
        assert_eq!(
            deleted_names(&after),
            [name(now() - 2 * DAY), name(now() - 3 * DAY)]
        );
    }

    #[test]
    fn duplicates_are_considered_once() {
        let input = vec![
            backup("", now()),
            backup("", now()),
            backup("", now() - DAY),
        ];
        let p = plan("", &input, &policy(5, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [name(now()), name(now() - DAY)]);
        assert!(p.delete.is_empty());
    }

    #[test]
    fn reasons_read_well() {
        let k = Kept {
            name: "x.dump".into(),
            completed_at: 0,
            good: true,
            reasons: vec![
                KeepReason::Last {
                    position: 2,
                    keep_last: 7,
                },
                KeepReason::Weekly {
                    week: "2026-W47".into(),
                },
            ],
        };
        assert_eq!(
            k.describe(),
            "x.dump (#2 of the last 7, newest of week 2026-W47)"
        );
        assert_eq!(
            KeepReason::NewestGood.to_string(),
            "newest good backup (never deleted)"
        );
    }

    /// Invariants over many pseudo-random stores and policies.
    #[test]
    fn invariants_hold_for_random_stores() {
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n.max(1)
        };
        for _ in 0..300 {
            let count = next(40);
            let input: Vec<Backup> = (0..count)
                .map(|_| {
                    let t = now() - i64::try_from(next(400 * 24)).unwrap_or(0) * HOUR;
                    Backup {
                        name: name(t),
                        completed_at: t,
                        good: next(5) != 0,
                    }
                })
                .collect();
            let pol = policy(next(5), next(8), next(5), next(7));
            let p = plan("", &input, &pol, now());
            assert_partition(&input, &p);
            let mut unique = input.clone();
            unique.sort_by(|a, b| (b.completed_at, &b.name).cmp(&(a.completed_at, &a.name)));
            unique.dedup_by(|a, b| a.name == b.name);
            if let Some(newest_good) = unique.iter().find(|b| b.good) {
                assert!(
                    p.keeps(&newest_good.name),
                    "{}",
                    rfc3339(newest_good.completed_at)
                );
                // Failed backups older than the newest good one are gone.
                assert!(
                    unique
                        .iter()
                        .filter(|b| !b.good && b.completed_at < newest_good.completed_at)
                        .all(|b| p.deletes(&b.name))
                );
            } else {
                assert!(p.delete.is_empty());
            }
            let kept_good = p.keep.iter().filter(|k| k.good).count();
            let bound = pol.keep_last + pol.keep_daily + pol.keep_weekly + pol.keep_monthly + 1;
            assert!(u64::try_from(kept_good).unwrap_or(u64::MAX) <= bound);
            // Kept and deleted are newest first.
            assert!(
                p.keep
                    .windows(2)
                    .all(|w| w[0].completed_at >= w[1].completed_at)
            );
            assert!(
                p.delete
                    .windows(2)
                    .all(|w| w[0].completed_at >= w[1].completed_at)
            );
            // Each kept backup has a reason, and each good kept one a rule.
            assert!(p.keep.iter().all(|k| !k.reasons.is_empty()));
        }
    }
}
