//! Warden plugin `backup`: dumps the invocation's target (PostgreSQL,
//! MongoDB or SQLite) into an artifact store through the host, verifies the
//! new backup, and applies a grandfather-father-son retention to the
//! plugin's earlier backups.
//!
//! A run, in order:
//!
//! 1. **dump** the target into `store` as `<prefix><UTC stamp><extension>`
//!    (`nightly/2026-11-22T10-15-00Z.dump`; see [`naming`]), with options
//!    by the target's kind: `pg_dump` format, compression, jobs and
//!    schema/table filters for PostgreSQL; database, collection filters and
//!    gzip for MongoDB; an online backup copy for SQLite. A failed dump
//!    fails the run (`Err`), and the host leaves no artifact behind;
//! 2. **verify** the new artifact's checksums against its manifest; then,
//!    when `verify` is true, restore it into the scratch target
//!    `verify_target` (dropping what is there first) and compare the
//!    restored per-table (or per-collection) counts with those the host
//!    recorded at dump time ([`verify`]). A failed check is a critical
//!    finding with the fix, and an action in state `failed` (`verify
//!    <artifact> in store <store>`, `test restore of <artifact> into
//!    <scratch>`), so the run is recorded as failed. The artifact is
//!    remembered (in the plugin's state) as **damaged** when its checksums
//!    do not match or it cannot be read, and as **unverified** when only
//!    the restore test failed or could not run (no privileges on the
//!    scratch target, scratch unusable, counts differ, no time left);
//! 3. **retention** over the plugin's artifacts under `prefix`
//!    ([`retention`], a pure function): keep the last `keep_last`, the
//!    newest of each of the last `keep_daily` days, `keep_weekly` ISO weeks
//!    and `keep_monthly` months that have backups, always the newest
//!    verified backup, and never fewer than `min_keep` (default 2); only a
//!    damaged backup is counted out (an unverified one counts like any
//!    other). Nothing is deleted unless the newest backup verified, and a
//!    backup only once a newer one verified. Delete the rest (unless
//!    `prune` is false), each deletion reported with the rules that did not
//!    keep it. Other artifacts in the store are left alone. A failed
//!    deletion is a warning.
//!
//! In dry-run the host plans the dump instead of running it; the report says
//! what would be backed up, and what retention would delete among the
//! existing artifacts (plus the one a real run would add). Nothing is
//! deleted: the plugin does not even ask.
//!
//! Report status: `ok` when the backup was made and verified and retention
//! went through (or in a dry-run); `warning` when a deletion failed or was
//! deferred or held (the newest backup did not verify), retention could not
//! list the store, or the restore check was skipped for lack of time;
//! `critical` when verification failed.

mod clock;
mod naming;
mod retention;
mod run;
mod settings;
mod verify;

use warden_sdk::{
    CapabilityClass, Context, Error, Manifest, ParamSpec, Plugin, Report, TargetKind,
};

use crate::settings::Settings;

struct Backup;

impl Plugin for Backup {
    fn manifest() -> Manifest {
        Manifest::new(
            "backup",
            env!("CARGO_PKG_VERSION"),
            "Dumps a PostgreSQL, MongoDB or SQLite target into an artifact store, verifies the backup (checksums, optionally a restore into a scratch target), and keeps a grandfather-father-son retention.",
        )
        .capability(CapabilityClass::Read)
        .target_kinds([TargetKind::Postgres, TargetKind::Mongodb, TargetKind::Sqlite])
        .param(
            ParamSpec::string(
                "store",
                "The artifact store to back up into, as named in warden.toml (the grant must list it in `artifacts`).",
            )
            .required(),
        )
        .params::<settings::Params>()
    }

    fn run(ctx: &Context) -> Result<Report, Error> {
        let settings = Settings::from_context(ctx)?;
        run::run(ctx, &settings)
    }
}

warden_sdk::export_plugin!(Backup);

#[cfg(test)]
mod tests {
    use super::*;
    use warden_sdk::{Invocation, Param, Trigger};

    /// The manifest's defaults (as the host fills them in) plus `store` make
    /// valid settings with the documented values.
    #[test]
    fn manifest_defaults_make_valid_settings() {
        let manifest = Backup::manifest();
        let mut names: Vec<&str> = manifest.params.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), manifest.params.len(), "duplicate parameter");
        let without_default: Vec<&str> = manifest
            .params
            .iter()
            .filter(|p| p.default.is_none())
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(without_default, ["store"]);
        assert!(
            manifest
                .params
                .iter()
                .all(|p| p.required == (p.name == "store"))
        );

        let mut params: Vec<Param> = manifest
            .params
            .iter()
            .filter_map(|p| {
                Some(Param {
                    name: p.name.clone(),
                    value: p.default.clone()?,
                })
            })
            .collect();
        params.push(Param {
            name: "store".into(),
            value: "local".into(),
        });
        for kind in [
            TargetKind::Postgres,
            TargetKind::Mongodb,
            TargetKind::Sqlite,
        ] {
            let ctx = Context::new(Invocation {
                run_id: "r".into(),
                trigger: Trigger::Schedule("nightly".into()),
                target: "main".into(),
                target_kind: kind,
                params: params.clone(),
                dry_run: false,
            });
            let s = Settings::from_context(&ctx).unwrap();
            assert_eq!(s.prefix, "");
            assert_eq!(s.compression, 6);
            assert!(s.gzip && s.prune && !s.verify);
            assert_eq!(
                (
                    s.policy.keep_last,
                    s.policy.keep_daily,
                    s.policy.keep_weekly,
                    s.policy.keep_monthly,
                    s.policy.min_keep
                ),
                (7, 7, 4, 6, 2)
            );
            assert!(
                s.ignored_params.is_empty(),
                "{kind:?}: {:?}",
                s.ignored_params
            );
        }
    }
}
