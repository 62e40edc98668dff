//! The index advisor's workload analysis on a real database with known
//! answers: `pg_stat_statements` fed by real executions, HypoPG what-if
//! costs, the chosen set checked exactly, created by the plugin, and the
//! helped statements measured by execution before and after.

use crate::daemon::Daemon;
use crate::world::{World, error_of, invoke, metric};
use sqlx::{Connection, PgConnection};
use std::collections::BTreeSet;
use std::time::Duration;
use warden::runs::{RunRecord, RunStatus, Severity};
use warden_tests::pg::{self, TestDb, cluster};

/// Reference schema: every table ≥ 100k rows.
const SCHEMA: &str = "
CREATE TABLE customers (id int PRIMARY KEY, region int NOT NULL, name text NOT NULL);
INSERT INTO customers SELECT g, g % 10, 'customer ' || g FROM generate_series(1, 100000) g;
CREATE INDEX customers_region ON customers (region);
CREATE INDEX customers_region_name ON customers (region, name);

CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL,
    flag bool NOT NULL, total numeric NOT NULL, note text);
INSERT INTO orders SELECT g, (g * 7919) % 50000, (ARRAY['new','paid','sent','done','void'])[g % 5 + 1],
    g % 2 = 0, (g % 1000) / 10.0, repeat('x', 40) FROM generate_series(1, 200000) g;
CREATE INDEX orders_status_idx ON orders (status);

CREATE TABLE events (id int PRIMARY KEY, tenant_id int NOT NULL, kind int NOT NULL,
    ts timestamptz NOT NULL, payload text);
INSERT INTO events SELECT g, g % 200, g % 20, '2025-01-01'::timestamptz + g * interval '1 minute',
    repeat('p', 60) FROM generate_series(1, 200000) g;

CREATE TABLE audit_log (id int PRIMARY KEY, actor int NOT NULL, action text NOT NULL, at timestamptz NOT NULL);
INSERT INTO audit_log SELECT g, g % 1000, 'login', now() FROM generate_series(1, 100000) g;
";

/// The statements of the workload and how often each runs. Parameters are
/// bound, so `pg_stat_statements` sees `$n`.
const Q_CUSTOMER: &str = "SELECT id, total FROM orders WHERE customer_id = $1";
const Q_TENANT: &str =
    "SELECT id, payload FROM events WHERE tenant_id = $1 AND ts >= $2 ORDER BY ts LIMIT 50";
const Q_TOTAL: &str = "SELECT * FROM orders WHERE total > $1";
const Q_FLAG: &str = "SELECT * FROM orders WHERE flag = $1";
const Q_ACTOR: &str = "SELECT * FROM audit_log WHERE actor = $1";

/// Literal versions for measuring execution.
const M_CUSTOMER: &str = "SELECT id, total FROM orders WHERE customer_id = 4242";
const M_TENANT: &str = "SELECT id, payload FROM events WHERE tenant_id = 17 \
     AND ts >= '2025-03-01' ORDER BY ts LIMIT 50";

async fn connect(db: &TestDb) -> PgConnection {
    PgConnection::connect(&db.url).await.unwrap()
}

/// Builds the reference database, resets its statistics (so the seeding
/// does not count as writes), then runs the workload.
async fn reference_database(hint: &str) -> TestDb {
    let db = cluster().create_database(hint).await;
    let mut conn = connect(&db).await;
    sqlx::raw_sql(SCHEMA).execute(&mut conn).await.unwrap();
    // Its own statement: VACUUM cannot run in the implicit transaction of
    // a multi-statement string.
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&mut conn)
        .await
        .unwrap();
    pg::reset_statistics(&mut conn).await;

    for i in 0..60 {
        sqlx::query(Q_CUSTOMER)
            .bind((i * 37) % 50000)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for i in 0..40 {
        sqlx::query(Q_TENANT)
            .bind(i % 200)
            .bind(chrono::DateTime::parse_from_rfc3339("2025-03-01T00:00:00Z").unwrap())
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for i in 0..10 {
        sqlx::query(Q_TOTAL)
            .bind(90 + i)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(Q_FLAG)
            .bind(i % 2 == 0)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // audit_log is write-heavy and rarely read.
    for i in 0..3 {
        sqlx::query(Q_ACTOR)
            .bind(i)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql(
        "UPDATE audit_log SET action = 'seen' WHERE id <= 60000;
         INSERT INTO audit_log SELECT g, g % 1000, 'login', now() FROM generate_series(100001, 140000) g;
         SELECT pg_stat_force_next_flush();",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    db
}

fn world(db: &TestDb, classes: &[&str], extra: &str) -> World {
    World::new()
        .pg_target("app", &db.url)
        .plugin("index-advisor")
        .grant("index-advisor", "app", classes, extra)
}

/// The suggestions of a run, as `table(columns)` labels.
fn suggested(r: &RunRecord) -> BTreeSet<String> {
    titled(r, "suggested index ")
}

fn titled(r: &RunRecord, prefix: &str) -> BTreeSet<String> {
    r.report
        .as_ref()
        .expect("a report")
        .findings
        .iter()
        .filter_map(|f| f.title.strip_prefix(prefix).map(str::to_owned))
        .collect()
}

fn labels(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn detail<'r>(r: &'r RunRecord, title: &str) -> &'r str {
    crate::world::finding(r, title)
}

/// The valid indexes of `table`, by name.
async fn index_names(db: &TestDb, table: &str) -> BTreeSet<String> {
    let mut conn = connect(db).await;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         WHERE i.indrelid = $1::regclass",
    )
    .bind(table)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    names.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_workload_gets_exactly_the_expected_indexes_and_they_really_help() {
    assert!(
        cluster().has_extension("hypopg"),
        "the test cluster has no hypopg"
    );
    let db = reference_database("workload").await;

    // Advice only: a read grant.
    let w = world(&db, &["read"], "");
    let agent = w.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(r.actions.is_empty(), "advice creates nothing: {r:#?}");
    assert_eq!(
        suggested(&r),
        labels(&["public.events(tenant_id, ts)", "public.orders(customer_id)"]),
        "{:#?}",
        r.report
    );
    let customer = detail(&r, "suggested index public.orders(customer_id)");
    assert!(
        customer.starts_with(
            r#"CREATE INDEX CONCURRENTLY "orders_customer_id_idx" ON "public"."orders" ("customer_id")"#
        ),
        "{customer}"
    );
    assert!(customer.contains("60 calls"), "{customer}");
    assert!(customer.contains("helps 1 statement"), "{customer}");
    assert!(customer.contains("estimated size"), "{customer}");
    let tenant = detail(&r, "suggested index public.events(tenant_id, ts)");
    assert!(tenant.contains(r#"("tenant_id", "ts")"#), "{tenant}");
    // The write-heavy table's index would help its read, but not enough.
    let audit = detail(&r, "not suggested public.audit_log(actor)");
    assert!(audit.contains("write overhead"), "{audit}");
    // Existing-index findings on the same run.
    let unused = titled(&r, "unused index ");
    assert!(unused.contains("public.orders_status_idx"), "{unused:?}");
    let redundant = titled(&r, "redundant index ");
    assert_eq!(redundant, labels(&["public.customers_region"]));
    assert_eq!(metric(&r, "suggested_indexes"), 2.0);
    assert!(metric(&r, "statements_analysed") >= 5.0);
    assert_eq!(metric(&r, "created_indexes"), 0.0);
    assert!(
        index_names(&db, "orders").await.len() == 2,
        "nothing created"
    );

    // Measured before, created by the plugin under a ddl grant, measured after.
    let mut conn = connect(&db).await;
    let before_customer = pg::measure_execution(&mut conn, M_CUSTOMER, 5).await;
    let before_tenant = pg::measure_execution(&mut conn, M_TENANT, 5).await;
    let w_ddl = world(&db, &["read", "ddl"], "");
    let agent = w_ddl.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[("apply", "true")], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert_eq!(metric(&r, "created_indexes"), 2.0, "{:#?}", r.report);
    assert_eq!(
        titled(&r, "created index "),
        labels(&["events_tenant_id_ts_idx", "orders_customer_id_idx"])
    );
    assert_eq!(r.actions.len(), 2, "{:#?}", r.actions);
    assert!(
        index_names(&db, "orders")
            .await
            .contains("orders_customer_id_idx")
    );
    assert!(
        index_names(&db, "events")
            .await
            .contains("events_tenant_id_ts_idx")
    );
    let valid: bool = sqlx::query_scalar(
        "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid IN ('orders'::regclass, 'events'::regclass)",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(valid);
    sqlx::raw_sql("ANALYZE orders, events")
        .execute(&mut conn)
        .await
        .unwrap();
    let after_customer = pg::measure_execution(&mut conn, M_CUSTOMER, 5).await;
    let after_tenant = pg::measure_execution(&mut conn, M_TENANT, 5).await;
    eprintln!(
        "measured: customer {:.2} ms / {} buffers → {:.2} ms / {} buffers; tenant {:.2} ms / {} → {:.2} ms / {}",
        before_customer.0,
        before_customer.1,
        after_customer.0,
        after_customer.1,
        before_tenant.0,
        before_tenant.1,
        after_tenant.0,
        after_tenant.1
    );
    for (name, before, after) in [
        ("customer", before_customer, after_customer),
        ("tenant", before_tenant, after_tenant),
    ] {
        assert!(
            after.1 * 10 < before.1,
            "{name}: buffers {before:?} → {after:?}"
        );
        assert!(
            after.0 * 3.0 < before.0,
            "{name}: time {before:?} → {after:?}"
        );
    }

    // Once created, they are covered: nothing more to suggest.
    let r = invoke(&agent, "index-advisor", "app", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(suggested(&r).is_empty(), "{:#?}", r.report);
    assert!(metric(&r, "candidates_covered") >= 2.0);
}

/// A small database where one index is clearly worth it.
async fn one_suggestion_database(hint: &str) -> TestDb {
    let db = cluster().create_database(hint).await;
    let mut conn = connect(&db).await;
    sqlx::raw_sql(
        "CREATE TABLE items (id int PRIMARY KEY, sku int NOT NULL, name text);
         INSERT INTO items SELECT g, g, 'item ' || g FROM generate_series(1, 100000) g;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE items")
        .execute(&mut conn)
        .await
        .unwrap();
    pg::reset_statistics(&mut conn).await;
    for i in 0..20 {
        sqlx::query("SELECT name FROM items WHERE sku = $1")
            .bind(i)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_needs_a_ddl_grant_and_dry_run_creates_nothing() {
    let db = one_suggestion_database("advisor_safety").await;
    let before = index_names(&db, "items").await;

    // apply=true on a read-only grant: refused, nothing created.
    let w = world(&db, &["read"], "");
    let agent = w.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[("apply", "true")], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert_eq!(suggested(&r), labels(&["public.items(sku)"]));
    let failed = detail(&r, "creating index items_sku_idx failed");
    assert!(failed.contains("ddl"), "{failed}");
    let report = r.report.as_ref().unwrap();
    let f = report
        .findings
        .iter()
        .find(|f| f.title == "creating index items_sku_idx failed")
        .unwrap();
    assert_eq!(f.severity, Severity::Critical);
    assert_eq!(index_names(&db, "items").await, before);

    // Dry-run with a ddl grant: planned, not created.
    let w_ddl = world(&db, &["read", "ddl"], "");
    let agent = w_ddl.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[("apply", "true")], true).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert!(detail(&r, "would create index items_sku_idx").contains("dry-run"));
    assert_eq!(r.actions.len(), 1, "{:#?}", r.actions);
    assert!(
        r.actions[0].statement.contains("CREATE INDEX CONCURRENTLY"),
        "{:#?}",
        r.actions
    );
    assert_eq!(index_names(&db, "items").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_makes_the_create_fail_fast_and_leaves_nothing() {
    let db = one_suggestion_database("advisor_lock").await;
    let before = index_names(&db, "items").await;
    // Another session holds a lock that conflicts with CREATE INDEX
    // CONCURRENTLY's SHARE UPDATE EXCLUSIVE.
    let mut holder = connect(&db).await;
    sqlx::raw_sql("BEGIN; LOCK TABLE items IN SHARE MODE;")
        .execute(&mut holder)
        .await
        .unwrap();

    let w = world(&db, &["read", "ddl"], r#"lock_timeout = "300ms""#);
    let agent = w.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[("apply", "true")], false).await;
    // The CREATE INDEX the run was asked to make failed: a failed action,
    // so a failed run.
    assert_eq!(r.status, RunStatus::Failed, "{}", error_of(&r));
    assert_eq!(r.error.as_ref().unwrap().kind, "action-failed");
    let failed = detail(&r, "creating index items_sku_idx failed");
    assert!(failed.contains("lock_timeout"), "{failed}");
    assert!(failed.contains("nothing was left behind"), "{failed}");
    assert_eq!(metric(&r, "created_indexes"), 0.0);
    // The lock timeout, not the 30 s statement timeout, ended it.
    assert!(failed.contains("lock timeout"), "{failed}");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    assert_eq!(index_names(&db, "items").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_approval_nothing_is_created_until_approved() {
    let db = one_suggestion_database("advisor_approval").await;
    let before = index_names(&db, "items").await;
    let w = world(&db, &["read", "ddl"], "require_approval = true").http();
    let d = Daemon::start(&w).await;
    let (code, body) = d
        .api
        .post(
            "/api/v1/runs",
            &serde_json::json!({"plugin": "index-advisor", "target": "app", "params": {"apply": "true"}}),
        )
        .await;
    assert_eq!(code, 202, "{body}");
    let plan_id = body["id"].as_str().unwrap().to_string();
    let plan = d.api.settled(&plan_id, Duration::from_secs(60)).await;
    assert_eq!(plan.status, RunStatus::AwaitingApproval, "{plan:#?}");
    assert!(plan.dry_run);
    assert_eq!(plan.actions.len(), 1, "{:#?}", plan.actions);
    assert!(plan.actions[0].statement.contains("items_sku_idx"));
    assert_eq!(
        index_names(&db, "items").await,
        before,
        "nothing before approval"
    );

    let (code, body) = d.api.approve(&plan_id, "dba").await;
    assert_eq!(code, 200, "{body}");
    let real_id = body["run"]["id"].as_str().unwrap().to_string();
    let real = d.api.settled(&real_id, Duration::from_secs(60)).await;
    assert_eq!(real.status, RunStatus::Succeeded, "{real:#?}");
    assert_eq!(metric(&real, "created_indexes"), 1.0, "{:#?}", real.report);
    assert!(index_names(&db, "items").await.contains("items_sku_idx"));
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplannable_normalized_text_falls_back_to_pg_qualstats_or_is_skipped_with_a_reason() {
    assert!(
        cluster().has_extension("pg_qualstats"),
        "the test cluster has no pg_qualstats"
    );
    let db = cluster().create_database("advisor_qualstats").await;
    let mut conn = connect(&db).await;
    sqlx::raw_sql(
        "CREATE TABLE items (id int PRIMARY KEY, sku int NOT NULL, made timestamptz NOT NULL, name text);
         INSERT INTO items SELECT g, g, now() - g * interval '1 minute', 'item ' || g
             FROM generate_series(1, 100000) g;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql("VACUUM ANALYZE items")
        .execute(&mut conn)
        .await
        .unwrap();
    pg::reset_statistics(&mut conn).await;
    // Literals through the simple protocol: pg_stat_statements stores
    // `interval $2`, which does not plan; pg_qualstats keeps a real example.
    for i in 0..20 {
        sqlx::raw_sql(&format!(
            "SELECT name FROM items WHERE sku = {i} AND made > now() - interval '1 day'"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    // Sent with another statement: pg_qualstats' example is the whole
    // string, which is no single SELECT either: skipped, with the reasons.
    for _ in 0..3 {
        sqlx::raw_sql("SELECT name FROM items WHERE made > now() - interval '2 days' ORDER BY sku LIMIT 5; SELECT 1")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();

    let w = world(&db, &["read"], "");
    let agent = w.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    let suggested = suggested(&r);
    assert!(
        suggested.iter().any(|s| s.starts_with("public.items(sku")),
        "the interval statement was planned from its example: {:#?}",
        r.report
    );
    assert_eq!(metric(&r, "statements_skipped"), 1.0, "{:#?}", r.report);
    let skipped = detail(&r, "1 statements not analysed");
    assert!(skipped.contains("interval $"), "{skipped}");
    assert!(skipped.contains("pg_qualstats example"), "{skipped}");
    assert!(skipped.contains("not one SELECT"), "{skipped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_of_excluded_roles_are_not_workload() {
    let db = one_suggestion_database("advisor_roles").await;
    let role = format!("reporting_{}", db.name);
    let mut conn = connect(&db).await;
    sqlx::raw_sql(&format!(
        r#"CREATE ROLE "{role}"; GRANT SELECT ON items TO "{role}"; SET ROLE "{role}";"#
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    for i in 0..20 {
        sqlx::query("SELECT id FROM items WHERE name = $1")
            .bind(format!("item {i}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql("RESET ROLE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let w = world(&db, &["read"], "");
    let agent = w.agent().await;
    let r = invoke(&agent, "index-advisor", "app", &[], false).await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert_eq!(
        suggested(&r),
        labels(&["public.items(name)", "public.items(sku)"]),
        "{:#?}",
        r.report
    );
    let r = invoke(
        &agent,
        "index-advisor",
        "app",
        &[("exclude_roles", &format!("nobody, {role}"))],
        false,
    )
    .await;
    assert_eq!(r.status, RunStatus::Succeeded, "{}", error_of(&r));
    assert_eq!(
        suggested(&r),
        labels(&["public.items(sku)"]),
        "{:#?}",
        r.report
    );
}
