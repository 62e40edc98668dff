//! `warden:plugin/artifacts`: host-side dump and restore into the artifact
//! stores of `warden.toml`, and list, verify and delete. The bytes never
//! cross into the plugin.
//!
//! - Permission ([`check`]): the grant for the target must list the store
//!   (`artifacts = [...]`); a dump also needs `read` on the target; a
//!   restore needs the destination in the grant's `restore_to`.
//! - Names are the plugin's, kept under `<target>/` in the store: a plugin
//!   only sees and deletes the artifacts of the targets it is granted.
//! - Dump, restore and delete change something: in dry-run they are
//!   recorded as planned actions and not done. Done, they are recorded as
//!   executed (or failed) actions.
//! - A dump writes into a [`crate::artifacts::PendingArtifact`] and is
//!   committed (checksummed, published, manifest last) only when the tool
//!   succeeded: a failed or interrupted dump leaves no artifact.
//! - A restore verifies the artifact's checksums first.
//! - Every call has a span (`artifacts.*`), and a dump or restore may run
//!   until the run's deadline (not the statement timeout).

use super::permission::{Resolved, TargetCall, check_target, lookup};
use super::{HostState, RunEnv, denied, invalid, record_error};
use crate::artifacts::dump::{self, Counts, DumpContext, DumpError, Tools};
use crate::artifacts::{ArtifactError, ArtifactName, ArtifactStore, Manifest};
use crate::capability::CapabilityClass;
use crate::host::bindings::types::{DbError, Error, Label};
use crate::host::bindings::warden::plugin::artifacts as wit;
use crate::runs::{Action, ActionState};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument as _;

/// Manifest metadata keys holding the per-object counts: `count:<object>`.
const COUNT_PREFIX: &str = "count:";

/// The store `store`, after the permission check.
fn open_store(env: &RunEnv, store: &str) -> Result<Arc<dyn ArtifactStore>, Error> {
    let config = env
        .config
        .store(store)
        .ok_or_else(|| denied(format!("no artifact store named `{store}`")))?;
    Ok(crate::artifacts::open(config))
}

/// `<target>/<name>`, checked.
fn full_name(target: &str, name: &str) -> Result<ArtifactName, Error> {
    if name.is_empty() {
        return Err(invalid("the artifact name is empty"));
    }
    ArtifactName::parse(&format!("{target}/{name}")).map_err(|e| invalid(e.to_string()))
}

fn artifact_error(env: &RunEnv, e: ArtifactError) -> Error {
    let text = env.redactor.redact(&e.to_string());
    match e {
        ArtifactError::InvalidName(_)
        | ArtifactError::AlreadyExists(_)
        | ArtifactError::NotFound(_) => invalid(text),
        ArtifactError::Io { .. } | ArtifactError::Corrupt(_) => Error::Other(text),
    }
}

fn dump_error(e: DumpError) -> Error {
    match e {
        DumpError::InvalidInput(m) | DumpError::Unsupported(m) => invalid(m),
        DumpError::Failed(message) => Error::TargetError(DbError {
            code: String::new(),
            message,
        }),
    }
}

fn tools(env: &RunEnv) -> Tools {
    Tools {
        pg_bin_dir: env.config.pg_bin_dir.clone(),
    }
}

fn dump_options(options: wit::DumpOptions) -> dump::DumpOptions {
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    match options {
        wit::DumpOptions::Postgres(o) => dump::DumpOptions::Postgres(dump::PgDumpOptions {
            format: match o.format {
                wit::PgFormat::Custom => dump::PgFormat::Custom,
                wit::PgFormat::Directory => dump::PgFormat::Directory,
            },
            compression: o.compression,
            jobs: o.jobs,
            include_schemas: o.include_schemas,
            exclude_schemas: o.exclude_schemas,
            include_tables: o.include_tables,
            exclude_tables: o.exclude_tables,
        }),
        wit::DumpOptions::Mongodb(o) => dump::DumpOptions::Mongodb(dump::MongoDumpOptions {
            database: nonempty(o.database),
            include_collections: o.include_collections,
            exclude_collections: o.exclude_collections,
            gzip: o.gzip,
        }),
        wit::DumpOptions::Sqlite => dump::DumpOptions::Sqlite,
    }
}

fn counts_of(counts: &Counts) -> Vec<wit::ObjectCount> {
    counts
        .iter()
        .map(|(name, count)| wit::ObjectCount {
            name: name.clone(),
            count: *count,
        })
        .collect()
}

/// A manifest as the plugin sees it: the name relative to the target, the
/// counts apart from the other metadata.
fn to_wit(target: &str, m: &Manifest) -> wit::Artifact {
    let prefix = format!("{target}/");
    let mut counts = Vec::new();
    let mut metadata = Vec::new();
    for (k, v) in &m.metadata {
        match k.strip_prefix(COUNT_PREFIX) {
            Some(object) => counts.push(wit::ObjectCount {
                name: object.to_string(),
                count: v.parse().unwrap_or(0),
            }),
            None => metadata.push(Label {
                name: k.clone(),
                value: v.clone(),
            }),
        }
    }
    wit::Artifact {
        name: m.name.strip_prefix(&prefix).unwrap_or(&m.name).to_string(),
        directory: m.kind == crate::artifacts::ArtifactKind::Directory,
        size_bytes: m.size_bytes,
        sha256: m.sha256.clone(),
        created_at: m.created_at.to_rfc3339(),
        completed_at: m.completed_at.to_rfc3339(),
        counts,
        metadata,
    }
}

/// The engines' futures, boxed where their lifetimes are concrete (sqlx's
/// executors otherwise trip the `Send` check of the async host trait).
fn dump_boxed<'a>(
    source: &'a crate::config::Target,
    options: &'a dump::DumpOptions,
    out: &'a std::path::Path,
    ctx: &'a DumpContext<'a>,
) -> futures_util::future::BoxFuture<'a, Result<dump::DumpOutcome, DumpError>> {
    Box::pin(dump::dump(source, options, out, ctx))
}

fn restore_boxed<'a>(
    destination: &'a crate::config::Target,
    data: &'a std::path::Path,
    metadata: &'a BTreeMap<String, String>,
    options: &'a dump::RestoreOptions,
    ctx: &'a DumpContext<'a>,
) -> futures_util::future::BoxFuture<'a, Result<Counts, DumpError>> {
    Box::pin(dump::restore(destination, data, metadata, options, ctx))
}

fn millis_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn span(
    env: &RunEnv,
    call: &str,
    operation: &str,
    target: &str,
    class: CapabilityClass,
) -> tracing::Span {
    let system = env
        .config
        .target(target)
        .map_or("other", |t| super::sql::system_name(t.kind));
    crate::telemetry::host_call_span(call, system, operation, target, class.as_str())
}

/// The host action an artifacts call stands for (its text names the
/// target, store and artifact; it holds no secret).
fn artifact_call(target: &str, statement: String, class: CapabilityClass) -> Action {
    let fingerprint = crate::runs::fingerprint(target, class, &statement, &[]);
    Action::host(
        target,
        class,
        statement,
        Vec::new(),
        fingerprint,
        ActionState::Executed,
    )
}

impl HostState {
    /// Records a host action of an artifacts call.
    fn artifact_action(
        &mut self,
        target: &str,
        statement: String,
        class: CapabilityClass,
        result: Result<(), &Error>,
        planned: bool,
    ) {
        let state = match (planned, result) {
            (true, _) => ActionState::Planned,
            (false, Ok(())) => ActionState::Executed,
            (false, Err(_)) => ActionState::Failed,
        };
        let mut action = artifact_call(target, statement, class);
        action.state = state;
        action.error = result.err().map(super::wit::error_text);
        self.actions.push(action);
    }

    /// `artifacts.dump` without the wasm boundary.
    pub async fn artifacts_dump(
        &mut self,
        target: &str,
        store: &str,
        name: &str,
        options: wit::DumpOptions,
    ) -> Result<wit::DumpResult, Error> {
        let env = self.run_env()?;
        let Resolved { target: source, .. } =
            check_target(env.scope(), TargetCall::ArtifactDump { target, store })?;
        let full = full_name(target, name)?;
        let options = dump_options(options);
        dump::validate(source, &options).map_err(dump_error)?;
        let statement = format!("dump target `{target}` into store `{store}` as `{full}`");
        if env.dry_run() {
            self.artifact_action(target, statement, CapabilityClass::Read, Ok(()), true);
            return Ok(wit::DumpResult {
                outcome: wit::Outcome::Planned,
                artifact: None,
                duration_ms: 0,
            });
        }
        // A dump changes no target and its artifact's name carries the time
        // it is made: the real run of an approved plan makes it without
        // holding it to the plan's (see `hold_to_plan`).
        let started = Instant::now();
        let span = span(
            &env,
            "artifacts.dump",
            "dump",
            target,
            CapabilityClass::Read,
        );
        let result = async {
            let store = open_store(&env, store)?;
            let pending = store
                .begin(&full, dump::artifact_kind(&options))
                .await
                .map_err(|e| artifact_error(&env, e))?;
            let tools = tools(&env);
            let ctx = DumpContext {
                application_name: format!("warden/{}", env.plugin),
                redactor: &env.redactor,
                tools: &tools,
            };
            let left = env.deadline.saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(
                left,
                dump_boxed(source, &options, pending.path(), &ctx),
            )
            .await
            {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => {
                    pending.abort().await;
                    return Err(dump_error(e));
                }
                Err(_) => {
                    pending.abort().await;
                    return Err(Error::Timeout(
                        "the run's deadline passed during the dump; nothing was kept".into(),
                    ));
                }
            };
            let mut metadata: BTreeMap<String, String> = outcome.metadata;
            metadata.insert("source-target".into(), target.to_string());
            for (object, count) in &outcome.counts {
                metadata.insert(format!("{COUNT_PREFIX}{object}"), count.to_string());
            }
            pending
                .commit_with_digests(metadata, outcome.digests)
                .await
                .map_err(|e| artifact_error(&env, e))
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok(_) => self.artifact_action(target, statement, CapabilityClass::Read, Ok(()), false),
            Err(e) => {
                record_error(&span, e);
                self.artifact_action(target, statement, CapabilityClass::Read, Err(e), false);
            }
        }
        let manifest = result?;
        Ok(wit::DumpResult {
            outcome: wit::Outcome::Executed,
            artifact: Some(to_wit(target, &manifest)),
            duration_ms: millis_since(started),
        })
    }

    /// `artifacts.restore` without the wasm boundary.
    pub async fn artifacts_restore(
        &mut self,
        target: &str,
        store: &str,
        name: &str,
        destination: &str,
        options: wit::RestoreOptions,
    ) -> Result<wit::RestoreResult, Error> {
        let env = self.run_env()?;
        check_target(
            env.scope(),
            TargetCall::ArtifactRestore {
                target,
                store,
                destination,
            },
        )?;
        let full = full_name(target, name)?;
        let dest = lookup(&env.config, destination)?;
        let statement =
            format!("restore `{full}` from store `{store}` into target `{destination}`");
        let opened = open_store(&env, store)?;
        let manifest = opened
            .get(&full)
            .await
            .map_err(|e| artifact_error(&env, e))?
            .ok_or_else(|| invalid(format!("store `{store}` has no artifact `{full}`")))?;
        if env.dry_run() {
            self.artifact_action(destination, statement, CapabilityClass::Write, Ok(()), true);
            return Ok(wit::RestoreResult {
                outcome: wit::Outcome::Planned,
                counts: Vec::new(),
                duration_ms: 0,
            });
        }
        self.hold_to_plan(&artifact_call(
            destination,
            statement.clone(),
            CapabilityClass::Write,
        ))?;
        let started = Instant::now();
        let span = span(
            &env,
            "artifacts.restore",
            "restore",
            destination,
            CapabilityClass::Write,
        );
        let options = dump::RestoreOptions {
            clean: options.clean,
            jobs: options.jobs,
            database: (!options.database.is_empty()).then_some(options.database),
        };
        let result = async {
            let report = opened
                .verify(&full)
                .await
                .map_err(|e| artifact_error(&env, e))?;
            if !report.ok {
                return Err(Error::Other(format!(
                    "artifact `{full}` does not match its manifest, nothing was restored: {}",
                    report.problems.join("; ")
                )));
            }
            let path = opened.local_path(&full).ok_or_else(|| {
                Error::Other(format!(
                    "store `{store}` is not on this host; restoring from it is not supported"
                ))
            })?;
            let tools = tools(&env);
            let ctx = DumpContext {
                application_name: format!("warden/{}", env.plugin),
                redactor: &env.redactor,
                tools: &tools,
            };
            let left = env.deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(
                left,
                restore_boxed(dest, &path, &manifest.metadata, &options, &ctx),
            )
            .await
            {
                Ok(Ok(counts)) => Ok(counts),
                Ok(Err(e)) => Err(dump_error(e)),
                Err(_) => Err(Error::Timeout(
                    "the run's deadline passed during the restore".into(),
                )),
            }
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok(_) => self.artifact_action(
                destination,
                statement,
                CapabilityClass::Write,
                Ok(()),
                false,
            ),
            Err(e) => {
                record_error(&span, e);
                self.artifact_action(
                    destination,
                    statement,
                    CapabilityClass::Write,
                    Err(e),
                    false,
                );
            }
        }
        let counts = result?;
        Ok(wit::RestoreResult {
            outcome: wit::Outcome::Executed,
            counts: counts_of(&counts),
            duration_ms: millis_since(started),
        })
    }

    /// `artifacts.list` without the wasm boundary.
    pub async fn artifacts_list(
        &mut self,
        target: &str,
        store: &str,
        prefix: &str,
    ) -> Result<Vec<wit::Artifact>, Error> {
        let env = self.run_env()?;
        check_target(env.scope(), TargetCall::Artifacts { target, store })?;
        let opened = open_store(&env, store)?;
        let list = opened
            .list(&format!("{target}/{prefix}"))
            .await
            .map_err(|e| artifact_error(&env, e))?;
        Ok(list.iter().map(|m| to_wit(target, m)).collect())
    }

    /// `artifacts.verify` without the wasm boundary.
    pub async fn artifacts_verify(
        &mut self,
        target: &str,
        store: &str,
        name: &str,
    ) -> Result<wit::VerifyResult, Error> {
        let env = self.run_env()?;
        check_target(env.scope(), TargetCall::Artifacts { target, store })?;
        let full = full_name(target, name)?;
        let opened = open_store(&env, store)?;
        let span = span(
            &env,
            "artifacts.verify",
            "verify",
            target,
            CapabilityClass::Read,
        );
        let result = opened
            .verify(&full)
            .instrument(span.clone())
            .await
            .map_err(|e| artifact_error(&env, e));
        if let Err(e) = &result {
            record_error(&span, e);
        }
        let report = result?;
        Ok(wit::VerifyResult {
            ok: report.ok,
            problems: report.problems,
        })
    }

    /// `artifacts.delete` without the wasm boundary.
    pub async fn artifacts_delete(
        &mut self,
        target: &str,
        store: &str,
        name: &str,
    ) -> Result<wit::Outcome, Error> {
        let env = self.run_env()?;
        check_target(env.scope(), TargetCall::Artifacts { target, store })?;
        let full = full_name(target, name)?;
        let opened = open_store(&env, store)?;
        let statement = format!("delete `{full}` from store `{store}`");
        if env.dry_run() {
            // Say now if there is nothing to delete, as the real run would.
            if opened
                .get(&full)
                .await
                .map_err(|e| artifact_error(&env, e))?
                .is_none()
            {
                return Err(invalid(format!("store `{store}` has no artifact `{full}`")));
            }
            self.artifact_action(target, statement, CapabilityClass::Write, Ok(()), true);
            return Ok(wit::Outcome::Planned);
        }
        self.hold_to_plan(&artifact_call(
            target,
            statement.clone(),
            CapabilityClass::Write,
        ))?;
        let span = span(
            &env,
            "artifacts.delete",
            "delete",
            target,
            CapabilityClass::Write,
        );
        let result = opened
            .delete(&full)
            .instrument(span.clone())
            .await
            .map_err(|e| artifact_error(&env, e));
        match &result {
            Ok(()) => {
                self.artifact_action(target, statement, CapabilityClass::Write, Ok(()), false)
            }
            Err(e) => {
                record_error(&span, e);
                self.artifact_action(target, statement, CapabilityClass::Write, Err(e), false);
            }
        }
        result.map(|()| wit::Outcome::Executed)
    }
}

impl wit::Host for HostState {
    async fn dump(
        &mut self,
        target: String,
        store: String,
        name: String,
        options: wit::DumpOptions,
    ) -> wasmtime::Result<Result<wit::DumpResult, Error>> {
        Ok(self.artifacts_dump(&target, &store, &name, options).await)
    }

    async fn restore(
        &mut self,
        target: String,
        store: String,
        name: String,
        destination: String,
        options: wit::RestoreOptions,
    ) -> wasmtime::Result<Result<wit::RestoreResult, Error>> {
        Ok(self
            .artifacts_restore(&target, &store, &name, &destination, options)
            .await)
    }

    async fn list(
        &mut self,
        target: String,
        store: String,
        prefix: String,
    ) -> wasmtime::Result<Result<Vec<wit::Artifact>, Error>> {
        Ok(self.artifacts_list(&target, &store, &prefix).await)
    }

    async fn verify(
        &mut self,
        target: String,
        store: String,
        name: String,
    ) -> wasmtime::Result<Result<wit::VerifyResult, Error>> {
        Ok(self.artifacts_verify(&target, &store, &name).await)
    }

    async fn delete(
        &mut self,
        target: String,
        store: String,
        name: String,
    ) -> wasmtime::Result<Result<wit::Outcome, Error>> {
        Ok(self.artifacts_delete(&target, &store, &name).await)
    }
}
