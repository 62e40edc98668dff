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
fn no_targets_says_so() {
    // The rest of the case is tests/ui/policy/invalid/unknown_target.toml.
    let policies = Policies::new();
    policies.write(
        "a.toml",
        "[[grant]]\nplugin = \"x\"\ntargets = [\"app\", \"prod\"]\ncapabilities = [\"read\"]\n",
    );
    let none = PolicySet::load_dir(policies.dir.path(), &[]).unwrap_err();
    assert!(
        none.0[0].message.contains("the config defines no targets"),
        "{none}"
    );
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

const FULL: &str = include_str!("../../../tests/ui/policy/valid/every_table.toml");

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
