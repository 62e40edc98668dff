//! Grandfather-father-son retention, as a pure function of the backups in
//! the store, the policy and the time (no host calls), so it is unit-tested
//! on the build host.
//!
//! Only the plugin's own artifacts take part: names of the shape
//! `<prefix><stamp><extension>` (see [`crate::naming`]). Anything else in the
//! store is left alone and listed as ignored.
//!
//! Each backup has a [`Health`]: **verified** (it passed every check asked
//! for when it was made), **unverified** (its checksums matched, but the
//! restore test could not run or did not match: nothing says the artifact is
//! damaged) or **damaged** (checksum mismatch, unreadable). Only damage
//! counts a backup out; an unverified backup counts like a verified one.
//!
//! The backups are ordered newest first by their completion time (ties by
//! name, the greater name first), and:
//!
//! - **last N**: the `keep_last` newest backups that are not damaged are
//!   kept;
//! - **daily / weekly / monthly**: for each of the `keep_daily` most recent
//!   UTC days, `keep_weekly` ISO weeks and `keep_monthly` months *that have
//!   backups that are not damaged* (periods without one are skipped, not
//!   counted), the newest such backup of that period is kept;
//! - **newest verified**: the newest verified backup is always kept, even
//!   when every `keep_*` is 0;
//! - **min_keep**: whatever the rules above say, the `min_keep` newest
//!   backups that are not damaged are kept (a floor no rule goes below);
//! - **a newer verified backup first**: a backup is deleted only when a
//!   newer backup has completed and verified, and only when the newest
//!   backup of all is verified: while the newest backup failed or could not
//!   be verified, nothing is deleted;
//! - a damaged backup is never kept by the rules above, so it cannot push a
//!   good one out: it is kept until a newer verified backup exists (for
//!   inspection, and because it may still be the most recent copy there
//!   is), then deleted;
//! - every other backup is deleted, with the reason each rule did not keep
//!   it.
//!
//! The backup of the current run takes part like any other (the caller
//! includes it). The result is the same whatever the order of the input.

use std::collections::BTreeMap;
use std::fmt;

use crate::{clock, naming};

/// How many backups to keep (the `keep_*` and `min_keep` parameters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub keep_last: u64,
    pub keep_daily: u64,
    pub keep_weekly: u64,
    pub keep_monthly: u64,
    /// The floor: at least this many backups that are not damaged stay.
    pub min_keep: u64,
}

/// What verification says about a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Passed every check asked for when it was made.
    Verified,
    /// Its checksums matched, but the restore test could not run (or did
    /// not finish, or its counts differed): not known to be damaged, so it
    /// counts like a verified backup, but it does not allow deleting older
    /// ones.
    Unverified,
    /// Checksum mismatch or unreadable: it no longer counts as a backup.
    Damaged,
}

impl Health {
    /// Not damaged.
    pub fn counts(self) -> bool {
        self != Health::Damaged
    }

    pub fn name(self) -> &'static str {
        match self {
            Health::Verified => "verified",
            Health::Unverified => "unverified",
            Health::Damaged => "damaged",
        }
    }
}

/// One artifact of the store, as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub name: String,
    /// When the dump completed, Unix seconds (UTC).
    pub completed_at: i64,
    pub health: Health,
}

/// Why a backup is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepReason {
    /// One of the `keep_last` newest backups (1 = the newest).
    Last { position: u64, keep_last: u64 },
    /// The newest backup of a UTC day (`2026-11-22`).
    Daily { day: String },
    /// The newest backup of an ISO week (`2026-W47`).
    Weekly { week: String },
    /// The newest backup of a month (`2026-11`).
    Monthly { month: String },
    /// The newest verified backup, which is never deleted.
    NewestVerified,
    /// One of the `min_keep` newest backups that are not damaged, kept by
    /// the floor when no other rule keeps it.
    MinKeep { position: u64, min_keep: u64 },
    /// No rule keeps it, but the newest backup (named) is not verified, so
    /// nothing is deleted.
    NewestNotVerified { newest: String, health: Health },
    /// Damaged, but no newer verified backup exists.
    DamagedNoNewerVerified,
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
            KeepReason::NewestVerified => f.write_str("newest verified backup (never deleted)"),
            KeepReason::MinKeep { position, min_keep } => {
                write!(f, "#{position} of min_keep = {min_keep} (the floor)")
            }
            KeepReason::NewestNotVerified { newest, health } => write!(
                f,
                "no rule keeps it, but the newest backup {newest} is {}: nothing is deleted until the newest backup verifies",
                health.name()
            ),
            KeepReason::DamagedNoNewerVerified => {
                f.write_str("damaged, but no newer backup has verified (kept for inspection)")
            }
        }
    }
}

/// A backup retention keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    pub name: String,
    pub completed_at: i64,
    pub health: Health,
    /// Every rule that keeps it, in the order last, daily, weekly, monthly,
    /// newest verified, then the floor and the holds.
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
    pub health: Health,
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
impl Kept {
    /// True when no rule keeps it and only a hold (no newer verified
    /// backup, newest not verified) does.
    pub fn held(&self) -> bool {
        self.reasons.iter().all(|r| {
            matches!(
                r,
                KeepReason::NewestNotVerified { .. } | KeepReason::DamagedNoNewerVerified
            )
        })
    }
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
    // The backups that count: not damaged.
    let good: Vec<usize> = (0..ours.len())
        .filter(|&i| ours.get(i).is_some_and(|b| b.health.counts()))
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

    // The newest verified backup, whatever the policy.
    let newest_verified =
        (0..ours.len()).find(|&i| ours.get(i).is_some_and(|b| b.health == Health::Verified));
    if let Some(i) = newest_verified {
        push(&mut reasons, i, KeepReason::NewestVerified);
    }

    // The floor: the `min_keep` newest that count, when nothing else keeps
    // them.
    for (rank, &i) in good.iter().enumerate() {
        let position = u64::try_from(rank).unwrap_or(u64::MAX).saturating_add(1);
        if position > policy.min_keep {
            break;
        }
        if reasons.get(i).is_some_and(Vec::is_empty) {
            push(
                &mut reasons,
                i,
                KeepReason::MinKeep {
                    position,
                    min_keep: policy.min_keep,
                },
            );
        }
    }
    if policy.min_keep > 0 {
        for &i in good
            .iter()
            .skip(usize::try_from(policy.min_keep).unwrap_or(usize::MAX))
        {
            push(
                &mut why_not,
                i,
                format!("not among the min_keep = {} newest", policy.min_keep),
            );
        }
    }

    // Nothing is deleted while the newest backup is not verified.
    let hold = ours
        .first()
        .filter(|b| b.health != Health::Verified)
        .map(|b| KeepReason::NewestNotVerified {
            newest: b.name.clone(),
            health: b.health,
        });

    let mut plan = Plan {
        ignored,
        ..Plan::default()
    };
    for (i, backup) in ours.iter().enumerate() {
        let age = clock::age(now.saturating_sub(backup.completed_at));
        let mut kept_by: Vec<KeepReason> =
            reasons.get_mut(i).map(std::mem::take).unwrap_or_default();
        // The newest verified backup newer than this one.
        let newer_verified = newest_verified.filter(|&v| v < i).and_then(|v| ours.get(v));
        let mut reason = None;
        if backup.health == Health::Damaged {
            match (newer_verified, &hold) {
                (Some(newer), None) => {
                    reason = Some(format!(
                        "{age} old; damaged (checksum mismatch or unreadable), and the newer {} verified",
                        newer.name
                    ));
                }
                (Some(_), Some(hold)) => kept_by.push(hold.clone()),
                (None, _) => kept_by.push(KeepReason::DamagedNoNewerVerified),
            }
        } else if kept_by.is_empty() {
            // Without a hold, the newest backup is verified, and it keeps
            // itself: every backup left here has a newer verified one.
            match &hold {
                Some(hold) => kept_by.push(hold.clone()),
                None => {
                    let why = why_not.get(i).map(|w| w.join("; ")).unwrap_or_default();
                    reason = Some(format!("{age} old; {why}"));
                }
            }
        }
        match reason {
            Some(reason) => plan.delete.push(Deletion {
                name: backup.name.clone(),
                completed_at: backup.completed_at,
                health: backup.health,
                reason,
            }),
            None => plan.keep.push(Kept {
                name: backup.name.clone(),
                completed_at: backup.completed_at,
                health: backup.health,
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
            health: Health::Verified,
        }
    }

    fn bad(prefix: &str, t: i64) -> Backup {
        Backup {
            health: Health::Damaged,
            ..backup(prefix, t)
        }
    }

    fn unverified(prefix: &str, t: i64) -> Backup {
        Backup {
            health: Health::Unverified,
            ..backup(prefix, t)
        }
    }

    fn policy(last: u64, daily: u64, weekly: u64, monthly: u64) -> Policy {
        Policy {
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
            min_keep: 0,
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
                KeepReason::NewestVerified
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
                KeepReason::NewestVerified,
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
        assert_eq!(p.keep[0].reasons, [KeepReason::NewestVerified]);
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
        assert_eq!(
            kept_names(&p),
            [name(now()), name(now() - DAY), name(now() - 2 * DAY)]
        );
        assert_eq!(p.keep[0].reasons, [KeepReason::DamagedNoNewerVerified]);
        assert_eq!(p.keep[0].health, Health::Damaged);
        assert_eq!(
            p.keep[1].reasons,
            [
                KeepReason::Last {
                    position: 1,
                    keep_last: 1
                },
                KeepReason::NewestVerified
            ]
        );
        // The newest backup is damaged: nothing is deleted this time.
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        assert_eq!(
            p.keep[2].reasons,
            [KeepReason::NewestNotVerified {
                newest: name(now()),
                health: Health::Damaged
            }]
        );
        assert!(p.keep[2].held() && !p.keep[1].held());

        // Even with every keep_* at 0.
        let p = plan("", &input, &policy(0, 0, 0, 0), now());
        assert_eq!(p.keep.len(), 3);
    }

    /// The incident: four dumps whose restore test could not run, then one
    /// that verified. With keep_last = 3 the unverified ones count like
    /// backups: the verified one and the two newest unverified stay.
    #[test]
    fn unverified_backups_are_not_counted_out() {
        let input = vec![
            backup("", now()),
            unverified("", now() - DAY),
            unverified("", now() - 2 * DAY),
            unverified("", now() - 3 * DAY),
            unverified("", now() - 4 * DAY),
        ];
        let p = plan(
            "",
            &input,
            &Policy {
                min_keep: 2,
                ..policy(3, 0, 0, 0)
            },
            now(),
        );
        assert_eq!(
            kept_names(&p),
            [name(now()), name(now() - DAY), name(now() - 2 * DAY)]
        );
        assert_eq!(
            deleted_names(&p),
            [name(now() - 3 * DAY), name(now() - 4 * DAY)]
        );
        assert!(
            p.delete[0].reason.contains("not among the last 3"),
            "{}",
            p.delete[0].reason
        );
        // The same store with the four marked damaged: only those go.
        let damaged: Vec<Backup> = input
            .iter()
            .map(|b| Backup {
                health: if b.health == Health::Unverified {
                    Health::Damaged
                } else {
                    b.health
                },
                ..b.clone()
            })
            .collect();
        let p = plan("", &damaged, &policy(3, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [name(now())]);
        assert_eq!(p.delete.len(), 4);
    }

    #[test]
    fn min_keep_is_a_floor_no_rule_goes_below() {
        let input: Vec<Backup> = (0..6).map(|d| backup("", now() - d * DAY)).collect();
        for min_keep in [1u64, 2, 3, 5, 6, 10] {
            let p = plan(
                "",
                &input,
                &Policy {
                    min_keep,
                    ..policy(0, 0, 0, 0)
                },
                now(),
            );
            let expected = usize::try_from(min_keep).unwrap().min(input.len());
            assert_eq!(p.keep.len(), expected, "min_keep = {min_keep}");
            if min_keep >= 2 {
                assert_eq!(
                    p.keep[1].reasons,
                    [KeepReason::MinKeep {
                        position: 2,
                        min_keep
                    }]
                );
            }
            for d in &p.delete {
                assert!(
                    d.reason
                        .contains(&format!("not among the min_keep = {min_keep} newest")),
                    "{}",
                    d.reason
                );
            }
        }
        // Damaged backups do not count toward the floor.
        let input = vec![
            backup("", now()),
            bad("", now() - DAY),
            bad("", now() - 2 * DAY),
            backup("", now() - 3 * DAY),
            backup("", now() - 4 * DAY),
        ];
        let p = plan(
            "",
            &input,
            &Policy {
                min_keep: 2,
                ..policy(0, 0, 0, 0)
            },
            now(),
        );
        assert_eq!(kept_names(&p), [name(now()), name(now() - 3 * DAY)]);
    }

    #[test]
    fn nothing_is_deleted_before_a_newer_backup_verified() {
        // The newest is unverified: nothing goes, whatever the policy.
        let input = vec![
            unverified("", now()),
            backup("", now() - DAY),
            backup("", now() - 2 * DAY),
            bad("", now() - 3 * DAY),
            backup("", now() - 4 * DAY),
        ];
        let p = plan("", &input, &policy(0, 0, 0, 0), now());
        assert!(p.delete.is_empty(), "{:?}", p.delete);
        assert!(p.keep.iter().skip(2).all(Kept::held), "{:?}", p.keep);
        // With no verified backup at all, nothing goes either.
        let input = vec![
            unverified("", now() - DAY),
            unverified("", now() - 2 * DAY),
            unverified("", now() - 3 * DAY),
        ];
        let p = plan("", &input, &policy(1, 0, 0, 0), now());
        assert!(p.delete.is_empty());
        assert_eq!(
            p.keep[2].reasons,
            [KeepReason::NewestNotVerified {
                newest: name(now() - DAY),
                health: Health::Unverified
            }]
        );
        // Once one verifies, the policy applies (down to min_keep).
        let mut input = input;
        input.push(backup("", now()));
        let p = plan("", &input, &policy(1, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [name(now())]);
        let p = plan(
            "",
            &input,
            &Policy {
                min_keep: 2,
                ..policy(1, 0, 0, 0)
            },
            now(),
        );
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
                "damaged (checksum mismatch or unreadable), and the newer {} verified",
                name(now())
            )),
            "{}",
            p.delete[0].reason
        );
        assert_eq!(p.delete[0].health, Health::Damaged);
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
                .all(|k| k.reasons == [KeepReason::DamagedNoNewerVerified])
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
                health: Health::Verified,
            },
            Backup {
                name: "nightly/2026-11-01T00-00-00Z.tar".into(),
                completed_at: now() - 20 * DAY,
                health: Health::Verified,
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
                health: Health::Verified,
            },
            Backup {
                name: naming::artifact_name("", t - DAY, ".sqlite"),
                completed_at: t - DAY,
                health: Health::Verified,
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
            health: Health::Verified,
        };
        let early = Backup {
            name: naming::artifact_name("", now() - HOUR, ".dump"),
            completed_at: now() - 2 * HOUR,
            health: Health::Verified,
        };
        let p = plan("", &[early, late.clone()], &policy(1, 0, 0, 0), now());
        assert_eq!(kept_names(&p), [late.name]);

        // Equal times: the greater name is the newer, whatever the input order.
        let t = now() - DAY;
        let a = Backup {
            name: naming::artifact_name("", t, ".dump"),
            completed_at: t,
            health: Health::Verified,
        };
        let b = Backup {
            name: naming::artifact_name("", t, ".sqlite"),
            completed_at: t,
            health: Health::Verified,
        };
        let c = Backup {
            name: naming::artifact_name("", t, ""),
            completed_at: t,
            health: Health::Verified,
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
            health: Health::Verified,
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
            KeepReason::NewestVerified.to_string(),
            "newest verified backup (never deleted)"
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
                        health: match next(6) {
                            0 => Health::Damaged,
                            1 => Health::Unverified,
                            _ => Health::Verified,
                        },
                    }
                })
                .collect();
            let pol = Policy {
                min_keep: next(4),
                ..policy(next(5), next(8), next(5), next(7))
            };
            let p = plan("", &input, &pol, now());
            assert_partition(&input, &p);
            let mut unique = input.clone();
            unique.sort_by(|a, b| (b.completed_at, &b.name).cmp(&(a.completed_at, &a.name)));
            unique.dedup_by(|a, b| a.name == b.name);
            let newest_verified = unique.iter().find(|b| b.health == Health::Verified);
            if let Some(v) = newest_verified {
                assert!(p.keeps(&v.name), "{}", rfc3339(v.completed_at));
            }
            // Every deletion has a newer verified backup, and happens only
            // when the newest backup is verified.
            if !p.delete.is_empty() {
                assert_eq!(unique[0].health, Health::Verified);
            }
            for d in &p.delete {
                let v = newest_verified.expect("a deletion without a verified backup");
                assert!(
                    (v.completed_at, &v.name) > (d.completed_at, &d.name),
                    "{} deleted, newest verified {}",
                    d.name,
                    v.name
                );
            }
            if unique.first().is_some_and(|b| b.health == Health::Verified) {
                // Damaged backups older than the newest verified one are gone.
                let v = &unique[0];
                assert!(
                    unique
                        .iter()
                        .filter(|b| b.health == Health::Damaged && b.completed_at < v.completed_at)
                        .all(|b| p.deletes(&b.name))
                );
            }
            // The floor: min_keep backups that are not damaged (or all).
            let counting = unique.iter().filter(|b| b.health.counts()).count();
            let kept_counting = p.keep.iter().filter(|k| k.health.counts()).count();
            let floor = usize::try_from(pol.min_keep).unwrap_or(usize::MAX);
            assert!(kept_counting >= floor.min(counting));
            // No damaged backup counts toward the floor or the rules.
            let by_rule = p.keep.iter().filter(|k| !k.held()).count();
            let bound = pol.keep_last
                + pol.keep_daily
                + pol.keep_weekly
                + pol.keep_monthly
                + pol.min_keep
                + 1;
            assert!(u64::try_from(by_rule).unwrap_or(u64::MAX) <= bound);
            assert!(
                p.keep
                    .iter()
                    .filter(|k| k.health == Health::Damaged)
                    .all(Kept::held)
            );
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
