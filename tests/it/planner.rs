//! The what-if planner (`warden:plugin/planner`) through a real plugin
//! (`planprobe`) on the test cluster's HypoPG: hypothetical indexes change
//! the generic plan and its cost, nothing is created, and only reads are
//! planned.

use crate::world::{World, error_of, finding, invoke, metric};
use sqlx::Connection as _;
use warden::runs::RunStatus;
use warden_tests::pg;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hypothetical_indexes_change_the_generic_plan_and_nothing_is_created() {
    assert!(
        pg::cluster().has_extension("hypopg"),
        "the test cluster has no hypopg"
    );
    let db = pg::cluster().create_database("planner").await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t AS SELECT g AS a, g % 100 AS b, md5(g::text) AS c \
         FROM generate_series(1, 100000) g; ANALYZE t;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let w = World::new()
        .fixture("planprobe")
        .pg_target("app", &db.url)
        .grant("planprobe", "app", &["read"], "");
    let agent = w.agent().await;
    let statement = "SELECT * FROM t WHERE a = $1 AND b = $2";

    let before = invoke(
        &agent,
        "planprobe",
        "app",
        &[("statement", statement)],
        false,
    )
    .await;
    assert_eq!(before.status, RunStatus::Succeeded, "{}", error_of(&before));
    assert_eq!(finding(&before, "indexes_used"), "");

    let after = invoke(
        &agent,
        "planprobe",
        "app",
        &[("statement", statement), ("indexes", "public.t(a,b)")],
        false,
    )
    .await;
    assert_eq!(after.status, RunStatus::Succeeded, "{}", error_of(&after));
    let hypothetical = finding(&after, "hypothetical");
    assert!(hypothetical.contains("btree_t_a_b"), "{hypothetical}");
    assert_eq!(finding(&after, "indexes_used"), hypothetical);
    assert!(metric(&after, "hypothetical_bytes") > 1_000_000.0);
    assert!(
        metric(&after, "total_cost") * 10.0 < metric(&before, "total_cost"),
        "{} vs {}",
        metric(&after, "total_cost"),
        metric(&before, "total_cost")
    );

    // An index on the wrong column does not help; the plan says so.
    let useless = invoke(
        &agent,
        "planprobe",
        "app",
        &[("statement", statement), ("indexes", "t(c)")],
        false,
    )
    .await;
    assert_eq!(finding(&useless, "indexes_used"), "");

    // Nothing real was created.
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM pg_indexes WHERE tablename = 't'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // Only reads; identifiers stay identifiers.
    let write = invoke(
        &agent,
        "planprobe",
        "app",
        &[("statement", "DELETE FROM t WHERE a = $1")],
        false,
    )
    .await;
    assert_ne!(write.status, RunStatus::Succeeded);
    assert!(
        error_of(&write).contains("only reads are planned")
            || error_of(&write).contains("not granted"),
        "{}",
        error_of(&write)
    );
    let hostile = invoke(
        &agent,
        "planprobe",
        "app",
        &[
            ("statement", statement),
            ("indexes", "t(a\"); DROP TABLE t; --)"),
        ],
        false,
    )
    .await;
    assert_eq!(hostile.status, RunStatus::Failed, "{}", error_of(&hostile));
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 100_000);

    // No grant, no planning.
    let w = World::new().fixture("planprobe").pg_target("app", &db.url);
    let agent = w.agent().await;
    let denied = invoke(
        &agent,
        "planprobe",
        "app",
        &[("statement", statement)],
        false,
    )
    .await;
    assert_eq!(denied.status, RunStatus::Denied);
}
