#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::capability::CapabilityClass;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TARGETS: &[&str] = &["app", "quickstart"];

/// A temporary policy folder.
struct Policies {
    dir: tempfile::TempDir,
}

impl Policies {
    fn new() -> Self {
        Policies {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> &Self {
        let path = self.path(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    fn load(&self) -> Result<PolicySet, Diagnostics> {
        PolicySet::load_dir(self.dir.path(), TARGETS)
    }

    fn errors(&self) -> Diagnostics {
        match self.load() {
            Ok(set) => panic!("expected errors, got {set:#?}"),
            Err(diags) => diags,
        }
    }
}

/// The one diagnostic in `diags` about `field` in `file`.
fn about<'a>(diags: &'a Diagnostics, file: &Path, field: &str) -> &'a Diagnostic {
    let found: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.file == file && d.field == field)
        .collect();
    assert_eq!(found.len(), 1, "one diagnostic about {field} in:\n{diags}");
    found[0]
}

const VACUUM: &str = r#"
[[grant]]
plugin = "vacuum"
targets = ["app", "quickstart"]
capabilities = ["read", "maintenance"]
max_runtime = "5m"
memory = "128MiB"
statement_timeout = "1m 30s"
lock_timeout = "2s"
max_rows = 50
max_result_bytes = "1MiB"
"#;

#[test]
fn valid_policies() {
    let policies = Policies::new();
    policies
        .write("vacuum.toml", VACUUM)
        .write(
            "audit.toml",
            "[[grant]]\nplugin = \"audit-log\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n",
        )
        .write("examples/bad.toml", "this is not toml")
        .write("README.md", "not a policy")
        .write(".hidden.toml", "not = [a policy")
        .write("empty.toml", "# nothing granted here\n");
    let set = policies.load().unwrap();

    // Files in order of name: audit.toml, then vacuum.toml.
    let pairs: Vec<(&str, &str)> = set
        .grants
        .iter()
        .map(|g| (g.plugin.as_str(), g.target.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("audit-log", "app"),
            ("vacuum", "app"),
            ("vacuum", "quickstart")
        ]
    );
    assert_eq!(
        set.plugins().into_iter().collect::<Vec<_>>(),
        ["audit-log", "vacuum"]
    );

    let audit = set.grant("audit-log", "app").unwrap();
    assert_eq!(audit.classes, BTreeSet::from([CapabilityClass::Read]));
    assert_eq!(audit.max_runtime, Duration::from_secs(60));
    assert_eq!(audit.memory_bytes, 64 << 20);
    assert_eq!(audit.statement_timeout, Duration::from_secs(30));
    assert_eq!(audit.lock_timeout, Duration::from_secs(5));
    assert_eq!(audit.max_rows, 10_000);
    assert_eq!(audit.max_result_bytes, 16 << 20);
    assert_eq!(
        audit.source.to_string(),
        format!("{}:1", policies.path("audit.toml").display())
    );

    let vacuum = set.grant("vacuum", "quickstart").unwrap();
    assert!(vacuum.allows(CapabilityClass::Maintenance));
    assert!(!vacuum.allows(CapabilityClass::Write));
    assert_eq!(vacuum.max_runtime, Duration::from_secs(300));
    assert_eq!(vacuum.memory_bytes, 128 << 20);
    assert_eq!(vacuum.statement_timeout, Duration::from_secs(90));
    assert_eq!(vacuum.lock_timeout, Duration::from_secs(2));
    assert_eq!(vacuum.max_rows, 50);
    assert_eq!(vacuum.max_result_bytes, 1 << 20);
    assert_eq!(
        vacuum.source,
        Location {
            file: policies.path("vacuum.toml"),
            line: 2
        }
    );

    // Deny by default.
    assert!(set.grant("audit-log", "quickstart").is_none());
    assert!(set.grant("nope", "app").is_none());
}

#[test]
fn empty_folder_grants_nothing() {
    let policies = Policies::new();
    let set = policies.load().unwrap();
    assert!(set.grants.is_empty());
    assert!(set.plugins().is_empty());
}

#[test]
fn missing_folder_is_an_error() {
    let policies = Policies::new();
    let missing = policies.path("policies");
    let diags = PolicySet::load_dir(&missing, TARGETS).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags.0[0].file, missing);
    assert!(diags.0[0].message.contains("does not exist"), "{diags}");
}

#[test]
fn malformed_toml() {
    let policies = Policies::new();
    policies.write("a.toml", "[[grant]]\nplugin = \"x\"\ntargets = [\"app\"\n");
    let diags = policies.errors();
    assert!(!diags.is_empty());
    assert!(
        diags
            .iter()
            .all(|d| d.file == policies.path("a.toml") && d.line.is_some()),
        "{diags}"
    );
}

#[test]
fn unknown_field_names_file_line_and_field() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"x\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\nmax_memory = \"1GiB\"\n",
    );
    let diags = policies.errors();
    assert_eq!(diags.len(), 1, "{diags}");
    let d = about(&diags, &policies.path("a.toml"), "grant[0].max_memory");
    assert_eq!((d.line, d.column), (Some(5), Some(1)));
    assert!(
        d.message
            .starts_with("unknown field `max_memory`, expected one of `plugin`, `targets`"),
        "{d}"
    );
    assert!(
        d.to_string()
            .contains("a.toml:5:1: grant[0].max_memory: unknown field"),
        "{d}"
    );
}

#[test]
fn unknown_top_level_table() {
    let policies = Policies::new();
    policies.write("a.toml", "[[grants]]\nplugin = \"x\"\n");
    let diags = policies.errors();
    let d = about(&diags, &policies.path("a.toml"), "grants");
    assert_eq!(
        d.message,
        "unknown field `grants`, expected one of `grant`, `schedule`, `rule`, `concurrency`"
    );
    assert_eq!(d.line, Some(1));
}

#[test]
fn bad_capability() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"x\"\ntargets = [\"app\"]\ncapabilities = [\"read\", \"admin\"]\n",
    );
    let diags = policies.errors();
    let d = about(&diags, &policies.path("a.toml"), "grant[0].capabilities[1]");
    assert_eq!((d.line, d.column), (Some(4), Some(25)));
    assert!(
        d.message.contains("unknown variant `admin`, expected one of `read`, `maintenance`, `ddl`, `write`, `session-control`"),
        "{d}"
    );
}

#[test]
fn bad_duration_and_size() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"x\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         max_runtime = \"5 minutes please\"\nlock_timeout = 5\nmemory = \"64 MiBs\"\n",
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    let runtime = about(&diags, &file, "grant[0].max_runtime");
    assert_eq!(runtime.line, Some(5));
    assert!(
        runtime
            .message
            .contains("invalid duration \"5 minutes please\""),
        "{runtime}"
    );
    assert!(
        runtime
            .message
            .contains("expected a duration like \"30s\", \"5m\""),
        "{runtime}"
    );
    let lock = about(&diags, &file, "grant[0].lock_timeout");
    assert!(
        lock.message
            .contains("invalid type: integer `5`, expected a duration like \"30s\""),
        "{lock}"
    );
    let memory = about(&diags, &file, "grant[0].memory");
    assert!(
        memory.message.contains("expected a size like \"64MiB\""),
        "{memory}"
    );
    assert_eq!(diags.len(), 3, "{diags}");
}

#[test]
fn semantic_checks() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        r#"
[[grant]]
plugin = "Vacuum"
targets = []
capabilities = []
max_runtime = "0s"
statement_timeout = "0s"
lock_timeout = "0s"
memory = "5GiB"

[[grant]]
plugin = "ok"
targets = ["app"]
capabilities = ["read"]
memory = 0
"#,
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    let fields: Vec<(&str, Option<usize>)> =
        diags.iter().map(|d| (d.field.as_str(), d.line)).collect();
    assert_eq!(
        fields,
        [
            ("grant[0].plugin", Some(3)),
            ("grant[0].targets", Some(4)),
            ("grant[0].capabilities", Some(5)),
            ("grant[0].max_runtime", Some(6)),
            ("grant[0].statement_timeout", Some(7)),
            ("grant[0].lock_timeout", Some(8)),
            ("grant[0].memory", Some(9)),
            ("grant[1].memory", Some(15)),
        ],
        "{diags}"
    );
    assert!(
        about(&diags, &file, "grant[0].memory")
            .message
            .contains("5GiB is more than the limit of 4GiB")
    );
    assert!(
        about(&diags, &file, "grant[0].max_runtime")
            .message
            .contains("greater than zero")
    );
    assert!(
        about(&diags, &file, "grant[0].capabilities")
            .message
            .contains("`session-control`")
    );
    assert!(
        about(&diags, &file, "grant[0].targets")
            .message
            .contains("`app`, `quickstart`")
    );
    assert!(
        about(&diags, &file, "grant[1].memory")
            .message
            .contains("greater than zero")
    );
}

#[test]
fn every_missing_field_is_reported() {
    let policies = Policies::new();
    policies.write("a.toml", "\n[[grant]]\nmax_rows = 5\n");
    let diags = policies.errors();
    let found: Vec<(&str, &str, Option<usize>)> = diags
        .iter()
        .map(|d| (d.field.as_str(), d.message.as_str(), d.line))
        .collect();
    assert_eq!(
        found,
        [
            ("grant[0].plugin", "missing field `plugin`", Some(2)),
            ("grant[0].targets", "missing field `targets`", Some(2)),
            (
                "grant[0].capabilities",
                "missing field `capabilities`",
                Some(2)
            ),
        ]
    );
}

#[test]
fn unknown_target_lists_the_known_ones() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"x\"\ntargets = [\"app\", \"prod\"]\ncapabilities = [\"read\"]\n",
    );
    let diags = policies.errors();
    assert_eq!(diags.len(), 1);
    let d = about(&diags, &policies.path("a.toml"), "grant[0].targets[1]");
    assert_eq!((d.line, d.column), (Some(3), Some(19)));
    assert_eq!(
        d.message,
        "unknown target \"prod\": the config defines `app`, `quickstart`"
    );

    let none = PolicySet::load_dir(policies.dir.path(), &[]).unwrap_err();
    assert!(
        none.0[0].message.contains("the config defines no targets"),
        "{none}"
    );
}

#[test]
fn duplicate_grants_name_both_locations() {
    let policies = Policies::new();
    policies
        .write("a.toml", "[[grant]]\nplugin = \"vacuum\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n")
        .write(
            "b.toml",
            "\n[[grant]]\nplugin = \"vacuum\"\ntargets = [\"quickstart\", \"app\"]\ncapabilities = [\"maintenance\"]\n\n\
             [[grant]]\nplugin = \"other\"\ntargets = [\"app\", \"app\"]\ncapabilities = [\"read\"]\n",
        );
    let diags = policies.errors();
    assert_eq!(diags.len(), 2, "{diags}");
    let b = policies.path("b.toml");
    let across = about(&diags, &b, "grant[0].targets[1]");
    assert_eq!(across.line, Some(4));
    let first = format!("{}:3", policies.path("a.toml").display());
    assert!(
        across.message.contains(&format!(
            "plugin `vacuum` already has a grant for target `app` at {first}"
        )),
        "{across}"
    );
    let within = about(&diags, &b, "grant[1].targets[1]");
    assert!(
        within.message.contains(&format!("at {}:9", b.display())),
        "{within}"
    );
}

#[test]
fn every_error_in_every_file_is_reported() {
    let policies = Policies::new();
    policies
        .write(
            "a.toml",
            "[[grant]]\nplugin = \"one\"\ntargets = [\"nope\"]\ncapabilities = [\"read\"]\nmax_rows = -1\n",
        )
        .write("b.toml", "[[grant]]\nplugin = \"two\"\ntargets = [\"app\"]\ncapabilities = [\"fly\"]\ncolour = \"red\"\n")
        .write("c.toml", VACUUM)
        .write("d.toml", "[[grant]\n");
    let diags = policies.errors();
    let got: Vec<(String, &str, Option<usize>)> = diags
        .iter()
        .map(|d| {
            let name = d.file.file_name().unwrap().to_string_lossy().into_owned();
            (name, d.field.as_str(), d.line)
        })
        .collect();
    let expected = [
        ("a.toml", "grant[0].targets[0]", Some(3)),
        ("a.toml", "grant[0].max_rows", Some(5)),
        ("b.toml", "grant[0].capabilities[0]", Some(4)),
        ("b.toml", "grant[0].colour", Some(5)),
        ("d.toml", "", Some(1)),
    ];
    let expected: Vec<(String, &str, Option<usize>)> = expected
        .iter()
        .map(|(f, field, line)| ((*f).to_owned(), *field, *line))
        .collect();
    assert_eq!(got, expected, "{diags}");
}

#[test]
fn plugin_names() {
    assert!(is_valid_plugin_name("vacuum"));
    assert!(is_valid_plugin_name("index-advisor2"));
    assert!(!is_valid_plugin_name(""));
    assert!(!is_valid_plugin_name("2fa"));
    assert!(!is_valid_plugin_name("my_plugin"));
    assert!(!is_valid_plugin_name("Vacuum"));
}

#[test]
fn location_display() {
    let location = Location {
        file: PathBuf::from("policies/a.toml"),
        line: 7,
    };
    assert_eq!(location.to_string(), "policies/a.toml:7");
}

// ---------------------------------------------------------------------------
// Approval on grants

#[test]
fn grant_approval() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"vacuum\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         require_approval = true\napproval_ttl = \"1h\"\n\n\
         [[grant]]\nplugin = \"other\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n",
    );
    let set = policies.load().unwrap();
    let vacuum = set.grant("vacuum", "app").unwrap();
    assert!(vacuum.require_approval);
    assert_eq!(vacuum.approval_ttl, Duration::from_secs(3600));
    let other = set.grant("other", "app").unwrap();
    assert!(!other.require_approval);
    assert_eq!(other.approval_ttl, Duration::from_secs(24 * 3600));

    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"vacuum\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         require_approval = \"yes\"\napproval_ttl = \"0s\"\n",
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    assert!(
        about(&diags, &file, "grant[0].require_approval")
            .message
            .contains("expected a boolean"),
        "{diags}"
    );
    let ttl = about(&diags, &file, "grant[0].approval_ttl");
    assert_eq!(ttl.line, Some(6));
    assert_eq!(ttl.message, "must be greater than zero");
}

#[test]
fn grant_allow_privileged_sessions() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"killer\"\ntargets = [\"app\"]\n\
         capabilities = [\"read\", \"session-control\"]\nallow_privileged_sessions = true\n\n\
         [[grant]]\nplugin = \"other\"\ntargets = [\"app\"]\ncapabilities = [\"session-control\"]\n",
    );
    let set = policies.load().unwrap();
    assert!(
        set.grant("killer", "app")
            .unwrap()
            .allow_privileged_sessions
    );
    assert!(!set.grant("other", "app").unwrap().allow_privileged_sessions);

    // Not a boolean; and true without session-control, where it would do nothing.
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"killer\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         allow_privileged_sessions = \"yes\"\n\n\
         [[grant]]\nplugin = \"other\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         allow_privileged_sessions = true\n",
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    assert!(
        about(&diags, &file, "grant[0].allow_privileged_sessions")
            .message
            .contains("expected a boolean"),
        "{diags}"
    );
    let d = about(&diags, &file, "grant[1].allow_privileged_sessions");
    assert_eq!(d.line, Some(11));
    assert!(d.message.contains("without `session-control`"), "{d}");

    // false needs nothing.
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"other\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         allow_privileged_sessions = false\n",
    );
    assert!(
        !policies
            .load()
            .unwrap()
            .grant("other", "app")
            .unwrap()
            .allow_privileged_sessions
    );
}

// ---------------------------------------------------------------------------
// Schedules, rules and concurrency: valid files

const FULL: &str = r#"
[[grant]]
plugin = "vacuum"
targets = ["app", "quickstart"]
capabilities = ["read", "maintenance"]

[[grant]]
plugin = "reindex"
targets = ["app"]
capabilities = ["read", "maintenance"]

[[schedule]]
name = "nightly-vacuum"
plugin = "vacuum"
target = "app"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
params = { table = "events", limit = 5, ratio = 0.5, analyze = true }
jitter = "30s"
window = { days = ["mon", "Tuesday"], start = "01:00", end = "05:00" }
dry_run = true
require_approval = true
approval_ttl = "1h"
retry = { attempts = 3, backoff = "1m", max_backoff = "5m" }

[[schedule]]
name = "often"
plugin = "vacuum"
target = "quickstart"
cron = "*/10 * * * * *"

[[rule]]
name = "dead-tuples"
match = ['alertname="PostgresDeadTuples"', 'severity=~"warning|critical"', "env!=dev"]
plugin = "vacuum"
target = "app"
params = { table = "{{ labels.table }}", note = "{{ annotations.summary | default('none') }}" }
on_resolved = "cancel"
dry_run = true
require_approval = true
approval_ttl = "2h"
dedup_window = "12h"
cooldown = "10m"
throttle = { max = 5, per = "10m", group_by = ["cluster"] }
circuit_breaker = { max_failures = 2, max_runs = 10, window = "2h", open_for = "30m" }
retry = { attempts = 2 }
window = { start = "22:00", end = "06:00", timezone = "Europe/Berlin" }

[[rule]]
name = "bloat"
match = ['alertname="IndexBloat"']
plugin = "reindex"
target_label = "instance"

[[concurrency]]
global = true
max = 4

[[concurrency]]
plugin = "vacuum"
max = 1
on_limit = "skip"

[[concurrency]]
target = "app"
max = 2
on_limit = "queue"
"#;

#[test]
fn valid_schedules_rules_and_limits() {
    let policies = Policies::new();
    policies.write("full.toml", FULL);
    let set = policies.load().unwrap();
    let file = policies.path("full.toml");
    let berlin = chrono_tz::Europe::Berlin;

    assert_eq!(set.schedules.len(), 2);
    let nightly = set.schedule("nightly-vacuum").unwrap();
    assert_eq!(nightly.name, "nightly-vacuum");
    assert_eq!(nightly.plugin, "vacuum");
    assert_eq!(nightly.target, "app");
    assert_eq!(nightly.cron, "0 3 * * *");
    assert_eq!(nightly.timezone, berlin);
    assert_eq!(
        nightly.params,
        BTreeMap::from([
            ("analyze".to_owned(), "true".to_owned()),
            ("limit".to_owned(), "5".to_owned()),
            ("ratio".to_owned(), "0.5".to_owned()),
            ("table".to_owned(), "events".to_owned()),
        ])
    );
    assert_eq!(nightly.jitter, Duration::from_secs(30));
    assert_eq!(
        nightly.window,
        Some(Window {
            days: vec![chrono::Weekday::Mon, chrono::Weekday::Tue],
            start: time(1, 0),
            end: time(5, 0),
            timezone: berlin,
        })
    );
    assert!(nightly.dry_run);
    assert!(nightly.require_approval);
    assert_eq!(nightly.approval_ttl, Duration::from_secs(3600));
    assert_eq!(
        nightly.retry,
        Some(Retry {
            attempts: 3,
            backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(300),
        })
    );
    assert_eq!(
        nightly.source,
        Location {
            file: file.clone(),
            line: 12
        }
    );

    let often = &set.schedules[1];
    assert_eq!(often.name, "often");
    assert_eq!(often.cron, "*/10 * * * * *");
    assert_eq!(often.timezone, chrono_tz::UTC);
    assert!(often.params.is_empty());
    assert_eq!(often.jitter, Duration::ZERO);
    assert_eq!(often.window, None);
    assert!(!often.dry_run && !often.require_approval);
    assert_eq!(often.approval_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(often.retry, None);
    assert_eq!(often.jitter_delay(), Duration::ZERO);

    assert_eq!(set.rules.len(), 2);
    let expected = Rule {
        name: "dead-tuples".to_owned(),
        matchers: vec![
            Matcher::parse("alertname=\"PostgresDeadTuples\"").unwrap(),
            Matcher::parse("severity=~\"warning|critical\"").unwrap(),
            Matcher::parse("env!=\"dev\"").unwrap(),
        ],
        plugin: "vacuum".to_owned(),
        target: RuleTarget::Fixed("app".to_owned()),
        params: BTreeMap::from([
            (
                "note".to_owned(),
                "{{ annotations.summary | default('none') }}".to_owned(),
            ),
            ("table".to_owned(), "{{ labels.table }}".to_owned()),
        ]),
        on_resolved: OnResolved::Cancel,
        dry_run: true,
        require_approval: true,
        approval_ttl: Duration::from_secs(7200),
        dedup_window: Duration::from_secs(12 * 3600),
        cooldown: Some(Duration::from_secs(600)),
        throttle: Some(Throttle {
            max: 5,
            per: Duration::from_secs(600),
            group_by: vec!["cluster".to_owned()],
        }),
        circuit_breaker: Some(CircuitBreaker {
            max_failures: 2,
            max_runs: Some(10),
            window: Duration::from_secs(7200),
            open_for: Duration::from_secs(1800),
        }),
        retry: Some(Retry {
            attempts: 2,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(600),
        }),
        window: Some(Window {
            days: vec![],
            start: time(22, 0),
            end: time(6, 0),
            timezone: berlin,
        }),
        source: Location {
            file: file.clone(),
            line: 32,
        },
    };
    assert_eq!(set.rule("dead-tuples"), Some(&expected));

    let bloat = set.rule("bloat").unwrap();
    assert_eq!(bloat.target, RuleTarget::Label("instance".to_owned()));
    assert_eq!(bloat.on_resolved, OnResolved::Ignore);
    assert!(!bloat.dry_run && !bloat.require_approval);
    assert_eq!(bloat.approval_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(bloat.dedup_window, Duration::from_secs(24 * 3600));
    assert_eq!(bloat.cooldown, None);
    assert_eq!(bloat.throttle, None);
    assert_eq!(bloat.circuit_breaker, None);
    assert_eq!(bloat.retry, None);
    assert_eq!(bloat.window, None);
    assert!(bloat.params.is_empty());
    assert!(set.rule("nope").is_none());
    assert!(set.schedule("nope").is_none());

    assert_eq!(
        set.concurrency,
        [
            ConcurrencyLimit {
                scope: Scope::Global,
                max: 4,
                on_limit: OnLimit::Queue,
                source: Location {
                    file: file.clone(),
                    line: 55
                },
            },
            ConcurrencyLimit {
                scope: Scope::Plugin("vacuum".to_owned()),
                max: 1,
                on_limit: OnLimit::Skip,
                source: Location {
                    file: file.clone(),
                    line: 59
                },
            },
            ConcurrencyLimit {
                scope: Scope::Target("app".to_owned()),
                max: 2,
                on_limit: OnLimit::Queue,
                source: Location {
                    file: file.clone(),
                    line: 64
                },
            },
        ]
    );
    assert_eq!(
        set.concurrency_limit(&Scope::Plugin("vacuum".to_owned()))
            .map(|l| l.max),
        Some(1)
    );
    assert!(
        set.concurrency_limit(&Scope::Plugin("reindex".to_owned()))
            .is_none()
    );
}

#[test]
fn circuit_breaker_defaults_and_nicknames() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        r#"
[[grant]]
plugin = "vacuum"
targets = ["app"]
capabilities = ["read"]

[[schedule]]
name = "daily"
plugin = "vacuum"
target = "app"
cron = "@daily"

[[rule]]
name = "r"
match = ["a=b"]
plugin = "vacuum"
target = "app"
circuit_breaker = {}
dedup_window = "0s"
"#,
    );
    let set = policies.load().unwrap();
    let rule = set.rule("r").unwrap();
    assert_eq!(
        rule.circuit_breaker,
        Some(CircuitBreaker {
            max_failures: 3,
            max_runs: None,
            window: Duration::from_secs(3600),
            open_for: Duration::from_secs(900),
        })
    );
    assert_eq!(rule.dedup_window, Duration::ZERO);
    let daily = set.schedule("daily").unwrap();
    assert_eq!(
        daily.next_after(utc(2025, 1, 1, 12, 0, 0)),
        Some(utc(2025, 1, 2, 0, 0, 0))
    );
}

// ---------------------------------------------------------------------------
// Schedules, rules and concurrency: errors

/// A grant for `vacuum` on `app`, then `rest`.
fn with_grant(rest: &str) -> String {
    format!(
        "[[grant]]\nplugin = \"vacuum\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n{rest}"
    )
}

/// (field, line, column) of every diagnostic.
fn positions(diags: &Diagnostics) -> Vec<(&str, Option<usize>, Option<usize>)> {
    diags
        .iter()
        .map(|d| (d.field.as_str(), d.line, d.column))
        .collect()
}

#[test]
fn schedule_missing_fields() {
    let policies = Policies::new();
    policies.write("a.toml", &with_grant("\n[[schedule]]\ndry_run = true\n"));
    let diags = policies.errors();
    let found: Vec<(&str, &str, Option<usize>)> = diags
        .iter()
        .map(|d| (d.field.as_str(), d.message.as_str(), d.line))
        .collect();
    assert_eq!(
        found,
        [
            ("schedule[0].name", "missing field `name`", Some(6)),
            ("schedule[0].plugin", "missing field `plugin`", Some(6)),
            ("schedule[0].target", "missing field `target`", Some(6)),
            ("schedule[0].cron", "missing field `cron`", Some(6)),
        ]
    );
}

#[test]
fn schedule_errors() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        &with_grant(
            r#"
[[schedule]]
name = "Nightly"
plugin = "Vacuum"
target = "prod"
cron = "0 25 * * *"
timezone = "europe/berlin"
jitter = "soon"
approval_ttl = "0s"
retry = { attempts = 0, backoff = "0s" }
params = { list = [1, 2] }
window = { days = ["mon", "someday"], start = "1am", colour = "red" }
flavour = "vanilla"

[[schedule]]
name = "b"
plugin = "vacuum"
target = "app"
cron = "* * *"
timezone = "Mars/Olympus"
retry = { backoff = "10m", max_backoff = "1m" }
window = { start = "01:00", end = "05:00", timezone = "Nowhere" }

[[schedule]]
name = "c"
plugin = "vacuum"
target = "app"
cron = "0 3 * * * *"
retry = { attempts = 1, backoff = "10m", max_backoff = "1m" }
window = { start = "01:00" }
"#,
        ),
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    assert_eq!(
        positions(&diags),
        [
            ("schedule[0].name", Some(7), Some(8)),
            ("schedule[0].plugin", Some(8), Some(10)),
            ("schedule[0].target", Some(9), Some(10)),
            ("schedule[0].cron", Some(10), Some(8)),
            ("schedule[0].timezone", Some(11), Some(12)),
            ("schedule[0].jitter", Some(12), Some(10)),
            ("schedule[0].approval_ttl", Some(13), Some(16)),
            ("schedule[0].retry.attempts", Some(14), Some(22)),
            ("schedule[0].retry.backoff", Some(14), Some(35)),
            ("schedule[0].params.list", Some(15), Some(19)),
            ("schedule[0].window.colour", Some(16), Some(54)),
            ("schedule[0].flavour", Some(17), Some(1)),
            ("schedule[1].cron", Some(23), Some(8)),
            ("schedule[1].timezone", Some(24), Some(12)),
            ("schedule[1].retry.attempts", Some(25), Some(9)),
            ("schedule[1].window.timezone", Some(26), Some(55)),
            ("schedule[2].retry.max_backoff", Some(33), Some(56)),
            ("schedule[2].window.end", Some(34), Some(10)),
        ],
        "{diags}"
    );
    let message = |field: &str| about(&diags, &file, field).message.clone();
    assert!(
        message("schedule[0].name").contains("invalid schedule name \"Nightly\""),
        "{diags}"
    );
    assert!(message("schedule[0].plugin").contains("invalid plugin name \"Vacuum\""));
    assert_eq!(
        message("schedule[0].target"),
        "unknown target \"prod\": the config defines `app`, `quickstart`"
    );
    assert_eq!(
        message("schedule[0].cron"),
        "invalid cron expression \"0 25 * * *\": bad hour field `25`: number out of bounds \
         (allowed: 0-23)"
    );
    assert_eq!(
        message("schedule[0].timezone"),
        "unknown time zone \"europe/berlin\": did you mean \"Europe/Berlin\"?"
    );
    assert!(message("schedule[0].jitter").contains("invalid duration \"soon\""));
    assert_eq!(message("schedule[0].retry.attempts"), "must be at least 1");
    assert_eq!(
        message("schedule[0].retry.backoff"),
        "must be greater than zero"
    );
    assert!(
        message("schedule[0].params.list").contains("expected a string, number or boolean"),
        "{diags}"
    );
    assert!(message("schedule[0].window.colour").starts_with("unknown field `colour`"));
    assert!(
        message("schedule[1].cron").contains("it has 3 fields, expected 5"),
        "{diags}"
    );
    assert!(message("schedule[1].timezone").contains("unknown time zone \"Mars/Olympus\""));
    assert_eq!(
        message("schedule[1].retry.attempts"),
        "missing field `attempts`"
    );
    assert_eq!(
        message("schedule[2].retry.max_backoff"),
        "`max_backoff` (1m) is less than `backoff` (10m)"
    );
    assert_eq!(message("schedule[2].window.end"), "missing field `end`");
    // The broken window of schedule[0] was dropped (it has an unknown
    // field): its bad day and time are reported once it is fixed.
    assert!(diags.iter().all(|d| d.file == file));
}

#[test]
fn window_errors() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        &with_grant(
            r#"
[[schedule]]
name = "a"
plugin = "vacuum"
target = "app"
cron = "0 3 * * *"
window = { days = ["mon", "someday"], start = "1am", end = "25:00" }
"#,
        ),
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    assert_eq!(
        positions(&diags),
        [
            ("schedule[0].window.days[1]", Some(11), Some(27)),
            ("schedule[0].window.start", Some(11), Some(47)),
            ("schedule[0].window.end", Some(11), Some(60)),
        ],
        "{diags}"
    );
    assert!(
        about(&diags, &file, "schedule[0].window.days[1]")
            .message
            .starts_with("unknown day \"someday\": use `mon`")
    );
    assert!(
        about(&diags, &file, "schedule[0].window.start")
            .message
            .starts_with("invalid time \"1am\": expected a time of day like \"01:00\"")
    );
}

#[test]
fn cron_errors_name_the_field() {
    let cases = [
        (
            "61 * * * *",
            "bad minute field `61`: number out of bounds (allowed: 0-59)",
        ),
        ("* * 0 * *", "bad day-of-month field `0`"),
        ("* * * 13 *", "bad month field `13`"),
        ("* * * * 8", "bad day-of-week field `8`"),
        (
            "* * * * funday",
            "bad day-of-week field `funday`: it has a character not allowed",
        ),
        ("70 * * * * *", "bad second field `70`"),
        ("* 1-30 * * *", "bad hour field `1-30`: range out of bounds"),
        ("*/0 * * * *", "bad minute field `*/0`: step cannot be zero"),
        ("* * * * * * *", "it has 7 fields, expected 5"),
        ("", "it has 0 fields"),
        ("@reboot", "unknown nickname: use one of @yearly"),
    ];
    for (expression, expected) in cases {
        let error = schedule::parse_cron(expression).unwrap_err();
        assert!(
            error.starts_with(&format!("invalid cron expression {expression:?}: ")),
            "{error}"
        );
        assert!(error.contains(expected), "{expression}: {error}");
    }
    for ok in [
        "0 3 * * *",
        "*/10 * * * * *",
        "0 3 * * mon-fri",
        "@hourly",
        "0 0 1 JAN *",
    ] {
        assert!(schedule::parse_cron(ok).is_ok(), "{ok}");
    }
}

#[test]
fn rule_errors() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        &with_grant(
            r#"
[[rule]]
name = "a"
match = ['alertname="X"', 'severity=~"(critical"', "=x", "nolabel"]
plugin = "vacuum"
target = "app"
target_label = "instance"
params = { a = "{{ labels.table ", b = "{{ label.table }}", c = "{{ labels.x | nosuch }}", d = "ok {{ status }}" }
on_resolved = "retry"
cooldown = "0s"
throttle = { max = 0 }
circuit_breaker = { max_failures = 0, max_runs = 0, window = "0s", open_for = "0s" }

[[rule]]
name = "b"
match = []
plugin = "vacuum"
throttle = { per = "1m", group_by = ["ok", "not-ok"] }

[[rule]]
name = "c"
match = ["a=b"]
plugin = "vacuum"
target = "prod"
dedup_window = "1 fortnight"

[[rule]]
name = "d"
match = ["a=b"]
plugin = "vacuum"
target_label = "1instance"
"#,
        ),
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    assert_eq!(
        positions(&diags),
        [
            ("rule[0].match[1]", Some(8), Some(27)),
            ("rule[0].match[2]", Some(8), Some(52)),
            ("rule[0].match[3]", Some(8), Some(58)),
            ("rule[0].target_label", Some(11), Some(16)),
            ("rule[0].params.a", Some(12), Some(16)),
            ("rule[0].params.b", Some(12), Some(40)),
            ("rule[0].params.c", Some(12), Some(65)),
            ("rule[0].on_resolved", Some(13), Some(15)),
            ("rule[0].cooldown", Some(14), Some(12)),
            ("rule[0].throttle.per", Some(15), Some(12)),
            ("rule[0].throttle.max", Some(15), Some(20)),
            ("rule[0].circuit_breaker.max_failures", Some(16), Some(36)),
            ("rule[0].circuit_breaker.max_runs", Some(16), Some(50)),
            ("rule[0].circuit_breaker.window", Some(16), Some(62)),
            ("rule[0].circuit_breaker.open_for", Some(16), Some(79)),
            ("rule[1].target", Some(18), Some(1)),
            ("rule[1].match", Some(20), Some(9)),
            ("rule[1].throttle.max", Some(22), Some(12)),
            ("rule[1].throttle.group_by[1]", Some(22), Some(44)),
            ("rule[2].target", Some(28), Some(10)),
            ("rule[2].dedup_window", Some(29), Some(16)),
            ("rule[3].target_label", Some(35), Some(16)),
        ],
        "{diags}"
    );
    let message = |field: &str| about(&diags, &file, field).message.clone();
    assert_eq!(
        message("rule[0].match[1]"),
        "invalid matcher \"severity=~\\\"(critical\\\"\": invalid regex \"(critical\": unclosed group"
    );
    assert!(
        message("rule[0].match[2]").contains("the label name is missing"),
        "{diags}"
    );
    assert!(
        message("rule[0].match[3]").contains("has no operator"),
        "{diags}"
    );
    assert_eq!(
        message("rule[0].target_label"),
        "give either `target` or `target_label`, not both"
    );
    assert_eq!(
        message("rule[0].params.a"),
        "invalid template: syntax error: unexpected end of input, expected end of variable \
         block (line 1 of the template)"
    );
    assert!(
        message("rule[0].params.b").starts_with("invalid template: unknown variable `label`"),
        "{diags}"
    );
    assert_eq!(
        message("rule[0].params.c"),
        "invalid template: unknown filter: filter nosuch is unknown"
    );
    assert!(
        message("rule[0].on_resolved")
            .contains("unknown variant `retry`, expected one of `ignore`, `run`, `cancel`")
    );
    assert!(message("rule[1].target").starts_with("missing field `target`"));
    assert!(message("rule[1].match").starts_with("lists no matchers"));
    assert_eq!(message("rule[1].throttle.max"), "missing field `max`");
    assert!(message("rule[1].throttle.group_by[1]").contains("invalid label name \"not-ok\""));
    assert!(message("rule[2].target").starts_with("unknown target \"prod\""));
    assert!(message("rule[3].target_label").contains("invalid label name \"1instance\""));
}

#[test]
fn concurrency_errors() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        r#"
[[concurrency]]
max = 1

[[concurrency]]
plugin = "vacuum"
target = "app"
max = 0

[[concurrency]]
global = false
max = 1

[[concurrency]]
target = "prod"
on_limit = "drop"

[[concurrency]]
plugin = "Vacuum"
max = 1
"#,
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    assert_eq!(
        positions(&diags),
        [
            ("concurrency[0].plugin", Some(2), Some(1)),
            ("concurrency[1].target", Some(7), Some(10)),
            ("concurrency[1].max", Some(8), Some(7)),
            ("concurrency[2].global", Some(11), Some(10)),
            ("concurrency[3].max", Some(14), Some(1)),
            ("concurrency[3].target", Some(15), Some(10)),
            ("concurrency[3].on_limit", Some(16), Some(12)),
            ("concurrency[4].plugin", Some(19), Some(10)),
        ],
        "{diags}"
    );
    let message = |field: &str| about(&diags, &file, field).message.clone();
    assert!(message("concurrency[0].plugin").starts_with("missing scope: give exactly one of"));
    assert!(
        message("concurrency[1].target").starts_with(
            "give exactly one of `plugin`, `target` and `global`, not `plugin` and `target`"
        ),
        "{diags}"
    );
    assert_eq!(message("concurrency[1].max"), "must be at least 1");
    assert!(message("concurrency[2].global").starts_with("`global = false` limits nothing"));
    assert!(message("concurrency[3].on_limit").contains("expected `queue` or `skip`"));
    assert!(message("concurrency[4].plugin").contains("invalid plugin name \"Vacuum\""));
}

#[test]
fn missing_grants_are_errors() {
    let policies = Policies::new();
    policies
        .write(
            "a.toml",
            r#"
[[schedule]]
name = "s"
plugin = "vacuum"
target = "quickstart"
cron = "0 3 * * *"

[[schedule]]
name = "granted-later"
plugin = "vacuum"
target = "app"
cron = "0 3 * * *"

[[rule]]
name = "fixed"
match = ["a=b"]
plugin = "reindex"
target = "app"

[[rule]]
name = "by-label"
match = ["a=b"]
plugin = "analyze"
target_label = "instance"

[[rule]]
name = "by-label-ok"
match = ["a=b"]
plugin = "vacuum"
target_label = "instance"
"#,
        )
        .write("b.toml", &with_grant(""));
    let diags = policies.errors();
    let file = policies.path("a.toml");
    assert_eq!(
        positions(&diags),
        [
            ("schedule[0].target", Some(5), Some(10)),
            ("rule[0].target", Some(18), Some(10)),
            ("rule[1].plugin", Some(23), Some(10)),
        ],
        "{diags}"
    );
    assert_eq!(
        about(&diags, &file, "schedule[0].target").message,
        "schedule `s` runs plugin `vacuum` on target `quickstart` but no [[grant]] allows it: \
         add a [[grant]] for plugin `vacuum` listing `quickstart` in its targets"
    );
    assert!(
        about(&diags, &file, "rule[0].target").message.starts_with(
            "rule `fixed` runs plugin `reindex` on target `app` but no [[grant]] allows it"
        ),
        "{diags}"
    );
    assert_eq!(
        about(&diags, &file, "rule[1].plugin").message,
        "rule `by-label` runs plugin `analyze` on the target named by label `instance` but no \
         [[grant]] allows plugin `analyze` on any target"
    );
}

#[test]
fn a_broken_grant_does_not_also_report_missing_grants() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        r#"
[[grant]]
plugin = "vacuum"
targets = ["app"]
capabilities = ["fly"]

[[schedule]]
name = "s"
plugin = "vacuum"
target = "app"
cron = "0 3 * * *"
"#,
    );
    let diags = policies.errors();
    assert_eq!(
        positions(&diags),
        [("grant[0].capabilities[0]", Some(5), Some(17))],
        "{diags}"
    );
}

#[test]
fn duplicates_across_files_name_the_first() {
    let policies = Policies::new();
    let body = r#"
[[schedule]]
name = "nightly"
plugin = "vacuum"
target = "app"
cron = "0 3 * * *"

[[rule]]
name = "dead-tuples"
match = ["a=b"]
plugin = "vacuum"
target = "app"

[[concurrency]]
plugin = "vacuum"
max = 1
"#;
    policies
        .write("a.toml", &with_grant(body))
        .write("b.toml", body);
    let diags = policies.errors();
    let a = policies.path("a.toml");
    let b = policies.path("b.toml");
    assert_eq!(
        positions(&diags),
        [
            ("schedule[0].name", Some(3), Some(8)),
            ("rule[0].name", Some(9), Some(8)),
            ("concurrency[0].plugin", Some(15), Some(10)),
        ],
        "{diags}"
    );
    assert!(diags.iter().all(|d| d.file == b));
    assert_eq!(
        about(&diags, &b, "schedule[0].name").message,
        format!(
            "schedule `nightly` is already defined at {}:7: schedule names must be unique",
            a.display()
        )
    );
    assert_eq!(
        about(&diags, &b, "rule[0].name").message,
        format!(
            "rule `dead-tuples` is already defined at {}:13: rule names must be unique",
            a.display()
        )
    );
    assert_eq!(
        about(&diags, &b, "concurrency[0].plugin").message,
        format!(
            "a [[concurrency]] limit for plugin `vacuum` is already defined at {}:19: give one \
             per scope",
            a.display()
        )
    );
}

// ---------------------------------------------------------------------------
// Matchers

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn matcher_semantics() {
    let alert = labels(&[
        ("alertname", "PostgresDeadTuples"),
        ("severity", "critical"),
        ("env", ""),
    ]);
    let cases: &[(&str, bool)] = &[
        (r#"alertname="PostgresDeadTuples""#, true),
        (r#"alertname="Postgres""#, false),
        (r#"alertname!="Postgres""#, true),
        (r#"alertname!="PostgresDeadTuples""#, false),
        (r#"severity=~"warning|critical""#, true),
        (r#"severity=~"crit""#, false), // anchored: no partial match
        (r#"severity=~"crit.*""#, true),
        (r#"severity=~".*tic""#, false), // anchored at the end too
        (r#"severity!~"warning|critical""#, false),
        (r#"severity!~"warn.*""#, true),
        ("severity=critical", true), // unquoted
        ("severity = critical", true),
        ("severity=~warning|critical", true),
        (r#"missing="""#, true), // absent is empty
        (r#"missing!="x""#, true),
        (r#"missing="x""#, false),
        (r#"missing=~".*""#, true),
        (r#"missing=~".+""#, false),
        (r#"missing!~".+""#, true),
        (r#"env="""#, true), // present but empty
        (r#"env!="""#, false),
        (r#"alertname=~"(?i)postgresdeadtuples""#, true),
    ];
    for (text, expected) in cases {
        let matcher = Matcher::parse(text).unwrap();
        assert_eq!(matcher.matches(&alert), *expected, "{text}");
    }
}

#[test]
fn matcher_parsing_and_display() {
    let matcher = Matcher::parse(r#" severity =~ "warning|critical" "#).unwrap();
    assert_eq!(matcher.name, "severity");
    assert_eq!(matcher.op, MatchOp::Re);
    assert_eq!(matcher.value, "warning|critical");
    assert_eq!(matcher.to_string(), r#"severity=~"warning|critical""#);

    let unquoted = Matcher::parse("severity!=critical").unwrap();
    assert_eq!(unquoted.op, MatchOp::Ne);
    assert_eq!(unquoted.to_string(), r#"severity!="critical""#);

    let escaped = Matcher::parse(r#"msg="say \"hi\" \\ \n""#).unwrap();
    assert_eq!(escaped.value, "say \"hi\" \\ \n");
    assert_eq!(Matcher::parse(&escaped.to_string()).unwrap(), escaped);

    // Regex escapes other than \" \\ \n are kept.
    let digits = Matcher::parse(r#"code=~"\d+""#).unwrap();
    assert_eq!(digits.value, r"\d+");
    assert!(digits.matches(&labels(&[("code", "503")])));
    assert_eq!(Matcher::parse(&digits.to_string()).unwrap(), digits);

    let not_re = Matcher::parse("a!~b").unwrap();
    assert_eq!(
        (not_re.op, not_re.to_string()),
        (MatchOp::NotRe, r#"a!~"b""#.to_owned())
    );

    let errors = [
        ("", "invalid matcher \"\": it is empty"),
        ("alertname", "has no operator"),
        ("=x", "the label name is missing"),
        ("-x=y", "does not start with a label name"),
        (
            "foo-bar=x",
            "invalid label name or operator before \"-bar=x\"",
        ),
        ("1foo=x", "invalid label name \"1foo\""),
        (r#"a="x"#, "no closing quote"),
        (r#"a="x"y"#, "unexpected \"y\" after the closing quote"),
        (r#"a=x"y""#, "stray `\"`"),
        (
            r#"a=~"[z-a]""#,
            "invalid regex \"[z-a]\": invalid character class range",
        ),
        ("a>b", "invalid label name or operator before \">b\""),
    ];
    for (text, expected) in errors {
        let error = Matcher::parse(text).unwrap_err();
        assert!(
            error.starts_with(&format!("invalid matcher {text:?}: ")),
            "{error}"
        );
        assert!(error.contains(expected), "{text}: {error}");
    }
}

#[test]
fn rule_matches_all_matchers() {
    let policies = Policies::new();
    policies.write("full.toml", FULL);
    let set = policies.load().unwrap();
    let rule = set.rule("dead-tuples").unwrap();
    assert!(rule.matches(&labels(&[
        ("alertname", "PostgresDeadTuples"),
        ("severity", "warning"),
    ])));
    assert!(!rule.matches(&labels(&[
        ("alertname", "PostgresDeadTuples"),
        ("severity", "warning"),
        ("env", "dev"),
    ])));
    assert!(!rule.matches(&labels(&[("alertname", "PostgresDeadTuples")])));
}

// ---------------------------------------------------------------------------
// Cron

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn time(h: u32, m: u32) -> chrono::NaiveTime {
    chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

/// A schedule of `vacuum` on `app` with `cron` in `timezone`.
fn schedule(cron: &str, timezone: &str) -> Schedule {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        &with_grant(&format!(
            "[[schedule]]\nname = \"s\"\nplugin = \"vacuum\"\ntarget = \"app\"\ncron = \
             \"{cron}\"\ntimezone = \"{timezone}\"\njitter = \"2s\"\n"
        )),
    );
    policies.load().unwrap().schedules.remove(0)
}

#[test]
fn cron_next_after_across_dst_in_berlin() {
    let nightly = schedule("30 2 * * *", "Europe/Berlin");
    // Winter: 02:30 CET is 01:30 UTC.
    assert_eq!(
        nightly.next_after(utc(2025, 3, 28, 12, 0, 0)),
        Some(utc(2025, 3, 29, 1, 30, 0))
    );
    // 2025-03-30: the clocks go from 02:00 to 03:00, so 02:30 does not
    // exist: the run is at the end of the gap, 03:00 CEST (01:00 UTC).
    assert_eq!(
        nightly.next_after(utc(2025, 3, 29, 12, 0, 0)),
        Some(utc(2025, 3, 30, 1, 0, 0))
    );
    // Summer: 02:30 CEST is 00:30 UTC.
    assert_eq!(
        nightly.next_after(utc(2025, 3, 30, 12, 0, 0)),
        Some(utc(2025, 3, 31, 0, 30, 0))
    );
    // 2025-10-26: 02:30 happens twice; it runs once, the first time (CEST).
    assert_eq!(
        nightly.next_after(utc(2025, 10, 25, 12, 0, 0)),
        Some(utc(2025, 10, 26, 0, 30, 0))
    );
    assert_eq!(
        nightly.next_after(utc(2025, 10, 26, 0, 30, 0)),
        Some(utc(2025, 10, 27, 1, 30, 0))
    );

    let three = schedule("0 3 * * *", "Europe/Berlin");
    assert_eq!(
        three.next_after(utc(2025, 3, 29, 12, 0, 0)),
        Some(utc(2025, 3, 30, 1, 0, 0))
    );
    assert_eq!(
        three.next_after(utc(2025, 10, 25, 12, 0, 0)),
        Some(utc(2025, 10, 26, 2, 0, 0))
    );
}

#[test]
fn cron_next_after_is_strict_and_has_seconds() {
    let every_ten = schedule("*/10 * * * * *", "UTC");
    assert_eq!(
        every_ten.next_after(utc(2025, 1, 1, 0, 0, 0)),
        Some(utc(2025, 1, 1, 0, 0, 10))
    );
    assert_eq!(
        every_ten.next_after(utc(2025, 1, 1, 0, 0, 3)),
        Some(utc(2025, 1, 1, 0, 0, 10))
    );
    assert_eq!(
        every_ten.next_after(utc(2025, 1, 1, 0, 0, 59)),
        Some(utc(2025, 1, 1, 0, 1, 0))
    );
    let half = utc(2025, 1, 1, 0, 0, 9) + chrono::Duration::milliseconds(500);
    assert_eq!(every_ten.next_after(half), Some(utc(2025, 1, 1, 0, 0, 10)));

    let daily = schedule("0 3 * * *", "UTC");
    // Exactly at a fire time: the next one.
    assert_eq!(
        daily.next_after(utc(2025, 1, 1, 3, 0, 0)),
        Some(utc(2025, 1, 2, 3, 0, 0))
    );
    let just_before = utc(2025, 1, 1, 2, 59, 59) + chrono::Duration::milliseconds(999);
    assert_eq!(
        daily.next_after(just_before),
        Some(utc(2025, 1, 1, 3, 0, 0))
    );

    let weekdays = schedule("0 9 * * mon-fri", "America/New_York");
    // Saturday 2025-01-04 noon UTC: next is Monday 09:00 EST = 14:00 UTC.
    assert_eq!(
        weekdays.next_after(utc(2025, 1, 4, 12, 0, 0)),
        Some(utc(2025, 1, 6, 14, 0, 0))
    );
}

#[test]
fn jitter_delay_is_within_the_jitter() {
    let s = schedule("0 3 * * *", "UTC");
    assert_eq!(s.jitter, Duration::from_secs(2));
    for _ in 0..100 {
        assert!(s.jitter_delay() <= Duration::from_secs(2));
    }
}

// ---------------------------------------------------------------------------
// Windows

fn window(
    days: &[chrono::Weekday],
    start: (u32, u32),
    end: (u32, u32),
    tz: chrono_tz::Tz,
) -> Window {
    Window {
        days: days.to_vec(),
        start: time(start.0, start.1),
        end: time(end.0, end.1),
        timezone: tz,
    }
}

#[test]
fn window_contains() {
    use chrono::Weekday::{Fri, Mon, Sat, Sun, Tue};
    let utc_tz = chrono_tz::UTC;
    // 2025-01-06 is a Monday.
    let simple = window(&[], (1, 0), (5, 0), utc_tz);
    assert!(!simple.contains(utc(2025, 1, 6, 0, 59, 59)));
    assert!(simple.contains(utc(2025, 1, 6, 1, 0, 0)));
    assert!(simple.contains(utc(2025, 1, 6, 4, 59, 59)));
    assert!(!simple.contains(utc(2025, 1, 6, 5, 0, 0)));

    let weekdays = window(&[Mon, Tue], (1, 0), (5, 0), utc_tz);
    assert!(weekdays.contains(utc(2025, 1, 6, 2, 0, 0)));
    assert!(weekdays.contains(utc(2025, 1, 7, 2, 0, 0)));
    assert!(!weekdays.contains(utc(2025, 1, 8, 2, 0, 0)));
    assert!(!weekdays.contains(utc(2025, 1, 5, 2, 0, 0)));

    // Crossing midnight: the day is the day it starts.
    let night = window(&[Fri], (22, 0), (2, 0), utc_tz);
    assert!(night.contains(utc(2025, 1, 10, 22, 0, 0))); // Friday 22:00
    assert!(night.contains(utc(2025, 1, 10, 23, 59, 0)));
    assert!(night.contains(utc(2025, 1, 11, 1, 59, 59))); // Saturday 01:59
    assert!(!night.contains(utc(2025, 1, 11, 2, 0, 0)));
    assert!(!night.contains(utc(2025, 1, 11, 22, 30, 0))); // Saturday night
    assert!(!night.contains(utc(2025, 1, 10, 1, 0, 0))); // Friday early: Thursday's night
    assert!(!night.contains(utc(2025, 1, 10, 21, 59, 59)));

    // A whole day.
    let weekend = window(&[Sat, Sun], (0, 0), (0, 0), utc_tz);
    assert!(weekend.contains(utc(2025, 1, 11, 0, 0, 0)));
    assert!(weekend.contains(utc(2025, 1, 12, 23, 59, 59)));
    assert!(!weekend.contains(utc(2025, 1, 13, 0, 0, 0)));

    // In Berlin (UTC+1 in winter, UTC+2 in summer).
    let berlin = window(&[Mon], (1, 0), (5, 0), chrono_tz::Europe::Berlin);
    assert!(berlin.contains(utc(2025, 1, 6, 0, 0, 0))); // 01:00 CET
    assert!(!berlin.contains(utc(2025, 1, 6, 4, 0, 0))); // 05:00 CET
    assert!(berlin.contains(utc(2025, 7, 7, 2, 59, 0))); // 04:59 CEST
    assert!(!berlin.contains(utc(2025, 7, 7, 3, 0, 0))); // 05:00 CEST
    assert!(!berlin.contains(utc(2025, 1, 5, 23, 30, 0))); // Monday 00:30 CET
}

#[test]
fn window_describe() {
    use chrono::Weekday::{Mon, Tue};
    assert_eq!(
        window(&[Mon, Tue], (1, 0), (5, 0), chrono_tz::Europe::Berlin).describe(),
        "mon,tue 01:00-05:00 Europe/Berlin"
    );
    let mut w = window(&[], (22, 0), (2, 0), chrono_tz::UTC);
    assert_eq!(w.describe(), "daily 22:00-02:00 UTC");
    w.end = chrono::NaiveTime::from_hms_opt(2, 0, 30).unwrap();
    assert_eq!(w.describe(), "daily 22:00-02:00:30 UTC");
}

#[test]
fn window_defaults_to_the_schedule_timezone() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        &with_grant(
            r#"
[[schedule]]
name = "a"
plugin = "vacuum"
target = "app"
cron = "0 3 * * *"
timezone = "Asia/Tokyo"
window = { start = "01:00:30", end = "05:00", days = ["SUNDAY", "sun", "Sat"] }

[[rule]]
name = "r"
match = ["a=b"]
plugin = "vacuum"
target = "app"
window = { start = "01:00", end = "05:00" }
"#,
        ),
    );
    let set = policies.load().unwrap();
    let w = set.schedule("a").unwrap().window.clone().unwrap();
    assert_eq!(w.timezone, chrono_tz::Asia::Tokyo);
    assert_eq!(w.days, [chrono::Weekday::Sun, chrono::Weekday::Sat]);
    assert_eq!(w.start, chrono::NaiveTime::from_hms_opt(1, 0, 30).unwrap());
    let r = set.rule("r").unwrap().window.clone().unwrap();
    assert_eq!(r.timezone, chrono_tz::UTC);
}

// ---------------------------------------------------------------------------
// Templates

#[test]
fn render_params() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        &with_grant(
            r#"
[[rule]]
name = "r"
match = ["a=b"]
plugin = "vacuum"
target = "app"
params = { table = "{{ labels.table }}", why = "{{ status }}: {{ annotations.summary | default('no summary') }}", id = "{{ fingerprint }}@{{ starts_at }}", limit = 5, dashed = "{{ labels['k8s-pod'] | default('none') }}" }
"#,
        ),
    );
    let set = policies.load().unwrap();
    let rule = set.rule("r").unwrap();
    let alert_labels = labels(&[("table", "events"), ("k8s-pod", "p1")]);
    let annotations = labels(&[]);
    let ctx = AlertContext {
        status: "firing",
        labels: &alert_labels,
        annotations: &annotations,
        fingerprint: "abc123",
        starts_at: "2025-01-01T00:00:00Z",
    };
    let params = rule.render_params(&ctx).unwrap();
    assert_eq!(
        params,
        BTreeMap::from([
            ("dashed".to_owned(), "p1".to_owned()),
            ("id".to_owned(), "abc123@2025-01-01T00:00:00Z".to_owned()),
            ("limit".to_owned(), "5".to_owned()),
            ("table".to_owned(), "events".to_owned()),
            ("why".to_owned(), "firing: no summary".to_owned()),
        ])
    );

    let no_table = labels(&[]);
    let missing = AlertContext {
        labels: &no_table,
        ..ctx
    };
    let error = rule.render_params(&missing).unwrap_err();
    assert!(
        error.starts_with("param `table`: the alert has no label `table`"),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Retry

#[test]
fn retry_delay_doubles_up_to_the_cap() {
    let retry = Retry {
        attempts: 5,
        backoff: Duration::from_secs(30),
        max_backoff: Duration::from_secs(600),
    };
    let delays: Vec<u64> = (0..=7).map(|n| retry.delay(n).as_secs()).collect();
    assert_eq!(delays, [30, 30, 60, 120, 240, 480, 600, 600]);
    assert_eq!(retry.delay(u32::MAX), Duration::from_secs(600));
    let uncapped = Retry {
        attempts: 1,
        backoff: Duration::from_secs(1),
        max_backoff: Duration::MAX,
    };
    assert_eq!(uncapped.delay(11), Duration::from_secs(1024));
    assert_eq!(uncapped.delay(200), Duration::from_secs(1 << 63));
    let huge = Retry {
        attempts: 1,
        backoff: Duration::from_secs(u64::MAX / 2),
        max_backoff: Duration::MAX,
    };
    assert_eq!(huge.delay(3), Duration::MAX);
    let fractional = Retry {
        attempts: 1,
        backoff: Duration::from_millis(1500),
        max_backoff: Duration::from_secs(60),
    };
    assert_eq!(fractional.delay(2), Duration::from_secs(3));
    assert_eq!(fractional.delay(3), Duration::from_secs(6));
}

// ---------------------------------------------------------------------------
// The documented examples

#[test]
fn documented_examples_load() {
    // The commented-out examples of the shipped default policy.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/default.toml");
    let text = fs::read_to_string(&shipped).unwrap();
    assert!(
        PolicySet::load_files(std::slice::from_ref(&shipped), TARGETS)
            .unwrap()
            .grants
            .is_empty()
    );
    let examples: String = text
        .lines()
        .filter_map(|line| line.strip_prefix("#   "))
        .map(|line| format!("{line}\n"))
        .collect();
    let policies = Policies::new();
    policies.write("shipped.toml", &examples);
    let set = policies
        .load()
        .unwrap_or_else(|e| panic!("{e}\n{examples}"));
    assert_eq!(
        (
            set.grants.len(),
            set.schedules.len(),
            set.rules.len(),
            set.concurrency.len()
        ),
        (1, 1, 1, 1)
    );

    // The example in this module's documentation.
    let doc: String = include_str!("mod.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .map(|line| line.strip_prefix(' ').unwrap_or(line))
        .skip_while(|line| *line != "```toml")
        .skip(1)
        .take_while(|line| *line != "```")
        .map(|line| format!("{line}\n"))
        .collect();
    policies.write("shipped.toml", &doc);
    let set = policies.load().unwrap_or_else(|e| panic!("{e}\n{doc}"));
    assert_eq!(
        (
            set.grants.len(),
            set.schedules.len(),
            set.rules.len(),
            set.concurrency.len()
        ),
        (2, 1, 1, 1)
    );

    // The shipped examples, together (they target `app`, and the backup
    // example restores into `app-scratch`).
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/examples");
    let set = PolicySet::load_dir(&examples, &["app", "quickstart", "app-scratch"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (
            set.grants.len(),
            set.schedules.len(),
            set.rules.len(),
            set.concurrency.len()
        ),
        (3, 3, 1, 1)
    );
    let advisor = set.grant("index-advisor", "app").unwrap();
    assert!(advisor.require_approval && advisor.classes.contains(&CapabilityClass::Ddl));
    let backup = set.grant("backup", "app").unwrap();
    assert!(backup.artifacts.contains("local") && backup.restore_to.contains("app-scratch"));
}

#[test]
fn artifacts_and_restore_to() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"backup\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         artifacts = [\"local\"]\nrestore_to = [\"quickstart\"]\n\n\
         [[grant]]\nplugin = \"vacuum\"\ntargets = [\"app\"]\ncapabilities = [\"maintenance\"]\n",
    );
    let set = policies.load().unwrap();
    let backup = set.grant("backup", "app").unwrap();
    assert_eq!(backup.artifacts, BTreeSet::from(["local".to_owned()]));
    assert_eq!(backup.restore_to, BTreeSet::from(["quickstart".to_owned()]));
    let vacuum = set.grant("vacuum", "app").unwrap();
    assert!(vacuum.artifacts.is_empty() && vacuum.restore_to.is_empty());

    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"backup\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         artifacts = [\"local\"]\nrestore_to = [\"quickstart\", \"scratch\"]\n",
    );
    let diags = policies.errors();
    let d = about(&diags, &policies.path("a.toml"), "grant[0].restore_to[1]");
    assert_eq!(d.line, Some(6));
    assert!(d.message.contains("unknown target \"scratch\""), "{d}");
}

#[test]
fn log_files() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"index-advisor\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         log_files = [\"/var/log/mongodb/mongod.log\", \"/var/log/postgresql/\", \"/\"]\n\n\
         [[grant]]\nplugin = \"vacuum\"\ntargets = [\"app\"]\ncapabilities = [\"maintenance\"]\n",
    );
    let set = policies.load().unwrap();
    let advisor = set.grant("index-advisor", "app").unwrap();
    assert_eq!(
        advisor.log_files,
        BTreeSet::from([
            LogPath::File(PathBuf::from("/var/log/mongodb/mongod.log")),
            LogPath::Dir(PathBuf::from("/var/log/postgresql")),
            LogPath::Dir(PathBuf::from("/")),
        ])
    );
    let shown: Vec<String> = advisor.log_files.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["/var/log/mongodb/mongod.log", "/", "/var/log/postgresql/"]
    );
    assert!(set.grant("vacuum", "app").unwrap().log_files.is_empty());

    // Relative, `..`, `.`, empty segments, NUL: each reported with its
    // file, line and field.
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"index-advisor\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         log_files = [\n  \"/ok.log\",\n  \"mongod.log\",\n  \"/var/log/../etc/passwd\",\n  \
         \"/var/./log/\",\n  \"/var//log\",\n  \"\",\n  \"/a\\u0000b\",\n]\n",
    );
    let diags = policies.errors();
    let file = policies.path("a.toml");
    let d = about(&diags, &file, "grant[0].log_files[1]");
    assert_eq!(d.line, Some(7));
    assert!(d.message.contains("not an absolute path"), "{d}");
    for (i, line) in [(2, 8), (3, 9), (4, 10)] {
        let d = about(&diags, &file, &format!("grant[0].log_files[{i}]"));
        assert_eq!(d.line, Some(line));
        assert!(d.message.contains("not a normalized path"), "{d}");
    }
    let d = about(&diags, &file, "grant[0].log_files[5]");
    assert!(d.message.contains("not an absolute path"), "{d}");
    let d = about(&diags, &file, "grant[0].log_files[6]");
    assert!(d.message.contains("NUL"), "{d}");
    assert_eq!(diags.iter().count(), 6, "{diags}");
}

#[test]
fn log_paths_cover_files_directly_in_a_granted_directory() {
    let file = LogPath::parse("/var/log/mongodb/mongod.log").unwrap();
    let dir = LogPath::parse("/var/log/mongodb/").unwrap();
    assert!(file.covers_as_written(Path::new("/var/log/mongodb/mongod.log")));
    assert!(!file.covers_as_written(Path::new("/var/log/mongodb/mongod.log.1")));
    assert!(dir.covers_as_written(Path::new("/var/log/mongodb/mongod.log.1")));
    assert!(!dir.covers_as_written(Path::new("/var/log/mongodb/old/mongod.log")));
    assert!(!dir.covers_as_written(Path::new("/var/log/mongodb")));
    assert!(!dir.covers_as_written(Path::new("/var/log/mongodb2/x.log")));

    // A granted directory that is a symlink also covers the files of its
    // real directory.
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, tmp.path().join("link")).unwrap();
    let linked = LogPath::parse(&format!("{}/link/", tmp.path().display())).unwrap();
    let real = fs::canonicalize(&real).unwrap();
    assert!(linked.covers(&real.join("mongod.log")));
    assert!(!linked.covers(&real.join("sub/mongod.log")));
}

#[test]
fn run_plugins_lists_plugin_names() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"runbook\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         run_plugins = [\"vacuum\", \"index-advisor\"]\n",
    );
    let set = policies.load().unwrap();
    let grant = set.grant("runbook", "app").unwrap();
    assert_eq!(
        grant.run_plugins,
        BTreeSet::from(["index-advisor".to_owned(), "vacuum".to_owned()])
    );
    assert!(
        set.grant("runbook", "app")
            .is_some_and(|g| !g.run_plugins.contains("backup"))
    );

    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"runbook\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\
         run_plugins = [\"vacuum\", \"Bad Name\"]\n",
    );
    let diags = policies.errors();
    let d = about(&diags, &policies.path("a.toml"), "grant[0].run_plugins[1]");
    assert_eq!(d.line, Some(5));
    assert!(d.message.contains("is not a plugin name"), "{}", d.message);
}

#[test]
fn max_started_runs_defaults_to_ten_and_is_bounded() {
    let policies = Policies::new();
    let grant = |extra: &str| {
        format!(
            "[[grant]]\nplugin = \"runbook\"\ntargets = [\"app\", \"quickstart\"]\n\
             capabilities = [\"read\"]\n{extra}\n"
        )
    };
    policies.write("a.toml", &grant("run_plugins = [\"vacuum\"]"));
    let set = policies.load().unwrap();
    assert_eq!(set.grant("runbook", "app").unwrap().max_started_runs, 10);
    assert_eq!(Grant::default_max_started_runs(), 10);

    for n in [1, 250, 1000] {
        policies.write(
            "a.toml",
            &grant(&format!(
                "run_plugins = [\"vacuum\"]\nmax_started_runs = {n}"
            )),
        );
        let set = policies.load().unwrap();
        for target in ["app", "quickstart"] {
            assert_eq!(set.grant("runbook", target).unwrap().max_started_runs, n);
        }
    }

    for n in ["0", "1001", "-1", "99999999999"] {
        policies.write(
            "a.toml",
            &grant(&format!(
                "run_plugins = [\"vacuum\"]\nmax_started_runs = {n}"
            )),
        );
        let diags = policies.errors();
        let d = about(
            &diags,
            &policies.path("a.toml"),
            "grant[0].max_started_runs",
        );
        assert_eq!(d.line, Some(6), "{d}");
        assert_eq!(
            d.message,
            format!(
                "{n} is out of range: use 1 to 1000 (default 10); to let the plugin start no \
                 runs, remove `run_plugins`"
            )
        );
    }

    // Without `run_plugins` it would bound nothing: an error, not a no-op.
    for extra in [
        "max_started_runs = 5",
        "run_plugins = []\nmax_started_runs = 5",
    ] {
        policies.write("a.toml", &grant(extra));
        let diags = policies.errors();
        let d = about(
            &diags,
            &policies.path("a.toml"),
            "grant[0].max_started_runs",
        );
        assert!(
            d.message.contains("has no effect without `run_plugins`"),
            "{d}"
        );
    }
}

#[test]
fn schedule_catch_up() {
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"x\"\ntargets = [\"app\"]\ncapabilities = [\"read\"]\n\n\
         [[schedule]]\nname = \"a\"\nplugin = \"x\"\ntarget = \"app\"\ncron = \"@daily\"\n\
         catch_up = \"latest\"\n\n\
         [[schedule]]\nname = \"b\"\nplugin = \"x\"\ntarget = \"app\"\ncron = \"@daily\"\n\n\
         [[schedule]]\nname = \"c\"\nplugin = \"x\"\ntarget = \"app\"\ncron = \"@daily\"\n\
         catch_up = \"none\"\n",
    );
    let set = policies.load().unwrap();
    assert_eq!(set.schedule("a").unwrap().catch_up, CatchUp::Latest);
    assert_eq!(set.schedule("b").unwrap().catch_up, CatchUp::None);
    assert_eq!(set.schedule("c").unwrap().catch_up, CatchUp::None);
    for (bad, line) in [("\"all\"", 5), ("true", 5), ("\"Latest\"", 5)] {
        let policies = Policies::new();
        policies.write(
            "a.toml",
            &format!(
                "[[schedule]]\nname = \"a\"\nplugin = \"x\"\ntarget = \"app\"\ncron = \"@daily\"\n\
                 catch_up = {bad}\n"
            ),
        );
        let diags = policies.errors();
        let d = about(&diags, &policies.path("a.toml"), "schedule[0].catch_up");
        assert_eq!(d.line, Some(line + 1), "{d}");
        if bad.starts_with('"') {
            assert!(
                d.message.contains("expected `none` or `latest`"),
                "{bad}: {d}"
            );
        }
    }
}

#[test]
fn ticks_between_keeps_the_latest_and_counts_the_rest() {
    let every_second = schedule("* * * * * *", "UTC");
    let t0 = utc(2026, 12, 3, 10, 0, 0);
    let secs = |s: i64| t0 + chrono::Duration::seconds(s);
    // (t0, t0 + 250 s]: 250 ticks; the latest 100 kept, 150 counted.
    let (ticks, beyond) = every_second.ticks_between(t0, secs(250), 100, 100_000);
    assert_eq!(ticks.len(), 100);
    assert_eq!((ticks[0], ticks[99]), (secs(151), secs(250)));
    assert!(
        ticks
            .windows(2)
            .all(|w| w[1] - w[0] == chrono::Duration::seconds(1))
    );
    assert_eq!(beyond, 150);
    // Counting stops at count_max.
    let (ticks, beyond) = every_second.ticks_between(t0, secs(250), 100, 10);
    assert_eq!((ticks.len(), beyond), (100, 10));
    // Fewer than the cap: all of them, none beyond; the bounds are (after, until].
    let (ticks, beyond) = every_second.ticks_between(t0, secs(3), 100, 100_000);
    assert_eq!((ticks, beyond), (vec![secs(1), secs(2), secs(3)], 0));
    assert_eq!(every_second.ticks_between(t0, t0, 100, 10), (vec![], 0));
    assert_eq!(
        every_second.ticks_between(secs(5), t0, 100, 10),
        (vec![], 0)
    );
    // A nightly schedule in Berlin, down for three nights.
    let nightly = schedule("30 2 * * *", "Europe/Berlin");
    let (ticks, beyond) = nightly.ticks_between(
        utc(2026, 12, 1, 12, 0, 0),
        utc(2026, 12, 4, 12, 0, 0),
        100,
        10,
    );
    assert_eq!(
        ticks,
        [
            utc(2026, 12, 2, 1, 30, 0),
            utc(2026, 12, 3, 1, 30, 0),
            utc(2026, 12, 4, 1, 30, 0)
        ]
    );
    assert_eq!(beyond, 0);
}
