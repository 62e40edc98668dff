//! Smoke test of the PostgreSQL harness (`warden_tests::pg`).

use std::time::Duration;

use sqlx::{Connection as _, PgConnection};
use warden_tests::pg;

#[tokio::test]
async fn databases_are_separate_and_have_the_extensions() {
    let cluster = pg::cluster();
    eprintln!("test cluster started in {:?}", cluster.started_in());
    let (a, b) = tokio::join!(
        cluster.create_database("pg harness A"),
        cluster.create_database("pg harness B"),
    );
    assert_ne!(a.name, b.name);

    for db in [&a, &b] {
        assert!(
            db.url.contains(cluster.password()),
            "the URL carries the password"
        );
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let one: i32 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
        let current: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(current, db.name);

        let extensions: Vec<String> = sqlx::query_scalar("SELECT extname::text FROM pg_extension")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for wanted in cluster.extensions() {
            assert!(extensions.contains(wanted), "{wanted} in {extensions:?}");
        }
        assert!(extensions.iter().any(|e| e == "pg_stat_statements"));

        // The library is preloaded: pg_stat_statements sees this database's queries.
        sqlx::query("SELECT count(*) FROM pg_class")
            .execute(&mut conn)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(seen > 0, "pg_stat_statements recorded nothing");
        conn.close().await.unwrap();
    }

    // The debian packages ship both; a machine set up by `cargo xtask test` has them.
    assert!(
        cluster.has_extension("hypopg"),
        "{:?}",
        cluster.extensions()
    );
    assert!(
        cluster.has_extension("pg_qualstats"),
        "{:?}",
        cluster.extensions()
    );
}

#[tokio::test]
async fn tcp_connections_need_the_password() {
    let cluster = pg::cluster();
    let db = cluster.create_database("pg_harness_auth").await;

    let without = format!(
        "postgres://postgres@127.0.0.1:{}/{}",
        cluster.port(),
        db.name
    );
    let Err(err) = PgConnection::connect(&without).await else {
        panic!("connecting without a password must fail");
    };
    assert!(!err.to_string().contains(cluster.password()));

    let wrong = format!(
        "postgres://postgres:not-the-password@127.0.0.1:{}/{}",
        cluster.port(),
        db.name
    );
    assert!(PgConnection::connect(&wrong).await.is_err());

    PgConnection::connect(&db.url)
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
}

#[tokio::test]
async fn wait_for_polls_until_true_and_panics_on_timeout() {
    let start = std::time::Instant::now();
    let mut polls = 0;
    warden_tests::wait_for("the third poll", Duration::from_secs(5), || {
        polls += 1;
        let done = polls >= 3;
        async move { done }
    })
    .await;
    assert_eq!(polls, 3);
    assert!(start.elapsed() < Duration::from_secs(1));

    let timed_out = tokio::spawn(warden_tests::wait_for(
        "something that never happens",
        Duration::from_millis(50),
        || async { false },
    ))
    .await
    .unwrap_err();
    assert!(timed_out.is_panic());
}
