//! Helpers of the backend's own tests: a superuser connection to the test
//! database, URLs for other roles.

use semiont_jobs_store_pg::DatabaseUrl;

/// A password the tests use and check never appears in messages.
pub const SECRET: &str = "s3cret-Pa55word";

/// A connection to the test database as its (super)user.
pub async fn admin(url: &DatabaseUrl) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
}

/// The test database's URL as `user` with `password`.
pub fn with_password(url: &DatabaseUrl, user: &str, password: &str) -> DatabaseUrl {
    let (host, port) = url.host_port();
    format!(
        "postgres://{user}:{password}@{host}:{port}/{}",
        url.dbname()
    )
    .parse()
    .unwrap()
}
