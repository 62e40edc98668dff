//! `warden:plugin/artifacts`: host-side dump and restore into the artifact
//! stores of `warden.toml`, and list, verify and delete. The bytes never
//! cross into the plugin.
//!
//! - Permission ([`super::permission::check_target`], in [`HostState::call`]): the grant for the target must list the store
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

use super::call::{Call, Cx, Go, Hold};
use super::permission::{TargetCall, lookup};
use super::{HostState, RunEnv, denied, invalid};
use crate::artifacts::dump::{self, Counts, DumpContext, DumpError, Tools};
use crate::artifacts::{ArtifactError, ArtifactName, ArtifactStore, Manifest};
use crate::capability::CapabilityClass;
use crate::host::bindings::types::{DbError, Error, Label};
use crate::host::bindings::warden::plugin::artifacts as wit;
use crate::runs::{Action, ActionState};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

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

fn dump_context<'a>(env: &'a RunEnv, tools: &'a Tools) -> DumpContext<'a> {
    DumpContext {
        application_name: format!("warden/{}", env.plugin),
        redactor: &env.redactor,
        tools,
    }
}

impl HostState {
    /// `artifacts.dump` without the wasm boundary.
    pub async fn artifacts_dump(
        &mut self,
        target: &str,
        store: &str,
        name: &str,
        options: wit::DumpOptions,
    ) -> Result<wit::DumpResult, Error> {
        let ask = TargetCall::ArtifactDump { target, store };
        let call = Call::db("artifacts.dump", "dump", target, CapabilityClass::Read, ask);
        self.call(call.for_the_run(), |host, cx| {
            Box::pin(host.dump_allowed(cx, store, name, options))
        })
        .await
    }

    async fn dump_allowed(
        &mut self,
        cx: Cx<'_, '_>,
        store: &str,
        name: &str,
        options: wit::DumpOptions,
    ) -> Result<wit::DumpResult, Error> {
        let (env, source) = (cx.env, cx.target);
        let target = source.name.as_str();
        let full = full_name(target, name)?;
        let options = dump_options(options);
        dump::validate(source, &options).map_err(dump_error)?;
        let statement = format!("dump target `{target}` into store `{store}` as `{full}`");
        let call = artifact_call(target, statement, CapabilityClass::Read);
        if self.mutation(env, call, Hold::No)? == Go::Planned {
            return Ok(wit::DumpResult {
                outcome: wit::Outcome::Planned,
                artifact: None,
                duration_ms: 0,
            });
        }
        let started = Instant::now();
        let store = open_store(env, store)?;
        let pending = store
            .begin(&full, dump::artifact_kind(&options))
            .await
            .map_err(|e| artifact_error(env, e))?;
        let tools = tools(env);
        let ctx = dump_context(env, &tools);
        let dumped = tokio::time::timeout(
            cx.left(),
            dump_boxed(source, &options, pending.path(), &ctx),
        )
        .await;
        let outcome = match dumped {
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
        let manifest = pending
            .commit_with_digests(metadata, outcome.digests)
            .await
            .map_err(|e| artifact_error(env, e))?;
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
        let ask = TargetCall::ArtifactRestore {
            target,
            store,
            destination,
        };
        let call = Call::db(
            "artifacts.restore",
            "restore",
            destination,
            CapabilityClass::Write,
            ask,
        );
        self.call(call.for_the_run(), |host, cx| {
            Box::pin(host.restore_allowed(cx, store, name, destination, options))
        })
        .await
    }

    async fn restore_allowed(
        &mut self,
        cx: Cx<'_, '_>,
        store: &str,
        name: &str,
        destination: &str,
        options: wit::RestoreOptions,
    ) -> Result<wit::RestoreResult, Error> {
        let env = cx.env;
        let full = full_name(&cx.target.name, name)?;
        let dest = lookup(&env.config, destination)?;
        let statement =
            format!("restore `{full}` from store `{store}` into target `{destination}`");
        let opened = open_store(env, store)?;
        let manifest = opened
            .get(&full)
            .await
            .map_err(|e| artifact_error(env, e))?
            .ok_or_else(|| invalid(format!("store `{store}` has no artifact `{full}`")))?;
        let call = artifact_call(destination, statement, CapabilityClass::Write);
        if self.mutation(env, call, Hold::ToPlan)? == Go::Planned {
            return Ok(wit::RestoreResult {
                outcome: wit::Outcome::Planned,
                counts: Vec::new(),
                duration_ms: 0,
            });
        }
        let started = Instant::now();
        let options = dump::RestoreOptions {
            clean: options.clean,
            jobs: options.jobs,
            database: (!options.database.is_empty()).then_some(options.database),
        };
        let report = opened
            .verify(&full)
            .await
            .map_err(|e| artifact_error(env, e))?;
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
        let tools = tools(env);
        let ctx = dump_context(env, &tools);
        let restored = tokio::time::timeout(
            cx.left(),
            restore_boxed(dest, &path, &manifest.metadata, &options, &ctx),
        )
        .await;
        let counts = match restored {
            Ok(Ok(counts)) => counts,
            Ok(Err(e)) => return Err(dump_error(e)),
            Err(_) => {
                return Err(Error::Timeout(
                    "the run's deadline passed during the restore".into(),
                ));
            }
        };
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
        let ask = TargetCall::Artifacts { target, store };
        let call = Call::db("artifacts.list", "list", target, CapabilityClass::Read, ask);
        self.call(call, |_, cx| {
            Box::pin(async move {
                let list = open_store(cx.env, store)?
                    .list(&format!("{target}/{prefix}"))
                    .await
                    .map_err(|e| artifact_error(cx.env, e))?;
                Ok(list.iter().map(|m| to_wit(target, m)).collect())
            })
        })
        .await
    }

    /// `artifacts.verify` without the wasm boundary.
    pub async fn artifacts_verify(
        &mut self,
        target: &str,
        store: &str,
        name: &str,
    ) -> Result<wit::VerifyResult, Error> {
        let ask = TargetCall::Artifacts { target, store };
        let call = Call::db(
            "artifacts.verify",
            "verify",
            target,
            CapabilityClass::Read,
            ask,
        );
        self.call(call.for_the_run(), |_, cx| {
            Box::pin(async move {
                let full = full_name(target, name)?;
                let report = open_store(cx.env, store)?
                    .verify(&full)
                    .await
                    .map_err(|e| artifact_error(cx.env, e))?;
                Ok(wit::VerifyResult {
                    ok: report.ok,
                    problems: report.problems,
                })
            })
        })
        .await
    }

    /// `artifacts.delete` without the wasm boundary.
    pub async fn artifacts_delete(
        &mut self,
        target: &str,
        store: &str,
        name: &str,
    ) -> Result<wit::Outcome, Error> {
        let ask = TargetCall::Artifacts { target, store };
        let call = Call::db(
            "artifacts.delete",
            "delete",
            target,
            CapabilityClass::Write,
            ask,
        );
        self.call(call, |host, cx| {
            Box::pin(async move {
                let env = cx.env;
                let full = full_name(target, name)?;
                let opened = open_store(env, store)?;
                if env.dry_run() {
                    // Say now if there is nothing to delete, as the real run would.
                    let found = opened
                        .get(&full)
                        .await
                        .map_err(|e| artifact_error(env, e))?;
                    if found.is_none() {
                        return Err(invalid(format!("store `{store}` has no artifact `{full}`")));
                    }
                }
                let statement = format!("delete `{full}` from store `{store}`");
                let call = artifact_call(target, statement, CapabilityClass::Write);
                if host.mutation(env, call, Hold::ToPlan)? == Go::Planned {
                    return Ok(wit::Outcome::Planned);
                }
                opened
                    .delete(&full)
                    .await
                    .map_err(|e| artifact_error(env, e))?;
                Ok(wit::Outcome::Executed)
            })
        })
        .await
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
