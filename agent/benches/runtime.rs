//! Runtime figures: component load from cache, instantiate + run of a no-op
//! plugin, and the cost of one host `log` and `sql` call. Prints figures;
//! asserts nothing about time. Run with `cargo xtask bench` (it builds the
//! fixture components first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warden::agent::{Agent, RunRequest};
use warden::runs::RunStatus;

fn fixture(root: &Path, name: &str) -> PathBuf {
    let p = root
        .join("target/plugin-fixtures")
        .join(format!("{name}.wasm"));
    assert!(
        p.is_file(),
        "{} missing: run `cargo xtask build-plugins`",
        p.display()
    );
    p
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

async fn run_bench(agent: &Agent, params: &[(&str, &str)]) -> Duration {
    let mut req = RunRequest::manual("bench", "db");
    for (k, v) in params {
        req = req.param(k, v);
    }
    let t = Instant::now();
    let r = agent.invoke(req).await.unwrap();
    let d = t.elapsed();
    assert_eq!(r.status, RunStatus::Succeeded, "{r:?}");
    d
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    for name in ["noop", "bench"] {
        std::fs::copy(
            fixture(&root, name),
            dir.path().join("plugins").join(format!("{name}.wasm")),
        )
        .unwrap();
    }
    std::fs::write(
        dir.path().join("policies/bench.toml"),
        "[[grant]]\nplugin = \"noop\"\ntargets = [\"db\"]\ncapabilities = [\"read\"]\n\n\
         [[grant]]\nplugin = \"bench\"\ntargets = [\"db\"]\ncapabilities = [\"read\"]\nmax_runtime = \"600s\"\n",
    )
    .unwrap();
    let db = dir.path().join("db.sqlite");
    std::fs::File::create(&db).unwrap();
    std::fs::write(
        dir.path().join("warden.toml"),
        "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\nstate_db = \"state/warden.db\"\n\n\
         [[target]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"db.sqlite\"\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = dir.path().join("warden.toml");
        // First load compiles and fills the cache; the rest are cache hits.
        let t = Instant::now();
        let agent = Agent::load(&config).await.unwrap();
        println!("first load (compile 2 components + describe): {:?}", t.elapsed());
        let noop_path = dir.path().join("plugins/noop.wasm");
        let mut loads = Vec::new();
        for _ in 0..50 {
            let t = Instant::now();
            let p = agent.runtime.load_file(&noop_path).await.unwrap();
            loads.push(t.elapsed());
            assert_eq!(p.manifest.name, "noop");
        }
        println!(
            "component load from cache (read + sha256 + deserialize + link + describe): median {:?}, p90 {:?} (n=50)",
            median(loads.clone()),
            pct(&loads, 0.9)
        );

        // Engine-level: fresh store + instantiate + run + drop.
        let noop = agent.loaded().plugins.get("noop").unwrap().clone();
        let env = |id: usize| {
            std::sync::Arc::new(warden::host::RunEnv {
                run_id: format!("bench-{id}"),
                plugin: "noop".into(),
                invocation: warden::host::bindings::types::Invocation {
                    run_id: format!("bench-{id}"),
                    trigger: warden::host::bindings::types::Trigger::Manual("bench".into()),
                    target: "db".into(),
                    target_kind: warden::host::bindings::types::TargetKind::Sqlite,
                    params: vec![],
                    dry_run: false,
                },
                config: agent.config.clone(),
                policies: agent.policies(),
                runbooks: agent.loaded().runbooks.clone(),
                store: agent.store.clone(),
                redactor: agent.redactor.clone(),
                deadline: Instant::now() + Duration::from_secs(10),
                max_runtime: Duration::from_secs(10),
                approved: false,
                approved_plan: None,
                starter: None,
                depth: 0,
                metrics: agent.metrics.clone(),
            })
        };
        for i in 0..100 {
            agent.runtime.execute(&noop, env(i), 64 << 20).await;
        }
        let mut runs = Vec::new();
        for i in 0..2000 {
            let e = env(i);
            let t = Instant::now();
            let out = agent.runtime.execute(&noop, e, 64 << 20).await;
            runs.push(t.elapsed());
            assert_eq!(out.status, RunStatus::Succeeded);
        }
        println!(
            "no-op run, store + instantiate + run + drop: median {:?}, p90 {:?}, p99 {:?} (n=2000; target <= 50us median)",
            median(runs.clone()),
            pct(&runs, 0.9),
            pct(&runs, 0.99)
        );

        // Full path: records written to the state database before and after.
        let mut full = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let r = agent.invoke(RunRequest::manual("noop", "db")).await.unwrap();
            full.push(t.elapsed());
            assert_eq!(r.status, RunStatus::Succeeded);
        }
        println!(
            "no-op invoke incl. run records in SQLite: median {:?}, p90 {:?} (n=200)",
            median(full.clone()),
            pct(&full, 0.9)
        );

        // Host calls: difference between N calls and none, per call.
        const N: usize = 200_000;
        let n = N.to_string();
        let base = median(vec![
            run_bench(&agent, &[]).await,
            run_bench(&agent, &[]).await,
            run_bench(&agent, &[]).await,
        ]);
        let logs = median(vec![
            run_bench(&agent, &[("log_calls", &n)]).await,
            run_bench(&agent, &[("log_calls", &n)]).await,
            run_bench(&agent, &[("log_calls", &n)]).await,
        ]);
        println!(
            "host log call (trace level, permission check, no storage): {:.0} ns per call (n={N}; target <= 250 ns)",
            (logs.saturating_sub(base)).as_nanos() as f64 / N as f64
        );
        const S: usize = 20_000;
        let s = S.to_string();
        let sql = median(vec![
            run_bench(&agent, &[("sql_calls", &s)]).await,
            run_bench(&agent, &[("sql_calls", &s)]).await,
            run_bench(&agent, &[("sql_calls", &s)]).await,
        ]);
        println!(
            "host sql.query call (`SELECT 1` on SQLite: parse + classify + grant check + read-only wall + query): {:.1} us per call (n={S})",
            (sql.saturating_sub(base)).as_nanos() as f64 / S as f64 / 1000.0
        );
    });
}
