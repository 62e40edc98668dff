//! Retention never destroys a good backup because something else failed
//! (issue 13, part 3), and a failed verification is a failed action (part 2,
//! the backup side): real SQLite dumps into a real local store, real
//! restore tests that fail for several reasons, artifacts damaged on disk
//! in several ways.

use crate::backup::{artifacts, backdated, findings, store_root};
use crate::backup_data::seed_sqlite;
use crate::world::{World, error_of, invoke, metric};
use std::collections::BTreeSet;
use warden::agent::Agent;
use warden::runs::{ActionState, RunRecord, RunStatus};

/// A SQLite target `db`, a good scratch target `scratch` and a broken one
/// `broken` (its folder is a regular file, so nothing can be restored
/// there), both listed in `restore_to`; `denied` exists but is not listed.
async fn world() -> World {
    let w = World::new()
        .plugin("backup")
        .sqlite_target("db", "db.sqlite")
        .sqlite_target("scratch", "scratch.db")
        .sqlite_target("broken", "blocker/scratch.db")
        .sqlite_target("denied", "denied.db")
        .store("local")
        .grant(
            "backup",
            "db",
            &["read"],
            "artifacts = [\"local\"]\nrestore_to = [\"scratch\", \"broken\"]",
        );
    seed_sqlite(&w.path("db.sqlite")).await;
    std::fs::write(w.path("blocker"), "not a folder").unwrap();
    w
}

async fn names(w: &World) -> BTreeSet<String> {
    artifacts(w, "db")
        .await
        .into_iter()
        .map(|m| m.name)
        .collect()
}

/// One backup run; waits first so each backup gets its own second-stamped
/// name.
async fn backup(agent: &Agent, params: &[(&str, &str)], dry_run: bool) -> RunRecord {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut all = vec![("store", "local")];
    all.extend_from_slice(params);
    invoke(agent, "backup", "db", &all, dry_run).await
}

/// The actions of a run in `state`: the report lists the host's and the
/// plugin's.
fn actions(rec: &RunRecord, state: ActionState) -> Vec<String> {
    rec.report
        .as_ref()
        .map_or(&rec.actions, |r| &r.actions)
        .iter()
        .filter(|a| a.state == state)
        .map(|a| a.statement.clone())
        .collect()
}

const KEEP_3: [(&str, &str); 5] = [
    ("keep_last", "3"),
    ("keep_daily", "0"),
    ("keep_weekly", "0"),
    ("keep_monthly", "0"),
    ("min_keep", "2"),
];

/// The restore tests that cannot run: a scratch target the grant does not
/// list, and one whose file cannot be created.
const CANNOT_RESTORE: [&str; 2] = ["denied", "broken"];

/// The incident: four dumps whose checksums were fine but whose restore test
/// could not run, then one that verified, with keep_last = 3. The four
/// count as backups: the verified one and the two newest of them stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_test_that_could_not_run_does_not_count_a_backup_out() {
    let w = world().await;
    let agent = w.agent().await;
    let mut unverified = Vec::new();
    for i in 0..4 {
        let dest = CANNOT_RESTORE[i % 2];
        let mut params = KEEP_3.to_vec();
        params.extend([("verify", "true"), ("verify_target", dest)]);
        let rec = backup(&agent, &params, false).await;
        assert!(
            matches!(rec.status, RunStatus::Succeeded | RunStatus::Failed),
            "{:?} {}\n{}",
            rec.status,
            error_of(&rec),
            findings(&rec)
        );
        // The failed restore test is a failed action of the plugin, with
        // the reason and the fix in a finding.
        let failed = actions(&rec, ActionState::Failed);
        assert!(
            failed
                .iter()
                .any(|a| a.starts_with("test restore of `")
                    && a.ends_with(&format!("into `{dest}`"))),
            "{failed:?}"
        );
        let text = findings(&rec);
        assert!(text.contains("verification failed"), "{text}");
        if dest == "denied" {
            assert!(text.contains("restore_to"), "{text}");
        }
        assert!(
            text.contains("not damaged") || text.contains("is kept"),
            "{text}"
        );
        // Nothing was deleted: the newest backup did not verify.
        assert_eq!(metric(&rec, "deleted"), 0.0, "{text}");
        assert_eq!(metric(&rec, "verified"), 0.0, "{text}");
        let now = names(&w).await;
        assert_eq!(now.len(), i + 1, "{now:?}\n{text}");
        unverified.push(
            now.iter()
                .find(|n| !unverified.contains(*n))
                .unwrap()
                .clone(),
        );
        // With four, keep_last = 3 would let the oldest go, but the newest
        // did not verify: it is held, and the run says so.
        if i == 3 {
            assert!(text.contains("retention deferred"), "{text}");
            assert!(now.contains(&unverified[0]), "{now:?}");
        } else {
            assert!(!text.contains("retention deferred"), "{text}");
        }
    }

    // A dry-run of the verified configuration plans the deletions as
    // actions and deletes nothing.
    let mut good = KEEP_3.to_vec();
    good.extend([("verify", "true"), ("verify_target", "scratch")]);
    let before = names(&w).await;
    let dry = backup(&agent, &good, true).await;
    assert_eq!(dry.status, RunStatus::Succeeded, "{}", error_of(&dry));
    assert_eq!(names(&w).await, before, "the dry-run changed the store");
    let planned: Vec<String> = actions(&dry, ActionState::Planned)
        .into_iter()
        .filter(|a| a.starts_with("delete "))
        .collect();
    // The fresh one (planned) + 3 newest... keep_last 3 keeps the would-be
    // fresh one and the two newest unverified: the two oldest would go.
    assert_eq!(planned.len(), 2, "{planned:?}\n{}", findings(&dry));
    assert_eq!(metric(&dry, "would_delete"), 2.0);
    for old in &unverified[..2] {
        assert!(
            planned
                .iter()
                .any(|a| a.contains(old.trim_start_matches("db/"))),
            "{old} not planned: {planned:?}"
        );
    }

    // Now a backup that verifies.
    let rec = backup(&agent, &good, false).await;
    assert_eq!(
        rec.status,
        RunStatus::Succeeded,
        "{}\n{}",
        error_of(&rec),
        findings(&rec)
    );
    assert_eq!(metric(&rec, "verified"), 1.0, "{}", findings(&rec));
    let after = names(&w).await;
    let fresh: Vec<&String> = after.difference(&before).collect();
    assert_eq!(fresh.len(), 1, "{after:?}");
    let expected: BTreeSet<String> = [
        fresh[0].clone(),
        unverified[3].clone(),
        unverified[2].clone(),
    ]
    .into();
    assert_eq!(after, expected, "{}", findings(&rec));
    assert_eq!(metric(&rec, "deleted"), 2.0);
    // Every deletion is listed with the rule that let it go.
    let text = findings(&rec);
    for old in &unverified[..2] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("deleted {}", old.trim_start_matches("db/"))))
            .unwrap_or_else(|| panic!("no deletion finding for {old}:\n{text}"));
        assert!(line.contains("not among the last 3"), "{line}");
        assert!(line.contains("not among the min_keep = 2 newest"), "{line}");
    }
    assert!(
        actions(&rec, ActionState::Executed)
            .iter()
            .filter(|a| a.starts_with("delete "))
            .count()
            == 2
    );
}

/// Damage counts a backup out: a flipped byte, a truncated file, an emptied
/// file and a missing data file are each found by the audit, and retention
/// keeps intact backups instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_artifact_is_counted_out() {
    let w = world().await;
    let root = store_root(&w);
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    // Six back-dated backups at 01:00..06:00 yesterday; the four newest are
    // damaged, each in its own way.
    let mut made = Vec::new();
    for hour in 1..=6 {
        let name = format!("{}T{hour:02}-00-00Z.sqlite", day.format("%Y-%m-%d"));
        let at = format!("{}T{hour:02}:00:00Z", day.format("%Y-%m-%d"));
        backdated(&root, "db", &name, &at).await;
        made.push(format!("db/{name}"));
    }
    let data = |i: usize| root.join(&made[i]);
    let mut bytes = std::fs::read(data(5)).unwrap();
    bytes[3] ^= 0xff;
    std::fs::write(data(5), &bytes).unwrap();
    let bytes = std::fs::read(data(4)).unwrap();
    std::fs::write(data(4), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(data(3), b"").unwrap();
    std::fs::remove_file(data(2)).unwrap();

    let agent = w.agent().await;
    let mut params = KEEP_3.to_vec();
    params.push(("audit", "true"));
    let rec = backup(&agent, &params, false).await;
    assert!(
        matches!(rec.status, RunStatus::Succeeded | RunStatus::Failed),
        "{}",
        error_of(&rec)
    );
    let text = findings(&rec);
    assert_eq!(metric(&rec, "corrupted"), 4.0, "{text}");
    // keep_last = 3 over the backups that are not damaged: the fresh one
    // and the two intact ones; the four damaged ones go, each saying why.
    let after = names(&w).await;
    assert!(
        after.contains(&made[0]) && after.contains(&made[1]),
        "{after:?}\n{text}"
    );
    for damaged in &made[2..] {
        assert!(!after.contains(damaged), "{damaged} kept:\n{text}");
        assert!(
            text.contains(&format!("deleted {}", damaged.trim_start_matches("db/")))
                && text.contains("damaged (checksum mismatch or unreadable)"),
            "{text}"
        );
    }
    assert_eq!(after.len(), 3, "{after:?}");
}

/// `min_keep` is a floor no rule goes below, with real artifacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_keep_is_a_floor() {
    for (min_keep, left) in [("1", 1usize), ("3", 3), ("9", 6)] {
        let w = world().await;
        let root = store_root(&w);
        let day = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
        for hour in 1..=5 {
            let name = format!("{}T{hour:02}-00-00Z.sqlite", day.format("%Y-%m-%d"));
            let at = format!("{}T{hour:02}:00:00Z", day.format("%Y-%m-%d"));
            backdated(&root, "db", &name, &at).await;
        }
        let agent = w.agent().await;
        let rec = backup(
            &agent,
            &[
                ("keep_last", "0"),
                ("keep_daily", "0"),
                ("keep_weekly", "0"),
                ("keep_monthly", "0"),
                ("min_keep", min_keep),
            ],
            false,
        )
        .await;
        assert_eq!(rec.status, RunStatus::Succeeded, "{}", error_of(&rec));
        let after = names(&w).await;
        assert_eq!(
            after.len(),
            left,
            "min_keep {min_keep}: {after:?}\n{}",
            findings(&rec)
        );
        if left > 1 {
            assert!(
                findings(&rec).contains(&format!("of min_keep = {min_keep} (the floor)")),
                "{}",
                findings(&rec)
            );
        }
    }
    // min_keep = 0 is refused, naming the parameter.
    let w = world().await;
    let agent = w.agent().await;
    let rec = backup(&agent, &[("min_keep", "0")], false).await;
    assert_ne!(rec.status, RunStatus::Succeeded);
    assert!(error_of(&rec).contains("min_keep"), "{}", error_of(&rec));
    assert!(names(&w).await.is_empty());
}

/// When the newest backup's verification failed, nothing is deleted, even
/// with a policy that keeps one backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_deleted_when_the_newest_backup_did_not_verify() {
    let w = world().await;
    let root = store_root(&w);
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
    for hour in 1..=4 {
        let name = format!("{}T{hour:02}-00-00Z.sqlite", day.format("%Y-%m-%d"));
        let at = format!("{}T{hour:02}:00:00Z", day.format("%Y-%m-%d"));
        backdated(&root, "db", &name, &at).await;
    }
    let agent = w.agent().await;
    let before = names(&w).await;
    for dest in CANNOT_RESTORE {
        let rec = backup(
            &agent,
            &[
                ("keep_last", "1"),
                ("keep_daily", "0"),
                ("keep_weekly", "0"),
                ("keep_monthly", "0"),
                ("min_keep", "1"),
                ("verify", "true"),
                ("verify_target", dest),
            ],
            false,
        )
        .await;
        let text = findings(&rec);
        assert_eq!(metric(&rec, "deleted"), 0.0, "{text}");
        assert!(text.contains("retention deferred"), "{text}");
        let after = names(&w).await;
        assert!(before.is_subset(&after), "{dest}: {after:?}\n{text}");
    }
    assert_eq!(names(&w).await.len(), before.len() + 2);
}

/// Issue 13 part 2 across branches: once the host records a run whose
/// report lists a failed action as failed, a backup whose restore test
/// failed is a failed run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verification_is_a_failed_run() {
    let w = world().await;
    let agent = w.agent().await;
    for dest in CANNOT_RESTORE {
        let rec = backup(
            &agent,
            &[("verify", "true"), ("verify_target", dest)],
            false,
        )
        .await;
        assert_eq!(rec.status, RunStatus::Failed, "{dest}: {}", findings(&rec));
    }
    // A verified one stays succeeded.
    let rec = backup(
        &agent,
        &[("verify", "true"), ("verify_target", "scratch")],
        false,
    )
    .await;
    assert_eq!(rec.status, RunStatus::Succeeded, "{}", findings(&rec));
}
