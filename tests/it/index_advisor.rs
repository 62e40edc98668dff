//! The index-advisor plugin end to end: a real PostgreSQL database with every
//! kind of index it knows about, including one left invalid by a failed
//! `CREATE UNIQUE INDEX CONCURRENTLY`.

use crate::world::{World, invoke};
use sqlx::Connection;
use std::collections::BTreeSet;
use warden::runs::{Report, ReportStatus, RunStatus, Severity};
use warden_tests::pg::cluster;

/// Indexes that must never be suggested for dropping.
const PROTECTED: [&str; 3] = ["accounts_pkey", "accounts_email_uq", "accounts_code_excl"];

async fn indexed_database(hint: &str) -> warden_tests::pg::TestDb {
    let db = cluster().create_database(hint).await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE accounts (
             id int PRIMARY KEY,
             email text NOT NULL,
             code int NOT NULL,
             a int, b int, c int, d int,
             note text,
             CONSTRAINT accounts_code_excl EXCLUDE USING btree (code WITH =)
         );
         CREATE UNIQUE INDEX accounts_email_uq ON accounts (email);
         CREATE INDEX accounts_email_plain ON accounts (email);
         CREATE INDEX accounts_note_idx ON accounts (note);
         CREATE INDEX dup_a ON accounts (c, d);
         CREATE INDEX dup_b ON accounts (c, d);
         CREATE INDEX prefix_ab ON accounts (a, b);
         CREATE INDEX prefix_a ON accounts (a);
         INSERT INTO accounts SELECT g, 'user' || g || '@example.com', g, g % 10, g % 3, g, g, 'n'
             FROM generate_series(1, 100) g;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // `b` holds duplicates: the concurrent build fails and leaves an
    // invalid index behind (it runs outside a transaction block).
    let failed = sqlx::raw_sql("CREATE UNIQUE INDEX CONCURRENTLY accounts_b_uq ON accounts (b)")
        .execute(&mut conn)
        .await;
    assert!(failed.is_err(), "the unique build must fail");
    let invalid: bool = sqlx::query_scalar(
        "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'accounts_b_uq'::regclass",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(invalid, "accounts_b_uq is left invalid");
    conn.close().await.unwrap();
    db
}

fn world(url: &str) -> World {
    World::new()
        .pg_target("app", url)
        .plugin("index-advisor")
        .grant("index-advisor", "app", &["read"], "")
}

/// `(category, index)` from titles like `duplicate index public.dup_b`.
fn found(report: &Report) -> BTreeSet<(String, String)> {
    report
        .findings
        .iter()
        .map(|f| {
            let (category, rest) = f.title.split_once(" index ").unwrap();
            (category.to_owned(), rest.to_owned())
        })
        .collect()
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(c, i)| ((*c).to_owned(), format!("public.{i}")))
        .collect()
}

fn metric(report: &Report, name: &str) -> f64 {
    report
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}: {report:#?}"))
        .value
}

fn severity_of(report: &Report, title: &str) -> Severity {
    report
        .findings
        .iter()
        .find(|f| f.title == title)
        .unwrap_or_else(|| panic!("no finding {title}: {report:#?}"))
        .severity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_invalid_duplicate_redundant_and_unused_indexes() {
    let db = indexed_database("indexadvisor").await;
    let w = world(&db.url);
    let agent = w.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    assert!(r.actions.is_empty(), "read only: {r:#?}");
    let report = r.report.clone().unwrap();
    assert_eq!(report.status, ReportStatus::Warning, "{report:#?}");
    assert_eq!(
        found(&report),
        set(&[
            ("invalid", "accounts_b_uq"),
            ("duplicate", "accounts_email_plain"),
            ("duplicate", "dup_b"),
            ("redundant", "prefix_a"),
            ("unused", "accounts_note_idx"),
            ("unused", "dup_a"),
            ("unused", "prefix_ab"),
        ]),
        "{report:#?}"
    );
    assert_eq!(report.findings.len(), 7, "{report:#?}");

    let by_title = |title: &str| {
        report
            .findings
            .iter()
            .find(|f| f.title == title)
            .unwrap_or_else(|| panic!("no finding {title}: {report:#?}"))
    };
    let dup = by_title("duplicate index public.dup_b");
    assert_eq!(
        dup.suggested_action.as_deref(),
        Some(r#"DROP INDEX CONCURRENTLY "public"."dup_b""#)
    );
    assert!(dup.detail.contains("public.dup_a"), "{dup:#?}");
    let email = by_title("duplicate index public.accounts_email_plain");
    assert!(
        email.detail.contains("public.accounts_email_uq"),
        "{email:#?}"
    );
    let redundant = by_title("redundant index public.prefix_a");
    assert_eq!(
        redundant.suggested_action.as_deref(),
        Some(r#"DROP INDEX CONCURRENTLY "public"."prefix_a""#)
    );
    assert!(
        redundant.detail.contains("public.prefix_ab"),
        "{redundant:#?}"
    );
    let invalid = by_title("invalid index public.accounts_b_uq");
    assert!(
        invalid
            .suggested_action
            .as_deref()
            .unwrap()
            .starts_with(r#"REINDEX INDEX CONCURRENTLY "public"."accounts_b_uq""#),
        "{invalid:#?}"
    );
    let unused = by_title("unused index public.accounts_note_idx");
    assert!(unused.detail.contains("0 scans"), "{unused:#?}");
    assert!(unused.detail.contains("KiB"), "size: {unused:#?}");
    // A fresh database: the statistics are younger than the default 24h.
    assert!(unused.detail.contains("weak evidence"), "{unused:#?}");
    for (category, name) in [
        ("invalid", "accounts_b_uq"),
        ("duplicate", "dup_b"),
        ("duplicate", "accounts_email_plain"),
        ("redundant", "prefix_a"),
    ] {
        assert_eq!(
            severity_of(&report, &format!("{category} index public.{name}")),
            Severity::Warning
        );
    }
    for name in ["accounts_note_idx", "dup_a", "prefix_ab"] {
        assert_eq!(
            severity_of(&report, &format!("unused index public.{name}")),
            Severity::Info
        );
    }

    // Primary key, unique and constraint-backed indexes are never named for
    // dropping, anywhere.
    for f in &report.findings {
        for p in PROTECTED {
            assert!(!f.title.contains(p), "{f:#?}");
            let action = f.suggested_action.as_deref().unwrap_or_default();
            assert!(!action.contains(&format!("\"{p}\"")), "{f:#?}");
        }
    }

    // 10 indexes: pkey, exclusion, email unique + plain, note, dup pair,
    // prefix pair, invalid.
    assert_eq!(metric(&report, "indexes_checked"), 10.0, "{report:#?}");
    assert_eq!(metric(&report, "invalid_indexes"), 1.0);
    assert_eq!(metric(&report, "duplicate_indexes"), 2.0);
    assert_eq!(metric(&report, "redundant_indexes"), 1.0);
    assert_eq!(metric(&report, "unused_indexes"), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_enough_statistics_make_unused_a_warning_and_schemas_filter() {
    let db = indexed_database("indexadvisor2").await;
    let w = world(&db.url);
    let agent = w.agent().await;
    let r = invoke(
        &agent,
        "index-advisor",
        "app",
        &[("min_stats_age", "0s")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    let report = r.report.clone().unwrap();
    for name in ["accounts_note_idx", "dup_a", "prefix_ab"] {
        let title = format!("unused index public.{name}");
        assert_eq!(
            severity_of(&report, &title),
            Severity::Warning,
            "{report:#?}"
        );
    }
    assert!(
        !serde_json::to_string(&report.findings)
            .unwrap()
            .contains("weak evidence"),
        "{report:#?}"
    );

    let r = invoke(
        &agent,
        "index-advisor",
        "app",
        &[("include_schemas", "elsewhere")],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{r:#?}");
    let report = r.report.clone().unwrap();
    assert_eq!(report.status, ReportStatus::Ok, "{report:#?}");
    assert!(report.findings.is_empty(), "{report:#?}");
    assert_eq!(metric(&report, "indexes_checked"), 0.0);

    let r = invoke(
        &agent,
        "index-advisor",
        "app",
        &[("include_schemas", "public")],
        false,
    )
    .await;
    let report = r.report.clone().unwrap();
    assert_eq!(metric(&report, "indexes_checked"), 10.0, "{report:#?}");
}
