//! A throwaway agent installation per test: a folder with `warden.toml`,
//! plugins, policies and a state database, sharing one component cache.

use std::path::{Path, PathBuf};
use warden::agent::{Agent, RunRequest};
use warden::runs::RunRecord;
use warden_tests::{fixture_wasm, plugin_wasm, repo_root};

/// The API token of worlds with [`World::http`].
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// The `[[http.approver]]` of worlds with [`World::http`]: each person's
/// own token is [`approver_token`].
pub const APPROVERS: [&str; 5] = ["oncall", "carol", "dba", "alice", "bob"];

/// The API token of approver `name` in worlds with [`World::http`].
pub fn approver_token(name: &str) -> String {
    format!("approver-token-of-{name}-0123456789")
}

pub struct World {
    pub dir: tempfile::TempDir,
    plugins: Vec<PathBuf>,
    targets: Vec<String>,
    grants: Vec<String>,
    http: bool,
    /// More lines of the `[http]` table.
    http_extra: String,
    config_extra: Vec<String>,
    top_level: Vec<String>,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        World {
            dir,
            plugins: Vec::new(),
            targets: Vec::new(),
            grants: Vec::new(),
            http: false,
            http_extra: String::new(),
            config_extra: Vec::new(),
            top_level: Vec::new(),
        }
    }

    /// Installs a test fixture component.
    pub fn fixture(mut self, name: &str) -> World {
        self.plugins.push(fixture_wasm(name));
        self
    }

    /// Installs a component from any path.
    pub fn component(mut self, path: &Path) -> World {
        self.plugins.push(path.to_path_buf());
        self
    }

    /// Installs a shipped plugin.
    pub fn plugin(mut self, name: &str) -> World {
        self.plugins.push(plugin_wasm(name));
        self
    }

    /// A SQLite target at `file` inside the world's folder.
    pub fn sqlite_target(mut self, name: &str, file: &str) -> World {
        self.targets.push(format!(
            "[[target]]\nname = \"{name}\"\nkind = \"sqlite\"\npath = \"{file}\"\n"
        ));
        self
    }

    /// A PostgreSQL target whose URL (with password) is kept in a file.
    pub fn pg_target(mut self, name: &str, url: &str) -> World {
        let file = format!("{name}.url");
        std::fs::write(self.dir.path().join(&file), url).unwrap();
        self.targets.push(format!(
            "[[target]]\nname = \"{name}\"\nkind = \"postgres\"\nurl_file = \"{file}\"\n"
        ));
        self
    }

    /// A MongoDB target whose URL is kept in a file.
    pub fn mongo_target(mut self, name: &str, url: &str) -> World {
        let file = format!("{name}.url");
        std::fs::write(self.dir.path().join(&file), url).unwrap();
        self.targets.push(format!(
            "[[target]]\nname = \"{name}\"\nkind = \"mongodb\"\nurl_file = \"{file}\"\n"
        ));
        self
    }

    /// A `kind` (postgres or mongodb) target whose main URL and URL of
    /// read-class calls (`read_url_file`) are kept in files.
    pub fn target_with_read_url(
        mut self,
        name: &str,
        kind: &str,
        url: &str,
        read_url: &str,
    ) -> World {
        let (file, read_file) = (format!("{name}.url"), format!("{name}.read.url"));
        std::fs::write(self.dir.path().join(&file), url).unwrap();
        std::fs::write(self.dir.path().join(&read_file), read_url).unwrap();
        self.targets.push(format!(
            "[[target]]\nname = \"{name}\"\nkind = \"{kind}\"\nurl_file = \"{file}\"\n\
             read_url_file = \"{read_file}\"\n"
        ));
        self
    }

    /// A local artifact store rooted at `stores/<name>` in the world's folder.
    pub fn store(mut self, name: &str) -> World {
        self.targets.push(format!(
            "[[store]]\nname = \"{name}\"\nkind = \"local\"\nroot = \"stores/{name}\"\n"
        ));
        self
    }

    /// A grant; `extra` is more TOML lines (max_runtime, memory, ...).
    pub fn grant(mut self, plugin: &str, target: &str, classes: &[&str], extra: &str) -> World {
        let classes: Vec<String> = classes.iter().map(|c| format!("\"{c}\"")).collect();
        self.grants.push(format!(
            "[[grant]]\nplugin = \"{plugin}\"\ntargets = [\"{target}\"]\ncapabilities = [{}]\n{extra}\n",
            classes.join(", ")
        ));
        self
    }

    /// More policy TOML (rules, schedules, concurrency), in the same file.
    pub fn policy(mut self, text: &str) -> World {
        self.grants.push(text.to_string());
        self
    }

    /// Serves the HTTP API on a random loopback port with [`TOKEN`].
    pub fn http(mut self) -> World {
        self.http = true;
        self
    }

    /// A top-level config key (like `state_keep = "1h"`), written before
    /// any table.
    pub fn top_level(mut self, line: &str) -> World {
        self.top_level.push(line.to_string());
        self
    }

    /// Serves the HTTP API like [`World::http`], with more lines in its
    /// `[http]` table (timeouts, `max_connections`, ...).
    pub fn http_with(mut self, lines: &str) -> World {
        self.http = true;
        self.http_extra.push_str(lines);
        self.http_extra.push('\n');
        self
    }

    /// More config TOML (tables like `[telemetry]`).
    pub fn config(mut self, text: &str) -> World {
        self.config_extra.push(text.to_string());
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes everything out; returns the config path.
    pub fn write(&self) -> PathBuf {
        let root = self.dir.path();
        std::fs::create_dir_all(root.join("plugins")).unwrap();
        std::fs::create_dir_all(root.join("policies")).unwrap();
        for p in &self.plugins {
            std::fs::copy(p, root.join("plugins").join(p.file_name().unwrap())).unwrap();
        }
        std::fs::write(root.join("policies/grants.toml"), self.grants.join("\n")).unwrap();
        let cache = repo_root().join("target/test-component-cache");
        let mut config = format!(
            "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\nstate_db = \"state/warden.db\"\ncache_dir = \"{}\"\n{}\n\n{}",
            cache.display(),
            self.top_level.join("\n"),
            self.targets.join("\n")
        );
        if self.http {
            std::fs::write(root.join("api.token"), TOKEN).unwrap();
            config.push_str("\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"api.token\"\n");
            config.push_str(&self.http_extra);
            for name in APPROVERS {
                let file = format!("approver-{name}.token");
                std::fs::write(root.join(&file), approver_token(name)).unwrap();
                config.push_str(&format!(
                    "\n[[http.approver]]\nname = \"{name}\"\ntoken_file = \"{file}\"\n"
                ));
            }
        }
        for extra in &self.config_extra {
            config.push('\n');
            config.push_str(extra);
            config.push('\n');
        }
        let path = root.join("warden.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    pub async fn agent(&self) -> Agent {
        let path = self.write();
        match Agent::load(&path).await {
            Ok(a) => a,
            Err(d) => panic!("agent did not load:\n{d}"),
        }
    }
}

/// Runs a plugin with parameters.
pub async fn invoke(
    agent: &Agent,
    plugin: &str,
    target: &str,
    params: &[(&str, &str)],
    dry_run: bool,
) -> RunRecord {
    let mut req = RunRequest::manual(plugin, target).dry_run(dry_run);
    for (k, v) in params {
        req = req.param(k, v);
    }
    agent.invoke(req).await.unwrap()
}

/// The `warden` binary cargo built next to the test executable.
pub fn warden_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join("warden");
    assert!(
        bin.is_file(),
        "{} not found: build it with `cargo build -p warden` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// The error message of a record, or "".
pub fn error_of(r: &RunRecord) -> String {
    r.error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

/// The value of metric `name` in a run's report; panics naming the metrics
/// there are when it is missing.
pub fn metric(rec: &RunRecord, name: &str) -> f64 {
    let report = rec.report.as_ref().expect("a report");
    report
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", report.metrics))
        .value
}

/// The detail of the finding titled `title` in a run's report.
pub fn finding<'r>(rec: &'r RunRecord, title: &str) -> &'r str {
    let report = rec.report.as_ref().expect("a report");
    &report
        .findings
        .iter()
        .find(|f| f.title == title)
        .unwrap_or_else(|| panic!("no finding {title} in {:?}", report.findings))
        .detail
}
