#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::capability::{CapabilityClass, TargetKind};
use std::collections::HashMap;
use std::time::Duration;

const SECRET_URL: &str = "postgres://u:hunter2@h/db";

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

    fn errors(&self, text: &str) -> Diagnostics {
        match self.load(text) {
            Ok(config) => panic!("expected errors, got {config:#?}"),
            Err(diags) => diags,
        }
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
    for (value, message) in [
        ("\"0s\"", "must be more than zero"),
        ("\"0d\"", "must be more than zero"),
        ("\"30\"", "invalid duration \"30\""),
        ("\"thirty days\"", "invalid duration \"thirty days\""),
        ("\"-1d\"", "invalid duration \"-1d\""),
        ("\"\"", "invalid duration \"\""),
        ("30", "expected a duration like"),
        ("true", "expected a duration like"),
        ("{ days = 30 }", "expected a duration like"),
    ] {
        // Line 4, after the two folders and a comment; a second bad field
        // is reported too.
        let diags = fixture.errors(&format!(
            "{DIRS}# history\nstate_keep = {value}\nlog_format = \"yaml\"\n"
        ));
        let keep = about(&diags, "state_keep");
        assert_eq!(keep.line, Some(4), "{value}: {diags}");
        assert_eq!(keep.file, fixture.path("warden.toml"));
        assert!(keep.message.contains(message), "{value}: {keep}");
        about(&diags, "log_format");
        assert!(
            keep.to_string().contains("warden.toml:4:"),
            "{value}: {keep}"
        );
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
fn malformed_toml() {
    let fixture = Fixture::new();
    let diags = fixture.errors("plugin_dir = \"plugins\"\npolicy_dir = \n[[target]\n");
    assert!(!diags.is_empty());
    let first = &diags.0[0];
    assert_eq!(first.file, fixture.path("warden.toml"));
    assert_eq!(first.line, Some(2), "{diags}");
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let fixture = Fixture::new();
    let text = format!(
        "{DIRS}log_fromat = \"json\"\n\n[[target]]\nname = \"a\"\nkind = \"sqlite\"\npath = \"a.db\"\nuser = \"x\"\n"
    );
    let diags = fixture.errors(&text);
    assert_eq!(diags.len(), 2, "{diags}");
    let top = about(&diags, "log_fromat");
    assert_eq!((top.line, top.column), (Some(3), Some(1)));
    assert!(
        top.message
            .starts_with("unknown field `log_fromat`, expected one of"),
        "{top}"
    );
    assert!(
        top.message.contains("`log_format`") && top.message.contains("`target`"),
        "{top}"
    );
    let in_target = about(&diags, "target[0].user");
    assert_eq!(in_target.line, Some(9));
    let shown = in_target.to_string();
    let expected_start = format!(
        "{}:9:1: target[0].user: unknown field `user`, expected one of `name`, `kind`",
        fixture.path("warden.toml").display()
    );
    assert!(shown.starts_with(&expected_start), "{shown}");
}

#[test]
fn bad_enum_values() {
    let fixture = Fixture::new();
    let text = format!(
        "{DIRS}log_format = \"yaml\"\n[[target]]\nname = \"a\"\nkind = \"mysql\"\nurl_env = \"A\"\n"
    );
    let diags = fixture.errors(&text);
    let log = about(&diags, "log_format");
    assert_eq!(log.line, Some(3));
    assert!(
        log.message
            .contains("unknown variant `yaml`, expected `text` or `json`"),
        "{log}"
    );
    let kind = about(&diags, "target[0].kind");
    assert_eq!(kind.line, Some(6));
    assert!(
        kind.message
            .contains("unknown variant `mysql`, expected one of `sqlite`, `postgres`, `mongodb`"),
        "{kind}"
    );
}

#[test]
fn wrong_types_and_missing_fields() {
    let fixture = Fixture::new();
    let diags = fixture.errors("plugin_dir = 3\n[[target]]\nkind = \"sqlite\"\npath = \"a.db\"\n");
    let plugin_dir = about(&diags, "plugin_dir");
    assert_eq!(plugin_dir.line, Some(1));
    assert!(
        plugin_dir.message.contains("invalid type: integer `3`"),
        "{plugin_dir}"
    );
    let name = about(&diags, "target[0].name");
    assert_eq!(name.line, Some(2), "at the [[target]] header");
    assert_eq!(name.message, "missing field `name`");
    let policy_dir = about(&diags, "policy_dir");
    assert_eq!(policy_dir.message, "missing field `policy_dir`");
    assert_eq!(policy_dir.line, Some(1));
    assert_eq!(diags.len(), 3, "{diags}");
    // Every missing field, not just the first.
    let diags = fixture.errors("[[target]]\n");
    let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "target[0].name",
            "target[0].kind",
            "plugin_dir",
            "policy_dir"
        ]
    );
}

#[test]
fn missing_env_var_names_target_field_and_variable() {
    let fixture = Fixture::new();
    let text = format!(
        "{DIRS}[[target]]\nname = \"app\"\nkind = \"postgres\"\nurl_env = \"APP_DATABASE_URL\"\n"
    );
    let diags = fixture.errors(&text);
    assert_eq!(diags.len(), 1);
    let d = about(&diags, "target[0].url_env");
    assert_eq!(d.line, Some(6));
    assert!(
        d.message.contains("target `app`") && d.message.contains("`APP_DATABASE_URL` is not set"),
        "{d}"
    );
}

#[test]
fn unreadable_url_file_names_target_field_and_file() {
    let fixture = Fixture::new();
    let text = format!(
        "{DIRS}[[target]]\nname = \"app\"\nkind = \"postgres\"\nurl_file = \"secrets/app.url\"\n"
    );
    let diags = fixture.errors(&text);
    let d = about(&diags, "target[0].url_file");
    let file = fixture.path("secrets/app.url");
    assert!(
        d.message.contains("target `app`") && d.message.contains(&file.display().to_string()),
        "{d}"
    );
}

#[test]
fn inline_credentials_are_refused() {
    let fixture = Fixture::new();
    let text = format!(
        "{DIRS}[[target]]\nname = \"app\"\nkind = \"postgres\"\nurl = \"{SECRET_URL}\"\n\
         [[target]]\nname = \"mongo\"\nkind = \"mongodb\"\npath = \"x\"\n"
    );
    let diags = fixture.errors(&text);
    assert_eq!(diags.len(), 2, "{diags}");
    for field in ["target[0].url", "target[1].path"] {
        let d = about(&diags, field);
        assert!(
            d.message.contains("put the URL in an environment variable (url_env) or a file (url_file): inline credentials are refused"),
            "{d}"
        );
    }
    assert!(!diags.to_string().contains("hunter2"));
}

#[test]
fn secrets_never_appear_in_errors() {
    let fixture = Fixture::new()
        .env("PG_AS_MONGO", SECRET_URL)
        .env("UPPER", "POSTGRES://u:hunter2@h/db")
        .env("BAD_PORT", "postgres://u:hunter2@h:99999/db")
        .env("MONGO_AS_PG", "mongodb://u:hunter2@h/db")
        .env("SQLITE", SECRET_URL);
    fixture.write("pg.url", "mysql://u:hunter2@h/db\n");
    let targets = [
        ("mongodb", "url_env = \"PG_AS_MONGO\""),
        ("postgres", "url_env = \"UPPER\""),
        ("postgres", "url_env = \"BAD_PORT\""),
        ("postgres", "url_env = \"MONGO_AS_PG\""),
        ("sqlite", "url_env = \"SQLITE\""),
        ("postgres", "url_file = \"pg.url\""),
        ("postgres", "url = \"postgres://u:hunter2@h/db\""),
        ("mongodb", "url = \"mongodb://u:hunter2@h/db\""),
        ("sqlite", "url = \"postgres://u:hunter2@h/db\""),
        // URLs in the wrong field.
        ("postgres", "url_env = \"postgres://u:hunter2@h/db\""),
        ("postgres", "url_file = \"postgres://u:hunter2@h/db\""),
        ("postgres://u:hunter2@h/db", "url_env = \"X\""),
    ];
    let mut text = DIRS.to_owned();
    for (i, (kind, line)) in targets.iter().enumerate() {
        text.push_str(&format!(
            "[[target]]\nname = \"t{i}\"\nkind = \"{kind}\"\n{line}\n"
        ));
    }
    text.push_str(
        "[[target]]\nname = \"k\"\nkind = \"postgres\"\n\"postgres://u:hunter2@h/db\" = 1\n",
    );
    text.push_str(
        "[[target]]\nname = \"postgres://u:hunter2@h/db\"\nkind = \"sqlite\"\npath = \"a.db\"\n",
    );
    let diags = fixture.errors(&text);
    // Target `k` has an unknown field and no URL; the last one a bad name.
    assert_eq!(diags.len(), targets.len() + 3, "{diags}");
    for d in &diags {
        assert!(!d.to_string().contains("hunter2"), "{d}");
        assert!(!format!("{d:?}").contains("hunter2"), "{d:?}");
    }
    // Still useful: the variable is named.
    let d = about(&diags, "target[0].url_env");
    assert!(
        d.message.contains("`PG_AS_MONGO`") && d.message.contains("`mongodb://`"),
        "{d}"
    );
    let d = about(&diags, "target[2].url_env");
    assert!(
        d.message.contains("not a valid URL (invalid port number)"),
        "{d}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let fixture = Fixture::new().env("OK", "postgres://h/db");
    let text = "\
plugin_dir = \"plugins\"
policy_dir = \"\"
verbose = true

[[target]]
name = \"App\"
kind = \"postgres\"
url_env = \"OK\"

[[target]]
name = \"dup\"
kind = \"sqlite\"
path = \"a.db\"

[[target]]
name = \"dup\"
kind = \"sqlite\"
path = \"b.db\"

[[target]]
name = \"none\"
kind = \"sqlite\"

[[target]]
name = \"both\"
kind = \"postgres\"
url_env = \"OK\"
url_file = \"x\"
";
    let diags = fixture.errors(text);
    let fields: Vec<(&str, Option<usize>)> =
        diags.iter().map(|d| (d.field.as_str(), d.line)).collect();
    assert_eq!(
        fields,
        [
            ("policy_dir", Some(2)),
            ("verbose", Some(3)),
            ("target[0].name", Some(6)),
            ("target[2].name", Some(16)),
            ("target[3]", Some(20)),
            ("target[4].url_file", Some(28)),
        ],
        "{diags}"
    );
    assert!(
        diags.0[3].message.contains("already defined at line 11"),
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
        crate::artifacts::StoreKind::Local {
            root: dir.join("artifacts")
        }
    );
    assert_eq!(
        config.store("offsite").unwrap().kind,
        crate::artifacts::StoreKind::Local {
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
fn bad_stores_name_file_line_and_field() {
    let fixture = Fixture::new();
    let diags = fixture.errors(&format!(
        "{DIRS}\n[[store]]\nname = \"local\"\nkind = \"local\"\nroot = \"a\"\n\n\
         [[store]]\nname = \"local\"\nkind = \"local\"\nroot = \"b\"\n\n\
         [[store]]\nname = \"Bad Name\"\nkind = \"local\"\nroot = \"c\"\n\n\
         [[store]]\nname = \"s3\"\nkind = \"s3\"\nroot = \"d\"\n\n\
         [[store]]\nname = \"noroot\"\nkind = \"local\"\n\n\
         [[store]]\nname = \"slash\"\nkind = \"local\"\nroot = \"/\"\n"
    ));
    let dup = about(&diags, "store[1].name");
    assert_eq!(dup.line, Some(10));
    assert!(dup.message.contains("already defined at line 5"), "{dup}");
    assert!(
        about(&diags, "store[2].name")
            .message
            .contains("invalid store name")
    );
    assert!(about(&diags, "store[3].kind").message.contains("s3"));
    assert!(
        about(&diags, "store[4].root")
            .message
            .contains("missing field")
    );
    assert!(about(&diags, "store[5].root").message.contains("not `/`"));
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
fn bad_runbooks_tables_name_file_line_and_field() {
    let fixture = Fixture::new();
    let diags = fixture.errors(&format!("{DIRS}\n[runbooks]\ndir = \"\"\n"));
    let empty = about(&diags, "runbooks.dir");
    assert_eq!(empty.line, Some(5));
    assert_eq!(empty.message, "must not be empty");

    let diags = fixture.errors(&format!("{DIRS}\n[runbooks]\nfolder = \"x\"\n"));
    let unknown = about(&diags, "runbooks.folder");
    assert_eq!(unknown.line, Some(5));
    assert!(
        unknown.message.contains("unknown field `folder`"),
        "{unknown}"
    );
    let missing = about(&diags, "runbooks.dir");
    assert_eq!(missing.line, Some(4));
    assert_eq!(missing.message, "missing field `dir`");
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

#[test]
fn bad_runs_limits_name_file_line_field_and_range() {
    let fixture = Fixture::new();
    for (depth, queued) in [("0", "0"), ("17", "-1"), ("-3", "4294967296")] {
        let diags = fixture.errors(&format!(
            "{DIRS}\n[runs]\nmax_chain_depth = {depth}\nmax_queued_per_plugin = {queued}\n"
        ));
        assert_eq!(diags.len(), 2, "{diags}");
        let d = about(&diags, "runs.max_chain_depth");
        assert_eq!(d.line, Some(5));
        assert_eq!(
            d.message,
            format!(
                "{depth} is out of range: use 1 to 16; to let no plugin start runs, list none \
                 in any grant's `run_plugins` (default 3)"
            )
        );
        let q = about(&diags, "runs.max_queued_per_plugin");
        assert_eq!(q.line, Some(6));
        assert!(
            q.message
                .starts_with(&format!("{queued} is out of range: use at least 1"))
                && q.message.ends_with("(default 100)"),
            "{q}"
        );
        assert!(
            q.to_string()
                .starts_with(&format!("{}:6:", fixture.path("warden.toml").display())),
            "{q}"
        );
    }
    let diags = fixture.errors(&format!("{DIRS}\n[runs]\nmax_depth = 2\n"));
    let unknown = about(&diags, "runs.max_depth");
    assert!(
        unknown.message.contains("unknown field `max_depth`")
            && unknown.message.contains("`max_chain_depth`"),
        "{unknown}"
    );
    let diags = fixture.errors(&format!("{DIRS}\n[runs]\nmax_chain_depth = \"3\"\n"));
    assert_eq!(about(&diags, "runs.max_chain_depth").line, Some(5));
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
fn read_url_errors_name_target_field_and_variable_or_file() {
    let fixture = Fixture::new()
        .env("OK", "postgres://h/db")
        .env("MONGO_OK", "mongodb://h/db")
        .env("WRONG_KIND", "mongodb://u:hunter2@h/db")
        .env("BAD_PORT", "postgres://u:hunter2@h:99999/db");
    fixture.write("read.url", "postgres://u:hunter2@h/db\n");
    let text = format!(
        "{DIRS}\
[[target]]
name = \"missing\"
kind = \"postgres\"
url_env = \"OK\"
read_url_env = \"APP_READ_URL\"

[[target]]
name = \"both\"
kind = \"postgres\"
url_env = \"OK\"
read_url_env = \"OK\"
read_url_file = \"read.url\"

[[target]]
name = \"lite\"
kind = \"sqlite\"
path = \"a.db\"
read_url_file = \"read.url\"

[[target]]
name = \"wrong-kind\"
kind = \"postgres\"
url_env = \"OK\"
read_url_env = \"WRONG_KIND\"

[[target]]
name = \"bad-port\"
kind = \"postgres\"
url_env = \"OK\"
read_url_env = \"BAD_PORT\"

[[target]]
name = \"no-file\"
kind = \"mongodb\"
url_env = \"MONGO_OK\"
read_url_file = \"secrets/read.url\"

[[target]]
name = \"inline\"
kind = \"postgres\"
url_env = \"OK\"
read_url_env = \"postgres://u:hunter2@h/db\"

[[target]]
name = \"typed\"
kind = \"postgres\"
url_env = \"OK\"
read_url_env = 5
"
    );
    let diags = fixture.errors(&text);
    assert_eq!(diags.len(), 8, "{diags}");
    let d = about(&diags, "target[0].read_url_env");
    assert_eq!(d.line, Some(7));
    assert!(
        d.message.contains("target `missing`")
            && d.message.contains("`APP_READ_URL` is not set")
            && d.message.contains("connection URL of read-class calls")
            && d.message.contains("change `read_url_env`"),
        "{d}"
    );
    let d = about(&diags, "target[1].read_url_file");
    assert_eq!(d.line, Some(14));
    assert!(
        d.message.contains(
            "target `both` sets both `read_url_env` and `read_url_file`: set only one of"
        ),
        "{d}"
    );
    let d = about(&diags, "target[2].read_url_file");
    assert_eq!(d.line, Some(20));
    assert!(
        d.message.contains("target `lite` is a sqlite database")
            && d.message.contains("only for postgres and mongodb targets"),
        "{d}"
    );
    let d = about(&diags, "target[3].read_url_env");
    assert!(
        d.message.contains("`WRONG_KIND`") && d.message.contains("`postgres://`"),
        "{d}"
    );
    let d = about(&diags, "target[4].read_url_env");
    assert!(d.message.contains("invalid port number"), "{d}");
    let d = about(&diags, "target[5].read_url_file");
    assert!(
        d.message
            .contains("target `no-file`: cannot read the URL file")
            && d.message
                .contains(&fixture.path("secrets/read.url").display().to_string()),
        "{d}"
    );
    let d = about(&diags, "target[6].read_url_env");
    assert!(
        d.message
            .contains("`read_url_env` must be the name of an environment variable"),
        "{d}"
    );
    let d = about(&diags, "target[7].read_url_env");
    assert!(d.message.contains("invalid type"), "{d}");
    // The targets with a good main URL are not reported for it, and no
    // password shows anywhere.
    assert!(
        diags.iter().all(|d| !d.field.ends_with(".url_env")),
        "{diags}"
    );
    for d in &diags {
        assert!(!d.to_string().contains("hunter2"), "{d}");
    }
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

#[test]
fn bad_http_walls_name_file_line_and_field_all_at_once() {
    let fixture = Fixture::new().env("API_TOKEN", "0123456789abcdef-token");
    let text = format!(
        "{DIRS}[http]\nlisten = \"127.0.0.1:9470\"\ntoken_env = \"API_TOKEN\"\n\
         header_timeout = \"0s\"\nrequest_timeout = \"soon\"\nidle_timeout = 30\n\
         max_connections = 0\nmax_body = \"1MiB\"\n"
    );
    let diags = fixture.errors(&text);
    assert_eq!(diags.len(), 4, "{diags}");
    let header = about(&diags, "http.header_timeout");
    assert_eq!(header.line, Some(6));
    assert!(
        header.message.contains("must be longer than zero") && header.message.contains("10s"),
        "{header}"
    );
    assert!(
        header
            .to_string()
            .starts_with(&format!("{}:6:", fixture.path("warden.toml").display())),
        "{header}"
    );
    let request = about(&diags, "http.request_timeout");
    assert_eq!(request.line, Some(7));
    assert!(
        request.message.contains("invalid duration \"soon\""),
        "{request}"
    );
    let idle = about(&diags, "http.idle_timeout");
    assert_eq!(idle.line, Some(8));
    assert!(idle.message.contains("a duration like"), "{idle}");
    let max = about(&diags, "http.max_connections");
    assert_eq!(max.line, Some(9));
    assert!(
        max.message
            .contains("must be between 1 and 65536 (default 512), not 0"),
        "{max}"
    );

    let diags = fixture.errors(&format!(
        "{DIRS}[http]\nlisten = \"127.0.0.1:9470\"\ntoken_env = \"API_TOKEN\"\nmax_connections = 100000\nmax_conns = 5\n"
    ));
    assert!(
        about(&diags, "http.max_connections")
            .message
            .contains("not 100000"),
        "{diags}"
    );
    assert!(
        about(&diags, "http.max_conns")
            .message
            .contains("unknown field `max_conns`"),
        "{diags}"
    );
}
