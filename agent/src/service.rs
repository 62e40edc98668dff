//! `warden run`: the long-running agent. Starts, in order:
//! 1. crash recovery: runs left `running` by a previous process are marked
//!    `interrupted` (and counted by their rule's circuit breaker); queued
//!    runs and retries stay queued;
//! 2. the guardrails, rebuilt from the state database;
//! 3. admission (the one durable writer), the run queue, the scheduler;
//! 4. hot reload of the plugin and policy folders;
//! 5. retention: history older than `state_keep` is deleted, at start and
//!    every few minutes (see [`crate::runs::retention`]);
//! 6. the HTTP API, if `[http]` is set (see [`http_serve`] for its
//!    listener's timeouts and connection cap).
//!
//! On shutdown (SIGTERM, Ctrl-C) it drains: the HTTP API and the
//! scheduler stop taking requests (HTTP connections without a request are
//! closed, requests in progress answered within their deadline), no queued
//! run starts, runs in flight
//! finish (or hit their `max_runtime`), and the queue stays in the state
//! database for the next start. Last, the state database's write-ahead log
//! is checkpointed and truncated to zero bytes.

use crate::agent::Agent;
use crate::dispatch::admit::{Admitter, rebuild_guardrails};
use crate::dispatch::queue::Dispatcher;
use crate::runs::Trigger;
use crate::triggers::{http, http_serve, schedule};
use anyhow::Context as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, watch};

/// A running agent's parts, for tests and the CLI.
pub struct Running {
    pub agent: Arc<Agent>,
    pub admitter: Admitter,
    pub dispatcher: Arc<Dispatcher>,
    /// Where the HTTP API listens, if it does.
    pub http_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _reloader: Option<crate::reload::Reloader>,
}

/// Starts everything; returns once the agent serves.
pub async fn start(agent: Arc<Agent>) -> anyhow::Result<Running> {
    let interrupted = agent.store.interrupt_running().await?;
    for rec in &interrupted {
        tracing::warn!(run = %rec.id, plugin = %rec.plugin, target = %rec.target, "run interrupted by the last shutdown; not run again");
    }
    agent
        .restore_metrics()
        .await
        .context("restoring metrics from the state database")?;
    let mut guardrails = rebuild_guardrails(&agent).await?;
    let policies = agent.policies();
    for rec in &interrupted {
        if let Trigger::Alert { rule, .. } = &rec.trigger
            && let Some(rule) = policies.rule(rule)
            && let Some(c) = guardrails.finished(rule, &rec.id, rec.status, chrono::Utc::now())
        {
            agent
                .store
                .save_circuit(&rule.name, &serde_json::to_value(&c)?)
                .await?;
        }
    }
    let guardrails = Arc::new(Mutex::new(guardrails));
    let wake = Arc::new(Notify::new());
    let admitter = Admitter::start(agent.clone(), guardrails.clone(), wake.clone());
    // Runs that plugins start go through the same admission.
    let _ = agent.starter.set(Arc::new(admitter.clone()));
    if !agent.config.notify.is_empty() {
        let notifier = crate::notify::Notifier::start(&agent.config.notify, &agent.metrics)?;
        let _ = agent.notifier.set(notifier);
    }
    let dispatcher = Arc::new(Dispatcher::new(agent.clone(), guardrails.clone(), wake));
    let (stop, stop_rx) = watch::channel(false);
    let (reloaded_tx, reloaded_rx) = watch::channel(0u64);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn({
        let d = dispatcher.clone();
        async move { d.run().await }
    }));
    tasks.push(tokio::spawn(schedule::run(
        agent.clone(),
        admitter.clone(),
        reloaded_rx,
        stop_rx.clone(),
    )));
    let policies_of = agent.clone();
    tasks.push(tokio::spawn(crate::runs::retention::run(
        agent.store.clone(),
        agent.config.state_keep,
        move || crate::policy::history_needed(&policies_of.policies().rules),
        stop_rx.clone(),
    )));
    let reloader = match crate::reload::Reloader::start(agent.clone(), reloaded_tx) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "hot reload is off: cannot watch the plugin and policy folders");
            None
        }
    };
    let mut http_addr = None;
    if let Some(cfg) = &agent.config.http {
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {} ([http] listen)", cfg.listen))?;
        let addr = listener.local_addr()?;
        http_addr = Some(addr);
        let api = Arc::new(http::Api {
            agent: agent.clone(),
            admitter: admitter.clone(),
            dispatcher: dispatcher.clone(),
            guardrails: guardrails.clone(),
            token: cfg.token.expose().as_bytes().to_vec(),
            approvers: cfg
                .approvers
                .iter()
                .map(|a| (a.name.clone(), a.token.expose().as_bytes().to_vec()))
                .collect(),
            ready: std::sync::atomic::AtomicBool::new(false),
        });
        let app = http::router(
            api.clone(),
            usize::try_from(cfg.max_body).unwrap_or(usize::MAX),
        );
        tasks.push(tokio::spawn(http_serve::serve(
            listener,
            app,
            http_serve::Limits::from(cfg),
            agent.metrics.clone(),
            stop_rx.clone(),
        )));
        api.ready.store(true, Ordering::SeqCst);
        tracing::info!(address = %addr, "HTTP API listening on {addr}");
    }
    Ok(Running {
        agent,
        admitter,
        dispatcher,
        http_addr,
        stop,
        tasks,
        _reloader: reloader,
    })
}

impl Running {
    /// Drains and stops: see the module docs.
    pub async fn stop(self) {
        tracing::info!(
            in_flight = self.dispatcher.running(),
            "draining: no new runs; waiting for runs in flight"
        );
        let _ = self.stop.send(true);
        self.dispatcher.drain();
        for t in self.tasks {
            let _ = t.await;
        }
        // Nothing writes any more: leave an empty write-ahead log behind.
        if let Err(e) = self.agent.store.checkpoint_truncate().await {
            tracing::warn!(error = %format!("{e:#}"), "state database not checkpointed at shutdown");
        }
    }
}

/// Starts the agent, waits for `shutdown`, then drains.
pub async fn serve(agent: Arc<Agent>, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(agent.clone()).await?;
    let loaded = agent.loaded();
    tracing::info!(
        plugins = loaded.plugins.len(),
        targets = agent.config.targets.len(),
        grants = loaded.policies.grants.len(),
        schedules = loaded.policies.schedules.len(),
        rules = loaded.policies.rules.len(),
        "warden is running; stop with Ctrl-C or SIGTERM"
    );
    shutdown.await;
    running.stop().await;
    tracing::info!("warden stopped");
    Ok(())
}
