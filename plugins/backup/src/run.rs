//! The run: dump the invocation's target into the store, verify the new
//! artifact (checksums, then optionally a restore into a scratch target with
//! a count comparison), then apply retention to the plugin's artifacts.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use warden_sdk::{
    Action, ActionState, Artifact, Artifacts, CapabilityClass, Context, Error, Finding, Report,
    ResultExt, TargetKind, state,
};

use crate::retention::{self, Backup, Health, Plan};
use crate::settings::{Settings, describe_options};
use crate::verify::{self, bytes, count, mb_per_second, seconds, throughput};
use crate::{clock, naming};

/// Do not start a deletion with less than this left of the run.
const MIN_REMAINING_MS: u64 = 2_000;

/// How many objects or backups a finding names before `… and N more`.
const LIST_MAX: usize = 30;

/// State keys `failed-verification/<target>/<name>` remember the artifacts
/// that did not pass this plugin's verification, with their health
/// (`damaged: <problem>` or `unverified: <problem>`), so later runs know
/// which ones are counted out (damaged) and which ones do not allow
/// deleting older backups (unverified).
const FAILED_KEY: &str = "failed-verification/";

fn failed_key(target: &str, name: &str) -> String {
    format!("{FAILED_KEY}{target}/{name}")
}

#[allow(clippy::cast_precision_loss)]
fn num(n: u64) -> f64 {
    n as f64
}

fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn now_secs() -> Result<i64, Error> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::other("the clock says it is before 1970"))?;
    Ok(i64::try_from(since.as_secs()).unwrap_or(i64::MAX))
}

/// `tables`/`rows` or `collections`/`documents`.
fn nouns(kind: TargetKind) -> (&'static str, &'static str) {
    match kind {
        TargetKind::Mongodb => ("collections", "documents"),
        TargetKind::Postgres | TargetKind::Sqlite => ("tables", "rows"),
    }
}

/// `1 backup`, `2 backups`.
fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Joins at most `max` items, then `… and N more`.
fn list_some(items: &[String], max: usize) -> String {
    let mut text = items
        .iter()
        .take(max)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > max {
        text.push_str(&format!("; … and {} more", items.len() - max));
    }
    text
}

/// The numbers of the report.
#[derive(Default)]
struct Tally {
    bytes: u64,
    duration_ms: u64,
    objects: u64,
    rows: u64,
    deleted: u64,
    delete_failed: u64,
    deferred: u64,
    would_delete: u64,
    kept: u64,
    corrupted: u64,
    verified: bool,
}

/// What verification found about the new artifact.
struct Verdict {
    /// Damaged (checksums), unverified (the restore test failed or could
    /// not run) or verified.
    health: Health,
    /// Why not verified, for the state record.
    problem: String,
    /// Every requested check passed.
    verified: bool,
    /// What was checked, for the summary.
    what: Vec<&'static str>,
}

pub fn run(ctx: &Context, s: &Settings) -> Result<Report, Error> {
    let kind = ctx.target_kind();
    let target = ctx.target();
    let now = now_secs()?;
    let name = naming::artifact_name(&s.prefix, now, s.extension(kind));
    let options = s.dump_options(kind);
    let what = describe_options(&options);
    let store = ctx.artifacts(&s.store);
    let mut report = Report::ok("");
    let mut tally = Tally::default();

    if !s.ignored_params.is_empty() {
        let names: Vec<String> = s.ignored_params.iter().map(|p| format!("`{p}`")).collect();
        report.add_finding(Finding::info(
            "parameters ignored",
            format!(
                "{} do not apply to {} targets (`{target}`)",
                names.join(", "),
                kind.name()
            ),
        ));
    }

    let dumped = store.dump(&name, options).with_context(|| {
        format!(
            "backing up `{target}` into store `{}` as `{name}` ({what})",
            s.store
        )
    })?;
    // The host records the dump (executed or planned) as its own action.

    let artifact = if dumped.is_planned() {
        report.add_finding(Finding::info(
            "backup planned (dry-run)",
            format!(
                "would back up `{target}` into store `{}` as `{name}` ({what}); not executed",
                s.store
            ),
        ));
        None
    } else {
        let artifact = dumped.artifact.ok_or_else(|| {
            Error::other(format!(
                "the host reported the dump of `{target}` as `{name}` executed but returned no artifact"
            ))
        })?;
        tally.bytes = artifact.size_bytes;
        tally.duration_ms = dumped.duration_ms;
        tally.objects = len(artifact.counts.len());
        tally.rows = artifact.total_count();
        report.add_finding(backup_finding(
            &artifact,
            &s.store,
            kind,
            &what,
            dumped.duration_ms,
        ));
        warden_sdk::info!(
            "backed up `{target}` as `{}` ({} in {})",
            artifact.name,
            bytes(artifact.size_bytes),
            seconds(dumped.duration_ms)
        );
        Some(artifact)
    };

    let verdict = match &artifact {
        Some(artifact) => Some(verify_artifact(
            ctx,
            s,
            &store,
            artifact,
            dumped.duration_ms,
            &mut report,
        )),
        None => {
            let mut detail = format!("would verify the checksums of `{name}`");
            if let (true, Some(dest)) = (s.verify, &s.verify_target) {
                detail.push_str(&format!(
                    ", then restore it into `{dest}` (clean) and compare the per-{} counts with those recorded at dump time",
                    if kind == TargetKind::Mongodb { "collection" } else { "table" }
                ));
            }
            report.add_finding(Finding::info("verification planned (dry-run)", detail));
            None
        }
    };
    if let (Some(artifact), Some(verdict)) = (&artifact, &verdict) {
        tally.verified = verdict.verified;
        if verdict.health != Health::Verified {
            let key = failed_key(target, &artifact.name);
            let value = format!("{}: {}", verdict.health.name(), verdict.problem);
            if let Err(e) = state::set_string(&key, &value) {
                warden_sdk::warn!(
                    "could not record the failed verification of `{}`: {}",
                    artifact.name,
                    e.summary()
                );
            }
        }
    }

    // The new artifact as retention sees it; in dry-run, the one a real run
    // would make.
    let fresh = match (&artifact, &verdict) {
        (Some(a), Some(v)) => Backup {
            name: a.name.clone(),
            completed_at: clock::parse_rfc3339(&a.completed_at).unwrap_or(now),
            health: v.health,
        },
        _ => Backup {
            name: name.clone(),
            completed_at: now,
            health: Health::Verified,
        },
    };
    apply_retention(ctx, s, &store, fresh, now, &mut report, &mut tally);

    summarize(
        ctx,
        s,
        &name,
        artifact.as_ref(),
        verdict.as_ref(),
        &mut report,
        &tally,
    );
    if let Some(worst) = report.findings.iter().map(|f| f.severity.into()).max() {
        report.raise(worst);
    }
    let rate = if artifact.is_some() {
        throughput(tally.bytes, tally.duration_ms)
    } else {
        0.0
    };
    #[allow(clippy::cast_precision_loss)]
    let duration = tally.duration_ms as f64 / 1000.0;
    Ok(report
        .metric("bytes", num(tally.bytes), "bytes")
        .metric("duration_seconds", duration, "seconds")
        .metric("throughput_bytes_per_second", rate, "bytes/s")
        .metric("objects", num(tally.objects), "")
        .metric("rows_or_documents", num(tally.rows), "rows")
        .metric("deleted", num(tally.deleted), "")
        .metric("would_delete", num(tally.would_delete), "")
        .metric("corrupted", num(tally.corrupted), "")
        .metric("kept", num(tally.kept), "")
        .metric("verified", f64::from(u8::from(tally.verified)), ""))
}

fn backup_finding(
    artifact: &Artifact,
    store: &str,
    kind: TargetKind,
    what: &str,
    duration_ms: u64,
) -> Finding {
    let (objects, rows) = nouns(kind);
    let rate = throughput(artifact.size_bytes, duration_ms);
    Finding::info(
        format!("backup made: {}", artifact.name),
        format!(
            "`{}` in store `{store}`{}: {} ({} bytes), sha256 {}, dumped in {} ({}); {} {objects}, {} {rows} at dump time; {what}",
            artifact.name,
            if artifact.directory {
                " (a folder)"
            } else {
                ""
            },
            bytes(artifact.size_bytes),
            count(artifact.size_bytes),
            artifact.sha256,
            seconds(duration_ms),
            mb_per_second(rate),
            count(len(artifact.counts.len())),
            count(artifact.total_count()),
        ),
    )
}

/// Checksums, then (when asked) a restore into the scratch target and a
/// comparison of the counts.
fn verify_artifact(
    ctx: &Context,
    s: &Settings,
    store: &Artifacts<'_>,
    artifact: &Artifact,
    dump_ms: u64,
    report: &mut Report,
) -> Verdict {
    let name = &artifact.name;
    let mut verdict = Verdict {
        health: Health::Verified,
        problem: String::new(),
        verified: false,
        what: vec!["checksums"],
    };
    // A failed check: the verdict, and an action in state `failed` so the
    // run is recorded as failed.
    let target = ctx.target();
    let fail = |verdict: &mut Verdict,
                report: &mut Report,
                health: Health,
                statement: String,
                problem: String| {
        verdict.health = health;
        verdict.problem = problem;
        report.add_action(Action::new(
            target,
            statement,
            CapabilityClass::Read,
            ActionState::Failed,
        ));
    };
    let verify_statement = format!("verify `{name}` in store `{}`", s.store);
    match store.verify(name) {
        Ok(v) if v.ok && v.problems.is_empty() => {
            report.add_finding(Finding::info(
                "checksums verified",
                format!(
                    "every file of `{name}` matches its manifest (sha256 {})",
                    artifact.sha256
                ),
            ));
        }
        Ok(v) => {
            let problems = if v.problems.is_empty() {
                "the host reported a mismatch without details".to_owned()
            } else {
                list_some(&v.problems, LIST_MAX)
            };
            fail(
                &mut verdict,
                report,
                Health::Damaged,
                verify_statement,
                format!("checksums: {problems}"),
            );
            report.add_finding(
                Finding::critical(
                    format!("verification failed: {name}"),
                    format!("the checksums of `{name}` do not match its manifest: {problems}"),
                )
                .suggest("do not rely on this backup: check the store's storage, then run the backup again"),
            );
        }
        Err(e) => {
            // Unreadable is damaged; a refusal says nothing about the artifact.
            let health = if e.is_access_denied() {
                Health::Unverified
            } else {
                Health::Damaged
            };
            fail(
                &mut verdict,
                report,
                health,
                verify_statement,
                format!("checksums: {}", e.summary()),
            );
            report.add_finding(
                Finding::critical(
                    format!("verification failed: {name}"),
                    format!(
                        "could not verify the checksums of `{name}`: {}",
                        e.summary()
                    ),
                )
                .suggest("check the store and the grant (`artifacts`), then run the backup again"),
            );
        }
    }

    let Some(dest) = s.verify_target.as_deref().filter(|_| s.verify) else {
        verdict.verified = verdict.health == Health::Verified;
        return verdict;
    };
    verdict.what.push("restore");
    if verdict.health != Health::Verified {
        report.add_finding(Finding::info(
            "verification by restore skipped",
            format!(
                "`{name}` failed its checksum verification, so it was not restored into `{dest}`"
            ),
        ));
        return verdict;
    }
    let remaining = ctx.remaining_ms();
    if remaining < MIN_REMAINING_MS.max(dump_ms) {
        report.add_finding(
            Finding::warning(
                "verification by restore skipped",
                format!(
                    "{} left of the run, and the dump alone took {}: a restore into `{dest}` would likely not finish",
                    seconds(remaining),
                    seconds(dump_ms)
                ),
            )
            .suggest("give the run a longer time limit, or verify in a separate run"),
        );
        verdict.health = Health::Unverified;
        verdict.problem = "restore: skipped for lack of time".to_owned();
        return verdict;
    }
    let (objects, _) = nouns(ctx.target_kind());
    let restore_statement = format!("test restore of `{name}` into `{dest}`");
    match store.restore(name, dest, &s.restore_options()) {
        Ok(restored) if restored.is_planned() => {
            report.add_finding(Finding::warning(
                "verification by restore planned",
                format!("the host only planned the restore of `{name}` into `{dest}`; counts not compared"),
            ));
            verdict.health = Health::Unverified;
            verdict.problem = "restore: only planned".to_owned();
        }
        Ok(restored) => {
            let check = verify::compare_counts(&artifact.counts, &restored.counts);
            let extra = if check.extra.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} other {objects} in `{dest}` not compared)",
                    check.extra.len()
                )
            };
            if check.ok() {
                verdict.verified = true;
                report.add_finding(Finding::info(
                    format!("verified by restore: {name}"),
                    format!(
                        "restored `{name}` into `{dest}` in {}; counts match for {} {objects}: {}{extra}",
                        seconds(restored.duration_ms),
                        check.matched.len(),
                        check.describe(LIST_MAX)
                    ),
                ));
            } else {
                let detail = format!(
                    "restored `{name}` into `{dest}` in {}; {} of {} {objects} differ from the counts recorded at dump time: {}{extra}",
                    seconds(restored.duration_ms),
                    check.mismatched.len(),
                    artifact.counts.len(),
                    check.describe(LIST_MAX)
                );
                fail(
                    &mut verdict,
                    report,
                    Health::Unverified,
                    restore_statement,
                    format!("restore: {} {objects} differ", check.mismatched.len()),
                );
                report.add_finding(
                    Finding::critical(format!("verification failed: {name}"), detail).suggest(
                        "do not rely on this backup: compare the restored data by hand, and check that nothing else writes to the scratch target",
                    ),
                );
            }
        }
        Err(e) => {
            fail(
                &mut verdict,
                report,
                Health::Unverified,
                restore_statement,
                format!("restore: {}", e.summary()),
            );
            let suggestion = if e.is_access_denied() {
                format!(
                    "list `{dest}` in the grant's `restore_to` for target `{}`",
                    ctx.target()
                )
            } else {
                format!(
                    "check the scratch target `{dest}` and the error, then run the backup again"
                )
            };
            report.add_finding(
                Finding::critical(
                    format!("verification failed: {name}"),
                    format!(
                        "could not restore `{name}` into `{dest}`: {}; its checksums matched, so the backup is kept and counts for retention, but it is not verified and older backups are not deleted on its account",
                        e.summary()
                    ),
                )
                .suggest(suggestion),
            );
        }
    }
    verdict
}

/// The names recorded as not verified for `target`, with their health: a
/// record `unverified: ...` (or, from earlier versions, `restore: ...`) is
/// unverified, any other (`damaged: ...`, `checksums: ...`) damaged.
fn failed_names(target: &str) -> BTreeMap<String, Health> {
    let prefix = failed_key(target, "");
    let keys = match state::list_keys(&prefix) {
        Ok(keys) => keys,
        Err(e) => {
            warden_sdk::warn!("could not read the failed verifications: {}", e.summary());
            return BTreeMap::new();
        }
    };
    keys.iter()
        .filter_map(|k| {
            let name = k.strip_prefix(&prefix)?.to_owned();
            let value = state::get_string(k).ok().flatten().unwrap_or_default();
            Some((name, health_of_record(&value)))
        })
        .collect()
}

/// The health a failed-verification record stands for.
fn health_of_record(value: &str) -> Health {
    if value.starts_with("unverified:") || value.starts_with("restore:") {
        Health::Unverified
    } else {
        Health::Damaged
    }
}

fn apply_retention(
    ctx: &Context,
    s: &Settings,
    store: &Artifacts<'_>,
    fresh: Backup,
    now: i64,
    report: &mut Report,
    tally: &mut Tally,
) {
    let target = ctx.target();
    let listed = match store.list(&s.prefix) {
        Ok(listed) => listed,
        Err(e) => {
            report.add_finding(
                Finding::warning(
                    "retention skipped",
                    format!(
                        "could not list the artifacts of `{target}` in store `{}`: {}",
                        s.store,
                        e.summary()
                    ),
                )
                .suggest("check the store; old backups are kept until a run can list them"),
            );
            return;
        }
    };
    let failed = failed_names(target);
    let mut backups: Vec<Backup> = listed
        .iter()
        .filter(|a| a.name != fresh.name)
        .map(|a| Backup {
            name: a.name.clone(),
            completed_at: clock::parse_rfc3339(&a.completed_at)
                .or_else(|| naming::parse_artifact_name(&s.prefix, &a.name))
                .unwrap_or(0),
            health: failed.get(&a.name).copied().unwrap_or(Health::Verified),
        })
        .collect();
    if s.audit {
        audit(store, &s.prefix, &mut backups, report, tally);
    }
    backups.push(fresh);
    let plan = retention::plan(&s.prefix, &backups, &s.policy, now);
    report_held(&plan, report);
    // Without pruning every artifact stays.
    tally.kept = len(plan.keep.len() + if s.prune { 0 } else { plan.delete.len() });

    if !s.prune || ctx.dry_run() {
        tally.would_delete = len(plan.delete.len());
        let why = if s.prune { "dry-run" } else { "prune = false" };
        if !s.prune {
            let items: Vec<String> = plan
                .delete
                .iter()
                .map(|d| format!("{} ({})", d.name, d.reason))
                .collect();
            report.add_finding(Finding::info(
                "retention not applied (prune = false)",
                if items.is_empty() {
                    "retention would delete nothing".to_owned()
                } else {
                    format!(
                        "retention would delete {}: {}",
                        items.len(),
                        list_some(&items, LIST_MAX)
                    )
                },
            ));
        } else {
            for d in &plan.delete {
                report.add_finding(Finding::info(
                    format!("would delete {} ({why})", d.name),
                    format!("would delete `{}`: {}", d.name, d.reason),
                ));
                report.add_action(Action::new(
                    target,
                    format!("delete `{}` from store `{}`", d.name, s.store),
                    CapabilityClass::Read,
                    ActionState::Planned,
                ));
            }
        }
    } else {
        let mut late: Vec<String> = Vec::new();
        for d in &plan.delete {
            if ctx.remaining_ms() < MIN_REMAINING_MS {
                late.push(d.name.clone());
                continue;
            }
            delete_one(target, s, store, d, &failed, report, tally);
        }
        if !late.is_empty() {
            tally.deferred = len(late.len());
            report.add_finding(
                Finding::warning(
                    format!("{} deferred", plural(len(late.len()), "deletion")),
                    format!(
                        "less than {} left of the run: {}",
                        seconds(MIN_REMAINING_MS),
                        list_some(&late, LIST_MAX)
                    ),
                )
                .suggest("they are deleted by a later run; give the run a longer time limit"),
            );
        }
    }

    report_kept(&plan, s, ctx.dry_run(), report);
}

/// A warning when retention deletes nothing because the newest backup is
/// not verified, naming the backups a verified one would let go.
fn report_held(plan: &Plan, report: &mut Report) {
    let mut newest = None;
    let held: Vec<String> = plan
        .keep
        .iter()
        .filter_map(|k| {
            k.reasons.iter().find_map(|r| match r {
                retention::KeepReason::NewestNotVerified { newest: n, health } => {
                    newest = Some((n.clone(), *health));
                    Some(k.name.clone())
                }
                _ => None,
            })
        })
        .collect();
    let Some((newest, health)) = newest else {
        return;
    };
    report.add_finding(
        Finding::warning(
            "retention deferred",
            format!(
                "the newest backup `{newest}` is {}, so nothing is deleted; {} no rule keeps wait for a newer verified backup: {}",
                health.name(),
                plural(len(held.len()), "backup"),
                list_some(&held, LIST_MAX)
            ),
        )
        .suggest("fix what stopped the verification; the next backup that verifies applies retention"),
    );
}

fn delete_one(
    target: &str,
    s: &Settings,
    store: &Artifacts<'_>,
    d: &retention::Deletion,
    failed: &BTreeMap<String, Health>,
    report: &mut Report,
    tally: &mut Tally,
) {
    let statement = format!("delete `{}` from store `{}`", d.name, s.store);
    // The host records the deletion (executed, planned or failed) as its own action.
    match store.delete(&d.name) {
        Ok(outcome) => {
            let state: ActionState = outcome.into();
            if state == ActionState::Executed {
                tally.deleted += 1;
                report.add_finding(Finding::info(
                    format!("deleted {}", d.name),
                    format!("deleted `{}`: {}", d.name, d.reason),
                ));
                if failed.contains_key(&d.name)
                    && let Err(e) = state::delete(&failed_key(target, &d.name))
                {
                    warden_sdk::warn!(
                        "could not forget the failed verification of `{}`: {}",
                        d.name,
                        e.summary()
                    );
                }
            } else {
                tally.would_delete += 1;
                report.add_finding(Finding::info(
                    format!("would delete {} (planned)", d.name),
                    format!("the host only planned deleting `{}`: {}", d.name, d.reason),
                ));
            }
        }
        Err(e) => {
            tally.delete_failed += 1;
            warden_sdk::warn!("{statement}: {}", e.summary());
            report.add_finding(
                Finding::warning(
                    format!("could not delete {}", d.name),
                    format!(
                        "retention would delete `{}` ({}), but the deletion failed: {}",
                        d.name,
                        d.reason,
                        e.summary()
                    ),
                )
                .suggest("check the store; a later run tries again"),
            );
        }
    }
}

fn report_kept(plan: &Plan, s: &Settings, dry_run: bool, report: &mut Report) {
    let p = &s.policy;
    let kept: Vec<String> = plan.keep.iter().map(retention::Kept::describe).collect();
    let title = if !s.prune {
        format!("retention would keep {}", plural(len(kept.len()), "backup"))
    } else if dry_run {
        format!("would keep {} (dry-run)", plural(len(kept.len()), "backup"))
    } else {
        format!("kept {}", plural(len(kept.len()), "backup"))
    };
    report.add_finding(Finding::info(
        title,
        format!(
            "policy keep_last = {}, keep_daily = {}, keep_weekly = {}, keep_monthly = {}, min_keep = {} (the newest verified backup is always kept, and nothing is deleted before a newer backup verified): {}",
            p.keep_last,
            p.keep_daily,
            p.keep_weekly,
            p.keep_monthly,
            p.min_keep,
            if kept.is_empty() {
                "none".to_owned()
            } else {
                list_some(&kept, LIST_MAX)
            }
        ),
    ));
    if !plan.ignored.is_empty() {
        report.add_finding(Finding::info(
            format!("{} left alone", plural(len(plan.ignored.len()), "other artifact")),
            format!(
                "not named `{}<YYYY-MM-DDTHH-MM-SSZ>[.dump|.sqlite]`, so retention does not touch them: {}",
                s.prefix,
                list_some(&plan.ignored, LIST_MAX)
            ),
        ));
    }
}

fn summarize(
    ctx: &Context,
    s: &Settings,
    name: &str,
    artifact: Option<&Artifact>,
    verdict: Option<&Verdict>,
    report: &mut Report,
    tally: &Tally,
) {
    let target = ctx.target();
    let kept = if ctx.dry_run() { "would keep" } else { "kept" };
    let mut retention: Vec<String> = vec![format!("{kept} {}", tally.kept)];
    if tally.deleted > 0 {
        retention.push(format!("deleted {}", tally.deleted));
    }
    if tally.would_delete > 0 {
        retention.push(format!("would delete {}", tally.would_delete));
    }
    if tally.delete_failed > 0 {
        retention.push(format!(
            "{} failed",
            plural(tally.delete_failed, "deletion")
        ));
    }
    if tally.deferred > 0 {
        retention.push(format!("{} deferred", plural(tally.deferred, "deletion")));
    }
    let retention = if s.prune {
        retention.join(", ")
    } else {
        format!(
            "not applied (prune = false; the policy would delete {})",
            tally.would_delete
        )
    };
    report.summary = match (artifact, verdict) {
        (Some(a), Some(v)) => {
            let checks = match v.health {
                Health::Damaged => "VERIFICATION FAILED (damaged)".to_owned(),
                Health::Unverified
                    if v.problem.starts_with("restore: skipped")
                        || v.problem == "restore: only planned" =>
                {
                    "checksums verified, restore test not run".to_owned()
                }
                Health::Unverified => format!(
                    "VERIFICATION FAILED ({} could not confirm it; not damaged)",
                    v.problem.split(':').next().unwrap_or("a check")
                ),
                Health::Verified if v.verified => format!("verified ({})", v.what.join(" + ")),
                Health::Verified => format!(
                    "{} verified",
                    v.what.first().copied().unwrap_or("checksums")
                ),
            };
            format!(
                "backed up `{target}` into `{}` as `{}`: {} in {} ({}), {checks}; retention {retention}",
                s.store,
                a.name,
                bytes(a.size_bytes),
                seconds(tally.duration_ms),
                mb_per_second(throughput(a.size_bytes, tally.duration_ms)),
            )
        }
        _ => format!(
            "dry-run: would back up `{target}` into `{}` as `{name}`; retention {retention}",
            s.store
        ),
    };
}

/// Recomputes the checksums of the existing backups named by this plugin;
/// a corrupted one is reported and stops counting as good.
fn audit(
    store: &Artifacts<'_>,
    prefix: &str,
    backups: &mut [Backup],
    report: &mut Report,
    tally: &mut Tally,
) {
    for b in backups.iter_mut() {
        if b.health == Health::Damaged || naming::parse_artifact_name(prefix, &b.name).is_none() {
            continue;
        }
        match store.verify(&b.name) {
            Ok(v) if v.ok => {}
            Ok(v) => {
                b.health = Health::Damaged;
                tally.corrupted += 1;
                report.add_finding(
                    Finding::critical(
                        format!("corrupted backup: {}", b.name),
                        format!(
                            "`{}` no longer matches its manifest: {}",
                            b.name,
                            list_some(&v.problems, LIST_MAX)
                        ),
                    )
                    .suggest("find out what changed the store; this backup cannot be trusted and retention no longer counts it"),
                );
            }
            Err(e) => {
                report.add_finding(Finding::warning(
                    format!("could not verify {}", b.name),
                    e.summary(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records of this version name the health; records of earlier versions
    /// only the check, and a failed restore test there did not damage the
    /// artifact either (the incident: four such backups were deleted).
    #[test]
    fn failed_verification_records_keep_damaged_and_unverified_apart() {
        for (value, health) in [
            ("damaged: checksums: sha256 differs", Health::Damaged),
            (
                "unverified: restore: access-denied: not in restore_to",
                Health::Unverified,
            ),
            ("unverified: checksums: access-denied", Health::Unverified),
            (
                "unverified: restore: skipped for lack of time",
                Health::Unverified,
            ),
            (
                "restore: target-error: permission denied",
                Health::Unverified,
            ),
            ("restore: 2 tables differ", Health::Unverified),
            ("checksums: the data is missing", Health::Damaged),
            ("", Health::Damaged),
        ] {
            assert_eq!(health_of_record(value), health, "{value:?}");
        }
    }
}
