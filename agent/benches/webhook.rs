//! Webhook ingestion figures against a real `warden run` process on
//! loopback, with a rule whose dedup, cooldown-free throttle and circuit
//! breaker are all active:
//! - closed loop: accepted alerts per second (each committed to SQLite,
//!   synchronous, before the answer), one alert per request and 100 per
//!   request, from 64 concurrent connections;
//! - open loop: p50/p99 latency at a fixed 1,000 alerts/s for 10 s;
//! - idle: RSS and CPU of the agent process doing nothing for 10 s.
//!
//! Prints figures; asserts only that every request was accepted. Run with
//! `cargo xtask bench` (it builds the fixture components first).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token-0123456789abcdef";

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn alert(i: u64) -> Value {
    json!({
        "status": "firing",
        "labels": {"alertname": "Bench", "instance": format!("host-{}", i % 100), "cluster": format!("c{}", i % 4)},
        "annotations": {"summary": "bench"},
        "startsAt": "2026-11-22T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": format!("{:016x}", i % 100),
    })
}

fn payload(alerts: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "4", "groupKey": "{}:{alertname=\"Bench\"}", "status": "firing",
        "receiver": "warden", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am", "truncatedAlerts": 0, "alerts": alerts,
    }))
    .unwrap()
}

/// (utime + stime in clock ticks, RSS in KiB) of `pid`.
fn proc_stats(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let cpu = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    (cpu, rss)
}

async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    per_request: u64,
    total: u64,
    conns: u64,
) -> (f64, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, url, next) = (client.clone(), url.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0u64;
            loop {
                let start = next.fetch_add(per_request, Ordering::SeqCst);
                if start >= total {
                    return ok;
                }
                let body = payload((start..start + per_request).map(alert).collect());
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                ok += per_request;
            }
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap();
    }
    (accepted as f64 / t.elapsed().as_secs_f64(), accepted)
}

async fn open_loop(client: &reqwest::Client, url: &str, label: &str) {
    // Open loop at a fixed rate: one request (one alert) every millisecond.
    let mut latencies = Vec::new();
    let mut tasks = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let start = Instant::now();
    let mut i = 1_000_000u64;
    while start.elapsed() < Duration::from_secs(10) {
        tick.tick().await;
        i += 1;
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let body = payload(vec![alert(i)]);
            let t = Instant::now();
            let r = client
                .post(&url)
                .bearer_auth(TOKEN)
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            t.elapsed()
        }));
    }
    let sent = tasks.len();
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    println!(
        "open loop at {rate:.0} alerts/s for 10 s, {label}: p50 {:?}, p99 {:?}, max {:?} (n={sent})",
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.99),
        pct(&mut latencies, 1.0)
    );
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("plugins")).unwrap();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::copy(
        root.join("target/plugin-fixtures/noop.wasm"),
        d.join("plugins/noop.wasm"),
    )
    .expect("target/plugin-fixtures/noop.wasm: run `cargo xtask build-plugins`");
    std::fs::write(d.join("api.token"), TOKEN).unwrap();
    std::fs::write(
        d.join("warden.toml"),
        format!(
            "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\ncache_dir = \"{}\"\n\n[[target]]\nname = \"db\"\nkind = \"sqlite\"\npath = \"db.sqlite\"\n\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"api.token\"\nmax_body = \"8MiB\"\n",
            root.join("target/bench-component-cache").display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("policies/bench.toml"),
        r#"
[[grant]]
plugin = "noop"
targets = ["db"]
capabilities = ["read"]

[[rule]]
name = "bench"
match = ['alertname="Bench"', 'cluster=~"c[0-9]+"']
plugin = "noop"
target = "db"
throttle = { max = 1000000, per = "1h", group_by = ["cluster"] }
circuit_breaker = { max_failures = 1000, window = "1h", open_for = "1m" }
"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(d.join("warden.toml"))
        .args(["--log-format", "json", "run"])
        .env("WARDEN_LOG", "warn,warden::service=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("warden run exited").unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if let Some(a) = v["fields"]["address"].as_str() {
            break a.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let url = format!("http://{addr}/api/v1/alerts");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, rss0) = proc_stats(pid);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (cpu1, rss1) = proc_stats(pid);
        println!(
            "idle agent: RSS {:.1} MiB (at start {:.1} MiB), CPU {:.2}% of one core over 10 s",
            rss1 as f64 / 1024.0,
            rss0 as f64 / 1024.0,
            (cpu1 - cpu0) as f64 / 100.0 / 10.0 * 100.0
        );

        warden::install_tls_provider();
        let client = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
        // Warm up.
        closed_loop(&client, &url, 1, 2_000, 16).await;
        open_loop(&client, &url, "state database nearly empty").await;
        let (rate, n) = closed_loop(&client, &url, 1, 20_000, 64).await;
        println!("closed loop, 1 alert/request, 64 connections: {rate:.0} alerts/s accepted durably (n={n})");
        let (rate, n) = closed_loop(&client, &url, 100, 100_000, 16).await;
        println!("closed loop, 100 alerts/request, 16 connections: {rate:.0} alerts/s accepted durably (n={n})");
        open_loop(&client, &url, "after 120k alerts stored").await;

        let (_, rss) = proc_stats(pid);
        println!("agent RSS after the load: {:.1} MiB", rss as f64 / 1024.0);
    });
    unsafe { libc_kill(pid) };
    let _ = child.wait();
}

/// SIGTERM without a libc dependency.
unsafe fn libc_kill(pid: u32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
}
