//! Preferences storage against the real Postgres, each test in a fresh database.

use village_platform::AnonId;
use village_platform::native::NativeSql;
use village_platform::sql::{Sql, SqlValue};
use village_preferences::{Owner, Preferences, Theme, load, save};

async fn sql() -> NativeSql {
    let url = village_migrate::testing::fresh_database()
        .await
        .expect("test database");
    NativeSql::connect(&url).await.expect("connect")
}

async fn users(sql: &NativeSql) -> i64 {
    sql.query("SELECT count(*) AS n FROM users", &[])
        .await
        .expect("count")[0]
        .get("n")
        .expect("n")
}

#[tokio::test]
async fn a_visitor_who_never_saved_has_no_preferences_and_no_row() {
    let sql = sql().await;
    assert_eq!(
        load(&sql, Owner::Anonymous(AnonId::generate()))
            .await
            .expect("load"),
        None
    );
    assert_eq!(users(&sql).await, 0);
}

#[tokio::test]
async fn the_first_save_creates_the_anonymous_user_and_later_saves_update() {
    let sql = sql().await;
    let anon = AnonId::generate();
    let mut prefs = Preferences::default();
    save(&sql, Owner::Anonymous(anon), &prefs)
        .await
        .expect("first save");
    assert_eq!(users(&sql).await, 1);
    let row = sql
        .query_opt(
            "SELECT is_anonymous FROM users WHERE anon_id = $1",
            &[SqlValue::Uuid(anon.as_uuid())],
        )
        .await
        .expect("query")
        .expect("row");
    assert!(row.get::<bool>("is_anonymous").expect("bool"));

    prefs.settings.theme = Theme::Dark;
    prefs.layout.widgets.truncate(2);
    save(&sql, Owner::Anonymous(anon), &prefs)
        .await
        .expect("second save");
    assert_eq!(users(&sql).await, 1, "no second user row");
    assert_eq!(
        load(&sql, Owner::Anonymous(anon)).await.expect("load"),
        Some(prefs)
    );
}
