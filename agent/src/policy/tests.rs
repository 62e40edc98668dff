#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::capability::CapabilityClass;
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
