#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::capability::{CapabilityClass, TargetKind};
use std::collections::HashMap;
use std::time::Duration;

/// A temporary folder holding `warden.toml` (and whatever else a test puts
/// there).
struct Fixture {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
            env: HashMap::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, text).unwrap();
        path
    }

    fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    fn load(&self, text: &str) -> Result<Config, Diagnostics> {
        let file = self.write("warden.toml", text);
        Config::load_with_env(&file, |name| self.env.get(name).map(OsString::from))
    }
}

const DIRS: &str = "plugin_dir = \"plugins\"\npolicy_dir = \"policies\"\n";

/// The one diagnostic in `diags` about `field`.
fn about<'a>(diags: &'a Diagnostics, field: &str) -> &'a Diagnostic {
    let found: Vec<&Diagnostic> = diags.iter().filter(|d| d.field == field).collect();
    assert_eq!(found.len(), 1, "one diagnostic about {field} in:\n{diags}");
    found[0]
}

#[test]
fn minimal_config_gets_defaults() {
    let fixture = Fixture::new();
    let config = fixture.load(DIRS).unwrap();
    let dir = fixture.dir.path();
    assert_eq!(config.file, dir.join("warden.toml"));
    assert_eq!(config.plugin_dir, dir.join("plugins"));
    assert_eq!(config.policy_dir, dir.join("policies"));
    assert_eq!(config.state_db, dir.join("state/warden.db"));
    assert_eq!(config.cache_dir, dir.join("state/cache"));
    assert_eq!(config.state_keep, DEFAULT_STATE_KEEP);
    assert_eq!(config.log_format, LogFormat::Text);
    assert!(config.targets.is_empty());
}

#[test]
fn state_keep_is_a_duration_above_zero() {
    let fixture = Fixture::new();
    for (value, secs) in [
        ("\"30d\"", 30 * 86_400),
        ("\"12h\"", 12 * 3_600),
        ("\"1y\"", 31_557_600),
        ("\"90s\"", 90),
        ("\" 2days 1h \"", 2 * 86_400 + 3_600),
    ] {
        let config = fixture
            .load(&format!("{DIRS}state_keep = {value}\n"))
            .unwrap();
        assert_eq!(config.state_keep.as_secs(), secs, "{value}");
    }
}

#[test]
fn full_config() {
    let fixture = Fixture::new().env("APP_DATABASE_URL", " postgresql://app:pw@db:5432/app\n");
    fixture.write(
        "mongo.url",
        "\n  mongodb://h1:27017,h2:27017/admin?replicaSet=rs0  \n",
    );
    let text = r#"
plugin_dir = "/opt/warden/plugins"
policy_dir = "conf/policies"
state_db = "var/state.db"
log_format = "json"

[[target]]
name = "app"
kind = "postgres"
url_env = "APP_DATABASE_URL"

[[target]]
name = "mongo-1"
kind = "mongodb"
url_file = "mongo.url"

[[target]]
name = "quickstart"
kind = "sqlite"
path = "data/quick start?.db"

[[target]]
name = "relative_url"
kind = "sqlite"
url = "sqlite://rel.db?mode=rwc"

[[target]]
name = "memory"
kind = "sqlite"
url = "sqlite::memory:"
"#;
    let config = fixture.load(text).unwrap();
    let dir = fixture.dir.path();
    assert_eq!(config.plugin_dir, PathBuf::from("/opt/warden/plugins"));
    assert_eq!(config.policy_dir, dir.join("conf/policies"));
    assert_eq!(config.state_db, dir.join("var/state.db"));
    assert_eq!(config.cache_dir, dir.join("var/cache"));
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(
        config.target_names(),
        ["app", "mongo-1", "quickstart", "relative_url", "memory"]
    );

    let app = config.target("app").unwrap();
    assert_eq!(app.kind, TargetKind::Postgres);
    assert_eq!(app.url.expose(), "postgresql://app:pw@db:5432/app");
    let mongo = config.target("mongo-1").unwrap();
    assert_eq!(
        mongo.url.expose(),
        "mongodb://h1:27017,h2:27017/admin?replicaSet=rs0"
    );
    let quickstart = config.target("quickstart").unwrap();
    assert_eq!(
        quickstart.url.expose(),
        format!("sqlite://{}/data/quick start%3F.db", dir.display())
    );
    let relative = config.target("relative_url").unwrap();
    assert_eq!(
        relative.url.expose(),
        format!("sqlite://{}/rel.db?mode=rwc", dir.display())
    );
    assert_eq!(
        config.target("memory").unwrap().url.expose(),
        "sqlite::memory:"
    );
    assert!(config.target("nope").is_none());

    // Nothing secret in Debug.
    assert!(!format!("{config:?}").contains("pw@"), "{config:?}");
}

#[test]
fn explicit_cache_dir() {
    let fixture = Fixture::new();
    let config = fixture
        .load(&format!("{DIRS}cache_dir = \"/var/cache/warden\"\n"))
        .unwrap();
    assert_eq!(config.cache_dir, PathBuf::from("/var/cache/warden"));
}

#[test]
fn missing_file() {
    let fixture = Fixture::new();
    let diags = Config::load(&fixture.path("absent.toml")).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert!(
        diags
            .to_string()
            .contains("absent.toml: cannot read the config file"),
        "{diags}"
    );
}

#[test]
fn target_names() {
    assert!(is_valid_target_name("app"));
    assert!(is_valid_target_name("0db_1-x"));
    assert!(!is_valid_target_name(""));
    assert!(!is_valid_target_name("_x"));
    assert!(!is_valid_target_name("App"));
    assert!(!is_valid_target_name("a.b"));
}

#[test]
fn load_reads_the_process_environment() {
    // PATH is set in any test environment; it is no URL.
    let fixture = Fixture::new();
    let file = fixture.write(
        "warden.toml",
        &format!("{DIRS}[[target]]\nname = \"p\"\nkind = \"postgres\"\nurl_env = \"PATH\"\n"),
    );
    let diags = Config::load(&file).unwrap_err();
    assert!(
        about(&diags, "target[0].url_env")
            .message
            .contains("must start with"),
        "{diags}"
    );
}

#[test]
fn password_fragments_of_a_target() {
    let fixture = Fixture::new().env("U", "postgres://u:p%2Fw@h/db");
    let config = fixture
        .load(&format!(
            "{DIRS}[[target]]\nname = \"p\"\nkind = \"postgres\"\nurl_env = \"U\"\n"
        ))
        .unwrap();
    let fragments = config.targets[0].url.password_fragments();
    assert_eq!(fragments, ["postgres://u:p%2Fw@h/db", "p%2Fw", "p/w"]);
}

#[test]
fn stores_and_tools() {
    let fixture = Fixture::new();
    let config = fixture
        .load(&format!(
            "{DIRS}\n[[store]]\nname = \"local\"\nkind = \"local\"\nroot = \"artifacts\"\n\n\
             [[store]]\nname = \"offsite\"\nkind = \"local\"\nroot = \"/srv/backups\"\n\n\
             [tools]\npg_bin_dir = \"/usr/lib/postgresql/15/bin\"\n"
        ))
        .unwrap();
    let dir = fixture.dir.path();
    assert_eq!(config.stores.len(), 2);
    assert_eq!(
        config.store("local").unwrap().kind,
        crate::config::store::StoreKind::Local {
            root: dir.join("artifacts")
        }
    );
    assert_eq!(
        config.store("offsite").unwrap().kind,
        crate::config::store::StoreKind::Local {
            root: "/srv/backups".into()
        }
    );
    assert!(config.store("nope").is_none());
    assert_eq!(
        config.pg_bin_dir.as_deref(),
        Some(Path::new("/usr/lib/postgresql/15/bin"))
    );
}

#[test]
fn runbooks_dir_is_optional_and_relative_to_the_config() {
    let fixture = Fixture::new();
    assert_eq!(fixture.load(DIRS).unwrap().runbooks_dir, None);
    let config = fixture
        .load(&format!(
            "{DIRS}\n[runbooks]\ndir = \"policies/runbooks\"\n"
        ))
        .unwrap();
    assert_eq!(
        config.runbooks_dir,
        Some(fixture.dir.path().join("policies/runbooks"))
    );
}

#[test]
fn runs_limits_default_and_load() {
    let fixture = Fixture::new();
    let config = fixture.load(DIRS).unwrap();
    assert_eq!(
        config.runs,
        RunLimits {
            max_chain_depth: 3,
            max_queued_per_plugin: 100
        }
    );
    let config = fixture
        .load(&format!(
            "{DIRS}\n[runs]\nmax_chain_depth = 16\nmax_queued_per_plugin = 5\n"
        ))
        .unwrap();
    assert_eq!(
        config.runs,
        RunLimits {
            max_chain_depth: 16,
            max_queued_per_plugin: 5
        }
    );
    // One field alone; the other keeps its default.
    let config = fixture
        .load(&format!("{DIRS}\n[runs]\nmax_chain_depth = 1\n"))
        .unwrap();
    assert_eq!(config.runs.max_chain_depth, 1);
    assert_eq!(config.runs.max_queued_per_plugin, 100);
}

// ---------------------------------------------------------------------------
// Credentials per capability class: `read_url_env` / `read_url_file`

const READ_URL: &str = "postgres://warden_read:r3ad-s3cret@db:5432/app";

#[test]
fn read_url_from_env_or_file_is_used_for_read_calls_only() {
    let fixture = Fixture::new()
        .env("APP_URL", "postgres://warden_maint:m41nt@db:5432/app")
        .env("APP_READ_URL", &format!(" {READ_URL}\n"));
    fixture.write("mongo-read.url", "mongodb://reader:pw@h1:27017/app\n");
    fixture.write("mongo.url", "mongodb://admin:pw@h1:27017/app\n");
    let config = fixture
        .load(&format!(
            "{DIRS}[[target]]\nname = \"app\"\nkind = \"postgres\"\nurl_env = \"APP_URL\"\n\
             read_url_env = \"APP_READ_URL\"\n\
             [[target]]\nname = \"mongo\"\nkind = \"mongodb\"\nurl_file = \"mongo.url\"\n\
             read_url_file = \"mongo-read.url\"\n\
             [[target]]\nname = \"plain\"\nkind = \"postgres\"\nurl_env = \"APP_URL\"\n"
        ))
        .unwrap();
    let app = config.target("app").unwrap();
    assert_eq!(app.read_url().unwrap().expose(), READ_URL);
    assert_eq!(app.url_for(CapabilityClass::Read).expose(), READ_URL);
    for class in CapabilityClass::ALL
        .into_iter()
        .filter(|c| *c != CapabilityClass::Read)
    {
        assert_eq!(
            app.url_for(class).expose(),
            "postgres://warden_maint:m41nt@db:5432/app",
            "{class}"
        );
    }
    let mongo = config.target("mongo").unwrap();
    assert_eq!(
        mongo.url_for(CapabilityClass::Read).expose(),
        "mongodb://reader:pw@h1:27017/app"
    );
    assert_eq!(
        mongo.url_for(CapabilityClass::Maintenance).expose(),
        "mongodb://admin:pw@h1:27017/app"
    );
    // Without a read URL, every class uses the main URL.
    let plain = config.target("plain").unwrap();
    assert!(plain.read_url().is_none());
    for class in CapabilityClass::ALL {
        assert_eq!(plain.url_for(class), &plain.url, "{class}");
    }
    // Never in Debug.
    assert!(!format!("{config:?}").contains("r3ad-s3cret"), "{config:?}");
}

#[test]
fn read_url_passwords_are_redacted_like_the_main_ones() {
    let fixture = Fixture::new()
        .env("U", "postgres://maint:m41nt-pw@h/db")
        .env("R", "postgres://reader:r%2Fead-pw@h/db");
    let config = fixture
        .load(&format!(
            "{DIRS}[[target]]\nname = \"p\"\nkind = \"postgres\"\nurl_env = \"U\"\n\
             read_url_env = \"R\"\n"
        ))
        .unwrap();
    let fragments = config.targets[0].password_fragments();
    for expected in [
        "postgres://maint:m41nt-pw@h/db",
        "m41nt-pw",
        "postgres://reader:r%2Fead-pw@h/db",
        "r%2Fead-pw",
        "r/ead-pw",
    ] {
        assert!(
            fragments.contains(&expected.to_owned()),
            "{expected} in {fragments:?}"
        );
    }
    // The agent's redactor learns them.
    let redactor = crate::agent::redactor_for(&config);
    let text = "FATAL: password authentication failed for reader (r/ead-pw, r%2Fead-pw) \
                and maint (m41nt-pw)";
    let redacted = redactor.redact(text);
    for secret in ["r/ead-pw", "r%2Fead-pw", "m41nt-pw"] {
        assert!(!redacted.contains(secret), "{redacted}");
    }
}

#[test]
fn documented_example_loads() {
    // The example at the top of this module.
    let doc: String = include_str!("mod.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .skip_while(|line| *line != "```toml")
        .skip(1)
        .take_while(|line| *line != "```")
        .map(|line| format!("{line}\n"))
        .collect();
    let fixture = Fixture::new()
        .env("APP_DATABASE_URL", "postgres://maint:pw@db/app")
        .env("APP_READ_DATABASE_URL", "postgres://warden_read:pw@db/app");
    let config = fixture.load(&doc).unwrap_or_else(|e| panic!("{e}\n{doc}"));
    let app = config.target("app").unwrap();
    assert_eq!(
        app.url_for(CapabilityClass::Read).expose(),
        "postgres://warden_read:pw@db/app"
    );
    assert_eq!(config.target_names(), ["app", "quickstart"]);
}

#[test]
fn http_walls_default_and_can_be_set() {
    let fixture = Fixture::new().env("API_TOKEN", "0123456789abcdef-token");
    let http = "[http]\nlisten = \"127.0.0.1:9470\"\ntoken_env = \"API_TOKEN\"\n";
    let config = fixture.load(&format!("{DIRS}{http}")).unwrap();
    let h = config.http.unwrap();
    assert_eq!(h.max_body, 1 << 20);
    assert_eq!(h.header_timeout, Duration::from_secs(10));
    assert_eq!(h.request_timeout, Duration::from_secs(30));
    assert_eq!(h.idle_timeout, Duration::from_secs(60));
    assert_eq!(h.max_connections, 512);

    let config = fixture
        .load(&format!(
            "{DIRS}{http}header_timeout = \"2s\"\nrequest_timeout = \"1m 30s\"\nidle_timeout = \"500ms\"\nmax_connections = 16\n"
        ))
        .unwrap();
    let h = config.http.unwrap();
    assert_eq!(h.header_timeout, Duration::from_secs(2));
    assert_eq!(h.request_timeout, Duration::from_secs(90));
    assert_eq!(h.idle_timeout, Duration::from_millis(500));
    assert_eq!(h.max_connections, 16);
}
