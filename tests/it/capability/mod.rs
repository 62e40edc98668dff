//! The middle of the test pyramid: capability code called without wasm
//! (`HostState::for_test`), against real services (a SQLite file, a local
//! artifact store, the run store, the run's PostgreSQL cluster), then
//! `HostState::finish` for what the run hands back.

mod artifacts;
mod postgres;
mod runbooks;
mod sql;
mod state;

use crate::world::World;
use std::sync::Arc;
use warden::config::Config;
use warden::host::{HostState, RunEnv};
use warden::policy::PolicySet;
use warden::runs::RunStore;

/// The world's config, policies and run store, loaded as the agent loads them.
pub struct Loaded {
    pub config: Arc<Config>,
    pub policies: Arc<PolicySet>,
    pub store: RunStore,
}

pub async fn load(w: &World) -> Loaded {
    let path = w.write();
    // The SQLite databases exist (as the agent finds them in production).
    for t in ["db.sqlite", "other.sqlite"] {
        std::fs::File::create(w.path(t)).unwrap();
    }
    let config = Config::load_with_env(&path, |_| None).unwrap_or_else(|d| panic!("{d}"));
    let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    let policies =
        PolicySet::load_dir(&w.path("policies"), &names).unwrap_or_else(|d| panic!("{d}"));
    std::fs::create_dir_all(w.path("state")).unwrap();
    let store = RunStore::open(&w.path("state/warden.db")).await.unwrap();
    Loaded {
        config: Arc::new(config),
        policies: Arc::new(policies),
        store,
    }
}

impl Loaded {
    /// A run of `plugin` on `target`, as its store data.
    pub fn run(&self, plugin: &str, target: &str, dry_run: bool) -> HostState {
        HostState::for_test(Arc::new(self.env(plugin, target, dry_run)))
    }

    /// The environment of such a run, to change before it starts.
    pub fn env(&self, plugin: &str, target: &str, dry_run: bool) -> RunEnv {
        RunEnv::for_test(
            plugin,
            target,
            self.config.clone(),
            self.policies.clone(),
            self.store.clone(),
            dry_run,
        )
    }
}
