//! Opening a queue: migrations (once, concurrently, refusing a newer
//! schema), and every bad input as one clear line that never shows the
//! password: unreachable server, wrong password, missing privileges,
//! unknown database, a URL typo.

use std::net::TcpListener;

use semiont_jobs_store::JobStore;
use semiont_jobs_store_pg::testing::TestSchema;
use semiont_jobs_store_pg::{DatabaseUrl, OpenError, PgStore, SCHEMA_VERSION};

use crate::support::{admin, with_password, SECRET};

fn one_line_without_secret(e: &OpenError, secret: &str) -> String {
    let text = e.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(!text.contains(secret), "the password is shown: {text}");
    assert_eq!(text, text.trim());
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_migrate_a_fresh_schema_once() {
    let schema = TestSchema::new();
    let opens = (0..4).map(|_| {
        let (url, opts) = (schema.url().clone(), schema.options());
        tokio::spawn(async move { PgStore::open(&url, opts).await })
    });
    let mut migrations = 0;
    for open in opens {
        let store = open.await.unwrap().expect("every open succeeds");
        let m = store.migrated();
        assert_eq!(m.to, SCHEMA_VERSION);
        if m.from < m.to {
            migrations += 1;
        }
    }
    assert_eq!(migrations, 1, "exactly one open applied the migrations");
    let again = schema.open(schema.options()).await;
    assert_eq!(again.migrated().from, SCHEMA_VERSION);
    assert_eq!(again.stats().await.unwrap().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_code_is_refused() {
    let schema = TestSchema::new();
    drop(schema.open(schema.options()).await);
    let db = admin(schema.url()).await;
    db.batch_execute(&format!(
        "INSERT INTO {}.schema_migrations (version, name) VALUES ({}, 'from the future')",
        schema.name(),
        SCHEMA_VERSION + 1
    ))
    .await
    .unwrap();
    let err = PgStore::open(schema.url(), schema.options())
        .await
        .unwrap_err();
    let text = one_line_without_secret(&err, SECRET);
    assert!(matches!(err, OpenError::NewerSchema { .. }), "{err:?}");
    assert!(
        text.contains(&format!("version {}", SCHEMA_VERSION + 1)) && text.contains("upgrade"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_schema_without_migrate_names_init() {
    let schema = TestSchema::new();
    let err = PgStore::open(schema.url(), schema.options().migrate(false))
        .await
        .unwrap_err();
    let text = one_line_without_secret(&err, SECRET);
    assert!(
        matches!(err, OpenError::OutdatedSchema { found: 0, .. }),
        "{err:?}"
    );
    assert!(text.contains("semiont-jobs init"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_one_line() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url: DatabaseUrl = format!("postgres://ada:{SECRET}@127.0.0.1:{port}/db")
        .parse()
        .unwrap();
    let schema = TestSchema::new();
    let err = PgStore::open(&url, schema.options()).await.unwrap_err();
    let text = one_line_without_secret(&err, SECRET);
    assert!(matches!(err, OpenError::Unreachable { .. }), "{err:?}");
    assert!(
        text.starts_with("cannot connect to postgres://ada:***@127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("refused"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_one_line() {
    let schema = TestSchema::new();
    let url = with_password(schema.url(), "postgres", SECRET);
    let err = PgStore::open(&url, schema.options())
        .await
        .expect_err("the test server must check passwords (cargo xtask ci starts one that does)");
    let text = one_line_without_secret(&err, SECRET);
    assert!(matches!(err, OpenError::Auth { .. }), "{err:?}");
    assert!(text.contains("password authentication failed"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_cannot_create_the_schema_is_one_line() {
    let schema = TestSchema::new();
    let role = format!("r_{}", schema.name());
    let db = admin(schema.url()).await;
    db.batch_execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'; \
         GRANT CONNECT ON DATABASE {} TO {role}",
        schema.url().dbname()
    ))
    .await
    .unwrap();
    let url = with_password(schema.url(), &role, SECRET);
    let err = PgStore::open(&url, schema.options()).await.unwrap_err();
    let text = one_line_without_secret(&err, SECRET);
    assert!(matches!(err, OpenError::PermissionDenied { .. }), "{err:?}");
    assert!(text.contains("permission denied"), "{text}");
    db.batch_execute(&format!(
        "REVOKE CONNECT ON DATABASE {} FROM {role}; DROP ROLE {role}",
        schema.url().dbname()
    ))
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_database_is_one_line() {
    let schema = TestSchema::new();
    let mut raw = schema.url().expose().to_owned();
    let db = schema.url().dbname().to_owned();
    raw.truncate(raw.rfind(&db).unwrap());
    raw.push_str("no_such_db_here");
    let url: DatabaseUrl = raw.parse().unwrap();
    let err = PgStore::open(&url, schema.options()).await.unwrap_err();
    let text = one_line_without_secret(&err, schema.url().password().unwrap_or(SECRET));
    assert!(matches!(err, OpenError::NoDatabase { .. }), "{err:?}");
    assert!(text.contains("no_such_db_here"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_typos_are_one_line() {
    for typo in [
        format!("postgress://ada:{SECRET}@127.0.0.1/db"),
        format!("postgres://ada:{SECRET}@127.0.0.1:54x2/db"),
        format!("postgres//ada:{SECRET}@127.0.0.1/db"),
    ] {
        let err = typo.parse::<DatabaseUrl>().unwrap_err();
        let text = one_line_without_secret(&err, SECRET);
        assert!(text.starts_with("invalid database url "), "{text}");
    }
}
