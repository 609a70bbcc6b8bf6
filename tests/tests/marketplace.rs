//! The marketplace end to end: the real `marketplace` component in the
//! runtime, the real gazetteer (migration V21), a real S3 server (`s3s-fs`,
//! which checks signatures), a local Mailgun, the real lifecycle cron and
//! job worker, and the pages in headless Chromium.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{Value, json};
use village_e2e::s3::S3Server;
use village_e2e::stub::providers;
use village_e2e::{TestApp, spawn_app_with};

struct Market {
    app: TestApp,
    s3: S3Server,
    mail: village_e2e::stub::StubServer,
    /// A signed-in seller's cookie, and id.
    seller: String,
    seller_id: uuid::Uuid,
}

async fn market() -> Market {
    let s3 = S3Server::start().await;
    let mail = providers::mailgun(Arc::new(AtomicBool::new(false))).await;
    let vars: Vec<(&str, String)> = s3
        .variables()
        .into_iter()
        .chain([
            ("mailgun_base_url", mail.url()),
            ("mailgun_domain", providers::MAILGUN_DOMAIN.to_owned()),
            ("mailgun_api_key", providers::MAILGUN_KEY.to_owned()),
            ("public_base_url", "https://village.test".to_owned()),
        ])
        .collect();
    let app = spawn_app_with(|o| {
        for (k, v) in vars {
            o.variables.insert(k.into(), v);
        }
    })
    .await;
    let (seller_id, seller) = app.signed_in_as(&[]).await;
    app.execute(&format!(
        "UPDATE users SET email = 'seller@example.com', display_name = 'Sam Seller' WHERE id = '{seller_id}'"
    ))
    .await;
    Market {
        app,
        s3,
        mail,
        seller,
        seller_id,
    }
}

impl Market {
    async fn post(&self, path: &str, body: Value, cookie: Option<&str>) -> reqwest::Response {
        let mut req = self
            .app
            .client
            .post(self.app.url(path))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send().await.expect("POST answered")
    }

    /// A published listing at `place` (a city id or a point); returns its id.
    async fn listing(&self, title: &str, place: Value, category: &str, price: Option<i64>) -> i64 {
        let mut body = json!({
            "title": title,
            "body": format!("**{title}** in good shape."),
            "category": category,
            "contact_method": "email",
            "contact_value": "seller@example.com",
            "price_cents": price,
        });
        for (k, v) in place.as_object().expect("place object") {
            body[k] = v.clone();
        }
        let r = self
            .post("/api/marketplace/listings", body, Some(&self.seller))
            .await;
        let status = r.status();
        let created: Value = r.json().await.expect("json");
        assert_eq!(status, 201, "{created}");
        let id = created["listing"]["id"].as_i64().expect("id");
        let r = self
            .post(
                &format!("/api/marketplace/listings/{id}/publish"),
                json!({}),
                Some(&self.seller),
            )
            .await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        id
    }

    async fn city(&self, q: &str) -> i64 {
        let places: Value = self
            .app
            .get(&format!("/api/places?q={}", urlencode(q)), None)
            .await
            .json()
            .await
            .expect("json");
        places["places"][0]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no place for {q}: {places}"))
    }

    async fn search(&self, query: &str) -> (u16, Value) {
        let r = self
            .app
            .get(&format!("/api/marketplace/listings?{query}"), None)
            .await;
        let status = r.status().as_u16();
        (status, r.json().await.expect("json"))
    }

    async fn stop(self) {
        self.app.stop().await;
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn fields(problem: &Value) -> Vec<String> {
    let mut f: Vec<String> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("a problem with field errors: {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect();
    f.sort();
    f
}

fn ids(page: &Value) -> Vec<i64> {
    page["listings"]
        .as_array()
        .expect("listings")
        .iter()
        .map(|l| l["id"].as_i64().expect("id"))
        .collect()
}

#[tokio::test]
async fn places_are_found_by_name_prefix_most_populous_first() {
    let m = market().await;
    let r: Value = m
        .app
        .get("/api/places?q=portl", None)
        .await
        .json()
        .await
        .expect("json");
    let first = &r["places"][0];
    assert_eq!(first["label"], "Portland, OR", "{r}");
    assert_eq!(r["places"][1]["label"], "Portland, ME", "{r}");
    let narrowed: Value = m
        .app
        .get("/api/places?q=Portland%2C%20m", None)
        .await
        .json()
        .await
        .expect("json");
    assert!(
        narrowed["places"]
            .as_array()
            .expect("places")
            .iter()
            .all(|p| p["admin_code"].as_str().is_some_and(|a| a.starts_with('M'))),
        "{narrowed}"
    );
    // Wildcards in the prefix are literal.
    let none: Value = m
        .app
        .get("/api/places?q=%25", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(none["places"], json!([]), "{none}");
    let towns = m
        .app
        .count("SELECT count(*) FROM geo_cities WHERE country = 'US' AND population >= 1000")
        .await;
    assert!(towns > 16_000, "every US place over 1,000 people: {towns}");
    m.stop().await;
}

#[tokio::test]
async fn distances_between_known_cities_are_right_and_the_radius_is_honoured() {
    let m = market().await;
    let portland = m.city("Portland, OR").await;
    let seattle = m.city("Seattle, WA").await;
    let spokane = m.city("Spokane, WA").await;
    let eugene = m.city("Eugene, OR").await;
    let in_seattle = m
        .listing(
            "Kayak",
            json!({ "city_id": seattle }),
            "sporting-goods",
            Some(40_000),
        )
        .await;
    let in_spokane = m
        .listing(
            "Canoe",
            json!({ "city_id": spokane }),
            "sporting-goods",
            Some(30_000),
        )
        .await;
    let in_eugene = m
        .listing(
            "Paddle",
            json!({ "city_id": eugene }),
            "sporting-goods",
            Some(2_000),
        )
        .await;

    let (status, page) = m.search(&format!("city_id={portland}&radius=250")).await;
    assert_eq!(status, 200, "{page}");
    // Nearest first; Spokane (≈ 279 miles as the crow flies) is outside.
    assert_eq!(ids(&page), vec![in_eugene, in_seattle], "{page}");
    let miles = |i: usize| page["listings"][i]["miles"].as_f64().expect("miles");
    // Portland–Eugene ≈ 106 mi, Portland–Seattle ≈ 145 mi (great-circle).
    assert!((miles(0) - 106.0).abs() < 3.0, "Eugene at {}", miles(0));
    assert!((miles(1) - 145.0).abs() < 3.0, "Seattle at {}", miles(1));
    let (_, wide) = m.search(&format!("city_id={seattle}&radius=250")).await;
    assert!(
        ids(&wide).contains(&in_spokane),
        "Spokane is ≈ 228 mi from Seattle: {wide}"
    );

    // The edge: a listing d miles away is found at radius ⌈d⌉, not ⌊d⌋.
    let d = miles(0);
    let (_, inside) = m
        .search(&format!("city_id={portland}&radius={}", d.ceil()))
        .await;
    assert!(ids(&inside).contains(&in_eugene), "{inside}");
    let (_, outside) = m
        .search(&format!("city_id={portland}&radius={}", d.floor()))
        .await;
    assert!(!ids(&outside).contains(&in_eugene), "{outside}");

    // Keywords, categories and prices filter; price sorts.
    let (_, kw) = m
        .search(&format!("city_id={seattle}&radius=250&q=canoe"))
        .await;
    assert_eq!(ids(&kw), vec![in_spokane], "{kw}");
    assert_eq!(kw["sort"], "distance", "nearest first unless asked");
    // Ranked on request: a title match above a body-only match.
    let (_, ranked) = m
        .search(&format!(
            "city_id={seattle}&radius=250&q=shape&sort=relevance"
        ))
        .await;
    assert_eq!(ranked["sort"], "relevance");
    assert_eq!(
        ids(&ranked).len(),
        3,
        "every body says “good shape”: {ranked}"
    );
    let (_, titled) = m
        .search(&format!(
            "city_id={seattle}&radius=250&q=kayak%20OR%20shape&sort=relevance"
        ))
        .await;
    assert_eq!(
        ids(&titled)[0],
        in_seattle,
        "the title match ranks first: {titled}"
    );
    let (_, cheap) = m
        .search(&format!("city_id={portland}&radius=250&max_price=100"))
        .await;
    assert_eq!(ids(&cheap), vec![in_eugene], "{cheap}");
    let (_, by_price) = m
        .search(&format!("city_id={seattle}&radius=250&sort=price_high"))
        .await;
    assert_eq!(
        ids(&by_price),
        vec![in_seattle, in_spokane, in_eugene],
        "{by_price}"
    );
    let (_, housing) = m
        .search(&format!("city_id={seattle}&radius=250&category=housing"))
        .await;
    assert_eq!(ids(&housing), Vec::<i64>::new(), "{housing}");
    let (_, for_sale) = m
        .search(&format!("city_id={seattle}&radius=250&category=for-sale"))
        .await;
    assert_eq!(
        ids(&for_sale).len(),
        3,
        "the category's subtree: {for_sale}"
    );
    m.stop().await;
}

#[tokio::test]
async fn pages_of_results_stay_stable_while_listings_are_published() {
    let m = market().await;
    let boise = m.city("Boise, ID").await;
    let mut published = Vec::new();
    // Six, and one more per page read: within the 10-an-hour posting limit.
    for i in 0..6 {
        published.push(
            m.listing(
                &format!("Chair {i}"),
                json!({ "city_id": boise }),
                "furniture",
                Some(1_000 + i),
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut query = format!("city_id={boise}&radius=10&sort=newest&limit=3");
    loop {
        let (status, page) = m.search(&query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page));
        // Someone publishes while we read: it must not shift our pages.
        m.listing("Late chair", json!({ "city_id": boise }), "furniture", None)
            .await;
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("city_id={boise}&radius=10&sort=newest&limit=3&cursor={c}"),
            None => break,
        }
    }
    published.reverse();
    assert_eq!(seen, published, "every listing once, newest first");
    // Price low to high, each once.
    let mut by_price = Vec::new();
    let cheap = format!("city_id={boise}&radius=10&sort=price_low&limit=2&max_price=100");
    let mut query = cheap.clone();
    loop {
        let (_, page) = m.search(&query).await;
        by_price.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("{cheap}&cursor={c}"),
            None => break,
        }
    }
    published.reverse();
    assert_eq!(by_price, published, "price low to high, each once");
    // Nearest first, from a point off the town: every listing placed at the
    // town ties on its (float) distance, and the cursor still lands exactly.
    let mut by_distance = Vec::new();
    let near = "lat=43.6&lon=-116.25&radius=25&sort=distance&limit=2";
    let mut query = near.to_owned();
    loop {
        let (status, page) = m.search(&query).await;
        assert_eq!(status, 200, "{page}");
        by_distance.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("{near}&cursor={c}"),
            None => break,
        }
    }
    let mut unique = by_distance.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        by_distance.len(),
        "none twice: {by_distance:?}"
    );
    let tied: Vec<i64> = by_distance
        .iter()
        .copied()
        .filter(|id| published.contains(id))
        .collect();
    assert_eq!(
        tied, published,
        "none skipped, ties broken by id: {by_distance:?}"
    );
    m.stop().await;
}

#[tokio::test]
async fn every_bad_search_parameter_is_named() {
    let m = market().await;
    let (status, problem) = m
        .search("radius=900&lat=95&lon=10&category=spaceships&min_price=ten&max_price=-1&sort=sideways&cursor=nope&limit=500")
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(
        fields(&problem),
        [
            "category",
            "cursor",
            "lat",
            "limit",
            "max_price",
            "min_price",
            "radius",
            "sort"
        ]
    );
    let (status, problem) = m.search("radius=10").await;
    assert_eq!((status, fields(&problem)), (400, vec!["near".to_owned()]));
    let (status, problem) = m.search("near=Springfield").await;
    assert_eq!(status, 400);
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .is_some_and(|t| t.contains("Springfield, ")),
        "{problem}"
    );
    let (status, problem) = m.search("lat=45").await;
    assert_eq!((status, fields(&problem)), (400, vec!["lon".to_owned()]));
    let (status, problem) = m.search("near=Boise%2C+ID&sort=relevance").await;
    assert_eq!((status, fields(&problem)), (400, vec!["sort".to_owned()]));

    // The page shows the form again, with a message by each field.
    let r = m
        .app
        .get("/marketplace?near=Boise%2C+ID&radius=0&min_price=abc", None)
        .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    assert!(html.contains(r#"data-field="radius""#), "{html}");
    assert!(html.contains(r#"data-field="min_price""#), "{html}");
    assert!(
        html.contains(r#"value="Boise, ID""#),
        "what was typed stays: {html}"
    );
    m.stop().await;
}

#[tokio::test]
async fn listings_are_checked_sanitised_and_only_their_seller_changes_them() {
    let m = market().await;
    // Anonymous visitors do not post.
    let r = m
        .post("/api/marketplace/listings", json!({"title": "x"}), None)
        .await;
    assert_eq!(r.status(), 401);
    // Every field wrong at once: each one named.
    let r = m
        .post(
            "/api/marketplace/listings",
            json!({"title": "", "body": "", "price_cents": -5, "category": "nope",
                   "lat": 120.0, "lon": 0.0, "contact_method": "email", "contact_value": "not-an-email"}),
            Some(&m.seller),
        )
        .await;
    assert_eq!(r.status(), 400);
    let problem: Value = r.json().await.expect("json");
    assert_eq!(
        fields(&problem),
        [
            "body",
            "category",
            "contact_value",
            "lat",
            "price_cents",
            "title"
        ]
    );
    assert_eq!(
        m.app
            .count("SELECT count(*) FROM marketplace_listings")
            .await,
        0,
        "nothing kept"
    );

    let boise = m.city("Boise, ID").await;
    let r = m
        .post(
            "/api/marketplace/listings",
            json!({"title": "Lamp", "category": "furniture", "city_id": boise,
                   "contact_method": "phone", "contact_value": "+1 208 555 0100",
                   "body": "Works. <script>alert(1)</script><img src=x onerror=alert(2)> [me](javascript:alert(3)) [shop](https://shop.example/lamp) <svg onload=alert(4)></svg>"}),
            Some(&m.seller),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.expect("json");
    let listing = &created["listing"];
    let html = listing["body_html"].as_str().expect("html");
    for bad in ["<script", "onerror", "javascript:", "<svg", "alert", "<img"] {
        assert!(!html.contains(bad), "{bad} in {html}");
    }
    assert!(
        html.contains(r#"href="https://shop.example/lamp" rel="nofollow ugc""#),
        "{html}"
    );
    assert_eq!(listing["status"], "draft");
    let id = listing["id"].as_i64().expect("id");

    // A draft is its seller's alone.
    let (_, other) = m.app.signed_in_as(&[]).await;
    assert_eq!(
        m.app
            .get(&format!("/api/marketplace/listings/{id}"), Some(&other))
            .await
            .status(),
        404
    );
    assert_eq!(
        m.app
            .get(&format!("/api/marketplace/listings/{id}"), None)
            .await
            .status(),
        404
    );
    m.post(
        &format!("/api/marketplace/listings/{id}/publish"),
        json!({}),
        Some(&m.seller),
    )
    .await;
    // Published: everyone reads it; the contact only signed in.
    let public: Value = m
        .app
        .get(&format!("/api/marketplace/listings/{id}"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(public["listing"]["status"], "active");
    assert!(public["listing"].get("contact").is_none(), "{public}");
    let r = m
        .app
        .put_json(
            &format!("/api/marketplace/listings/{id}"),
            json!({"title": "Mine now"}).to_string(),
            Some(&other),
        )
        .await;
    assert_eq!(r.status(), 403);
    let r = m
        .post(
            &format!("/api/marketplace/listings/{id}/sold"),
            json!({}),
            Some(&other),
        )
        .await;
    assert_eq!(r.status(), 403);

    // A paid category keeps the draft and says why it cannot publish yet.
    let r = m
        .post(
            "/api/marketplace/listings",
            json!({"title": "Sedan", "body": "Runs", "category": "vehicles", "city_id": boise,
                   "contact_method": "email", "contact_value": "seller@example.com"}),
            Some(&m.seller),
        )
        .await;
    let car: Value = r.json().await.expect("json");
    let car_id = car["listing"]["id"].as_i64().expect("id");
    let r = m
        .post(
            &format!("/api/marketplace/listings/{car_id}/publish"),
            json!({}),
            Some(&m.seller),
        )
        .await;
    assert_eq!(r.status(), 409);
    let why: Value = r.json().await.expect("json");
    assert!(
        why["detail"]
            .as_str()
            .is_some_and(|d| d.contains("paid category")),
        "{why}"
    );
    assert_eq!(
        m.app
            .count(&format!(
                "SELECT count(*) FROM marketplace_listings WHERE id = {car_id} AND status = 'draft'"
            ))
            .await,
        1
    );
    // Nor can a published listing move into a paid category.
    let r = m
        .app
        .put_json(
            &format!("/api/marketplace/listings/{id}"),
            json!({"title": "Lamp", "body": "Works", "category": "vehicles", "city_id": boise,
                   "contact_method": "phone", "contact_value": "+1 208 555 0100"})
            .to_string(),
            Some(&m.seller),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(fields(&r.json().await.expect("json")), ["category"]);

    // A moderator's removal is audited; a plain user's is refused.
    let r = m
        .post(
            &format!("/api/marketplace/listings/{id}/remove"),
            json!({"reason": "spam"}),
            Some(&other),
        )
        .await;
    assert_eq!(r.status(), 403);
    let (moderator_id, moderator) = m.app.signed_in_as(&["support"]).await;
    let r = m
        .post(
            &format!("/api/marketplace/listings/{id}/remove"),
            json!({"reason": "duplicate post"}),
            Some(&moderator),
        )
        .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap_or_default());
    assert_eq!(
        m.app.count(&format!(
            "SELECT count(*) FROM audit_log WHERE action = 'listing.remove' AND target_id = '{id}' \
             AND actor_user_id = '{moderator_id}' AND reason = 'duplicate post'"
        )).await,
        1
    );
    assert_eq!(
        m.app
            .get(&format!("/api/marketplace/listings/{id}"), None)
            .await
            .status(),
        404
    );
    let _ = m.seller_id;
    m.stop().await;
}

#[tokio::test]
async fn images_upload_straight_to_storage_and_attach_only_once_confirmed() {
    let m = market().await;
    let boise = m.city("Boise, ID").await;
    let r = m
        .post(
            "/api/marketplace/listings",
            json!({"title": "Bike", "body": "Blue", "category": "sporting-goods", "city_id": boise,
                   "contact_method": "email", "contact_value": "seller@example.com"}),
            Some(&m.seller),
        )
        .await;
    let id = r.json::<Value>().await.expect("json")["listing"]["id"]
        .as_i64()
        .expect("id");
    let images = format!("/api/marketplace/listings/{id}/images");

    // Only JPEG, PNG, WebP up to 8 MiB.
    let r = m
        .post(
            &images,
            json!({"content_type": "image/svg+xml", "byte_size": 9_000_000}),
            Some(&m.seller),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        fields(&r.json().await.expect("json")),
        ["byte_size", "content_type"]
    );

    // Twelve at most, however many ask at once; removing one frees a slot.
    let ask = || {
        m.post(
            &images,
            json!({"content_type": "image/jpeg", "byte_size": 10}),
            Some(&m.seller),
        )
    };
    let answers: Vec<u16> = futures::future::join_all((0..14).map(|_| ask()))
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        answers.iter().filter(|s| **s == 201).count(),
        12,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 409).count(),
        2,
        "{answers:?}"
    );
    let last = m
        .app
        .count(&format!(
            "SELECT max(id) FROM marketplace_listing_images WHERE listing_id = {id}"
        ))
        .await;
    let r = m
        .app
        .client
        .delete(m.app.url(&format!("{images}/{last}")))
        .header("cookie", &m.seller)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 204);
    assert_eq!(ask().await.status(), 201, "the freed slot");
    assert_eq!(ask().await.status(), 409);
    // Back to none (abandoned uploads are the lifecycle job's; see below).
    m.app
        .execute(&format!(
            "DELETE FROM marketplace_listing_images WHERE listing_id = {id}"
        ))
        .await;
    m.app
        .execute(&format!(
            "UPDATE marketplace_listings SET image_slots = 0 WHERE id = {id}"
        ))
        .await;
    m.app
        .execute("DELETE FROM marketplace_image_deletions")
        .await;

    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n-a-small-picture".to_vec();
    let r = m
        .post(
            &images,
            json!({"content_type": "image/png", "byte_size": png.len()}),
            Some(&m.seller),
        )
        .await;
    assert_eq!(r.status(), 201);
    let upload: Value = r.json().await.expect("json");
    let url = upload["upload_url"].as_str().expect("url").to_owned();
    let image_id = upload["image_id"].as_i64().expect("id");
    let key = upload["key"].as_str().expect("key").to_owned();
    let plain = reqwest::Client::new();

    // Not uploaded yet: confirming attaches nothing.
    let confirm = format!("{images}/{image_id}/confirm");
    let r = m.post(&confirm, json!({}), Some(&m.seller)).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        m.app
            .count("SELECT count(*) FROM marketplace_listing_images WHERE status = 'attached'")
            .await,
        0
    );

    // Storage itself refuses another type, another length, a tampered signature.
    let put = |ct: &str, body: Vec<u8>, url: String| {
        plain
            .put(url)
            .header("content-type", ct.to_owned())
            .body(body)
            .send()
    };
    let refused = async |r: reqwest::Response| {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(status == 403 || status == 400, "{status} {body}");
        body
    };
    let body = refused(
        put("image/jpeg", png.clone(), url.clone())
            .await
            .expect("PUT"),
    )
    .await;
    assert!(
        body.contains("SignatureDoesNotMatch"),
        "another type: {body}"
    );
    let body = refused(
        put(
            "image/png",
            [png.clone(), b"more".to_vec()].concat(),
            url.clone(),
        )
        .await
        .expect("PUT"),
    )
    .await;
    assert!(
        body.contains("SignatureDoesNotMatch"),
        "another length: {body}"
    );
    // One hex digit of the signature changed.
    let (head, signature) = url.split_once("X-Amz-Signature=").expect("a signed URL");
    let (first, rest) = signature.split_at(1);
    let tampered = format!(
        "{head}X-Amz-Signature={}{rest}",
        if first == "0" { "1" } else { "0" }
    );
    let body = refused(put("image/png", png.clone(), tampered).await.expect("PUT")).await;
    assert!(
        body.contains("SignatureDoesNotMatch"),
        "a tampered signature: {body}"
    );
    assert!(!m.s3.has(&key));

    // The announced file goes through, and confirming attaches it.
    assert_eq!(
        put("image/png", png.clone(), url.clone())
            .await
            .expect("PUT")
            .status(),
        200
    );
    assert!(m.s3.has(&key));
    let r = m.post(&confirm, json!({}), Some(&m.seller)).await;
    assert_eq!(r.status(), 200);
    let listing: Value = r.json().await.expect("json");
    let image = &listing["listing"]["images"][0];
    assert_eq!(image["status"], "attached", "{listing}");
    // A draft's image: a presigned GET that works for 24 hours.
    let private = image["url"].as_str().expect("url");
    assert!(private.contains("X-Amz-Expires=86400"), "{private}");
    assert_eq!(
        plain
            .get(private)
            .send()
            .await
            .expect("GET")
            .bytes()
            .await
            .expect("bytes")
            .to_vec(),
        png
    );
    assert_eq!(
        m.app
            .get(&format!("/marketplace/images/{key}"), None)
            .await
            .status(),
        404,
        "not public while a draft"
    );

    // Published: a stable, cacheable address served by the function.
    m.post(
        &format!("/api/marketplace/listings/{id}/publish"),
        json!({}),
        Some(&m.seller),
    )
    .await;
    let r = m.app.get(&format!("/marketplace/images/{key}"), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["cache-control"], "public, max-age=3600");
    assert_eq!(r.bytes().await.expect("bytes").to_vec(), png);

    // Withdrawn: the image row goes and the lifecycle job deletes the object.
    let r = m
        .app
        .client
        .delete(m.app.url(&format!("/api/marketplace/listings/{id}")))
        .header("cookie", &m.seller)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status(), 204);
    assert_eq!(
        m.app
            .count("SELECT count(*) FROM marketplace_image_deletions")
            .await,
        1
    );
    run_lifecycle(&m).await;
    assert!(!m.s3.has(&key), "the object is deleted");
    assert_eq!(
        m.app
            .count("SELECT count(*) FROM marketplace_image_deletions")
            .await,
        0
    );
    m.stop().await;
}

#[tokio::test]
async fn presigned_upload_urls_expire_after_fifteen_minutes() {
    // The same signing code the component runs, against the real server,
    // with the clock set back: storage refuses the stale URL.
    let s3 = S3Server::start().await;
    let http = village_platform::native::NativeHttp::new(Duration::from_secs(5));
    let store = village_platform::objects::S3Store::new(&s3.config(), &http).expect("store");
    let life = village_platform::objects::UPLOAD_URL_LIFE;
    let client = reqwest::Client::new();
    let body = b"0123456789".to_vec();
    let stale = store.presign_put(
        "listings/1/old.png",
        "image/png",
        10,
        life,
        chrono::Utc::now() - chrono::Duration::minutes(16),
    );
    let r = client
        .put(stale)
        .header("content-type", "image/png")
        .body(body.clone())
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), 403, "an expired upload URL is refused");
    let fresh = store.presign_put(
        "listings/1/new.png",
        "image/png",
        10,
        life,
        chrono::Utc::now() - chrono::Duration::minutes(14),
    );
    let r = client
        .put(fresh)
        .header("content-type", "image/png")
        .body(body)
        .send()
        .await
        .expect("PUT");
    assert_eq!(r.status(), 200, "a 14-minute-old one still works");
    let info = store
        .head("listings/1/new.png", chrono::Utc::now())
        .await
        .expect("HEAD");
    assert_eq!(info.map(|i| i.size), Some(10));
    assert_eq!(
        store
            .head("listings/1/old.png", chrono::Utc::now())
            .await
            .expect("HEAD"),
        None
    );
}

/// Fires the daily cron and waits for its job to finish.
async fn run_lifecycle(m: &Market) {
    let before = m
        .app
        .count("SELECT count(*) FROM marketplace_lifecycle_runs")
        .await;
    m.app
        .execute("DELETE FROM delayed_jobs WHERE handler = 'marketplace.lifecycle'")
        .await;
    m.app.fire_cron("marketplace-lifecycle").await;
    for _ in 0..150 {
        if m.app
            .count("SELECT count(*) FROM marketplace_lifecycle_runs")
            .await
            > before
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the lifecycle job did not run within 30 s");
}

#[tokio::test]
async fn the_daily_lifecycle_reminds_expires_archives_and_purges() {
    let m = market().await;
    let boise = m.city("Boise, ID").await;
    let soon = m
        .listing("Expiring soon", json!({ "city_id": boise }), "tools", None)
        .await;
    let past = m
        .listing("Past its term", json!({ "city_id": boise }), "tools", None)
        .await;
    let old = m
        .listing("Ended long ago", json!({ "city_id": boise }), "tools", None)
        .await;
    let ancient = m
        .listing(
            "Archived long ago",
            json!({ "city_id": boise }),
            "tools",
            None,
        )
        .await;
    let fresh = m
        .listing("Just posted", json!({ "city_id": boise }), "tools", None)
        .await;
    m.app.execute(&format!("UPDATE marketplace_listings SET expires_at = now() + interval '2 days' WHERE id = {soon}")).await;
    m.app.execute(&format!("UPDATE marketplace_listings SET expires_at = now() - interval '1 hour' WHERE id = {past}")).await;
    m.app.execute(&format!(
        "UPDATE marketplace_listings SET status = 'expired', ended_at = now() - interval '31 days' WHERE id = {old}"
    )).await;
    m.app.execute(&format!(
        "INSERT INTO marketplace_listing_images (listing_id, key, content_type, byte_size, status) \
         VALUES ({old}, 'listings/{old}/a.png', 'image/png', 5, 'attached')"
    )).await;
    m.app.execute(&format!(
        "UPDATE marketplace_listings SET status = 'expired', ended_at = now() - interval '500 days', \
         archived_at = now() - interval '370 days' WHERE id = {ancient}"
    )).await;

    // An upload never confirmed, two hours ago: dropped, its slot freed.
    m.app
        .execute(&format!(
            "INSERT INTO marketplace_listing_images (listing_id, key, content_type, byte_size, created_at) \
             VALUES ({fresh}, 'listings/{fresh}/gone.png', 'image/png', 5, now() - interval '2 hours')"
        ))
        .await;
    m.app
        .execute(&format!(
            "UPDATE marketplace_listings SET image_slots = 1 WHERE id = {fresh}"
        ))
        .await;

    run_lifecycle(&m).await;

    let status = async |id: i64| {
        let (client, conn) = tokio_postgres::connect(&m.app.db_url, tokio_postgres::NoTls)
            .await
            .expect("db");
        tokio::spawn(conn);
        client
            .query_opt(
                "SELECT status, archived_at IS NOT NULL FROM marketplace_listings WHERE id = $1",
                &[&id],
            )
            .await
            .expect("query")
            .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
    };
    assert_eq!(status(soon).await, Some(("active".into(), false)));
    assert_eq!(status(past).await, Some(("expired".into(), false)));
    assert_eq!(
        status(old).await,
        Some(("expired".into(), true)),
        "archived, metadata kept"
    );
    assert_eq!(status(ancient).await, None, "purged a year after archiving");
    assert_eq!(status(fresh).await, Some(("active".into(), false)));
    assert_eq!(
        m.app
            .count(&format!(
                "SELECT count(*) FROM marketplace_listing_images WHERE listing_id = {old}"
            ))
            .await,
        0
    );

    // One reminder, to the seller, about the listing expiring in 2 days.
    let sent = m.mail.requests_to("/v3/");
    assert_eq!(sent.len(), 1, "one reminder");
    let form = providers::form(&sent[0]);
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("to"), "seller@example.com");
    assert!(field("subject").contains("Expiring soon"), "{form:?}");
    assert!(
        field("text").contains("https://village.test/marketplace/mine"),
        "{form:?}"
    );

    let counts: Value = {
        let (client, conn) = tokio_postgres::connect(&m.app.db_url, tokio_postgres::NoTls)
            .await
            .expect("db");
        tokio::spawn(conn);
        client
            .query_one(
                "SELECT counts FROM marketplace_lifecycle_runs ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .expect("run")
            .get(0)
    };
    assert_eq!(counts["reminded"], 1, "{counts}");
    assert_eq!(counts["expired"], 1, "{counts}");
    assert_eq!(counts["archived"], 1, "{counts}");
    assert_eq!(counts["abandoned_uploads"], 1, "{counts}");
    assert_eq!(
        m.app
            .count(&format!(
                "SELECT image_slots::bigint FROM marketplace_listings WHERE id = {fresh}"
            ))
            .await,
        0
    );
    assert_eq!(counts["purged"], 1, "{counts}");

    // A second run the same day changes nothing and sends nothing more.
    run_lifecycle(&m).await;
    assert_eq!(m.mail.requests_to("/v3/").len(), 1, "no second reminder");
    m.stop().await;
}

#[tokio::test]
async fn the_pages_work_without_javascript_and_render_in_chromium() {
    let m = market().await;
    let boise = m.city("Boise, ID").await;
    let id = m
        .listing(
            "Oak table",
            json!({ "city_id": boise }),
            "furniture",
            Some(12_500),
        )
        .await;

    // Posting through the form: bad input is shown again with messages.
    let form = |body: &str| {
        m.app
            .client
            .post(m.app.url("/marketplace/new"))
            .header("cookie", &m.seller)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned())
            .send()
    };
    let r = form("title=&body=Nice&price=12.345&category=furniture&place=Nowhere+Town%2C+ZZ&contact_method=email&contact_value=a%40b.co").await.expect("POST");
    assert_eq!(r.status(), 400);
    let html = r.text().await.expect("html");
    for f in ["title", "price", "place"] {
        assert!(
            html.contains(&format!(r#"data-field="{f}""#)),
            "{f}: {html}"
        );
    }
    assert!(html.contains(">Nice</textarea>"), "typed text kept");
    let r = form("title=Desk&body=Sturdy&price=40&category=furniture&place=Boise%2C+ID&contact_method=email&contact_value=a%40b.co").await.expect("POST");
    assert_eq!(r.status(), 303);
    let edit = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(edit.ends_with("/edit"), "{edit}");
    let edit_page = m
        .app
        .get(&edit, Some(&m.seller))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        edit_page.contains("data-upload-listing"),
        "the upload control"
    );
    let mine = m
        .app
        .get("/marketplace/mine", Some(&m.seller))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        mine.contains("Desk") && mine.contains("Oak table"),
        "{mine}"
    );

    // Search results and the listing, as Chromium renders them.
    let search = "/marketplace?near=Boise%2C+ID&radius=25";
    let dom = village_e2e::chromium_dom(&m.app.url(search)).await;
    assert!(
        dom.contains("Oak table") && dom.contains("$125.00"),
        "{dom}"
    );
    assert!(dom.contains(" mi</span>"), "distance shown: {dom}");
    let dom = village_e2e::chromium_dom(&m.app.url(&format!("/marketplace/listings/{id}"))).await;
    assert!(
        dom.contains("<strong>Oak table</strong>"),
        "the Markdown body: {dom}"
    );
    assert!(
        dom.contains("Sign in to see how to reach the seller"),
        "{dom}"
    );

    // The homepage widget shows the newest listings; a visitor picks its town.
    let home = m.app.get("/", None).await.text().await.expect("html");
    assert!(home.contains("Oak table"), "{home}");
    let pick = |near: &str| {
        m.app
            .client
            .post(m.app.url("/marketplace/widget"))
            .header("cookie", &m.seller)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("near={}", urlencode(near)))
            .send()
    };
    let r = pick("Nowhere Town, ZZ").await.expect("POST");
    assert_eq!(r.status(), 400, "a readable page naming the problem");
    let r = pick("Boise, ID").await.expect("POST");
    assert_eq!(r.status(), 303);
    let home = m
        .app
        .get("/", Some(&m.seller))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        home.contains("Newest within 25 miles of Boise, ID"),
        "{home}"
    );
    assert!(home.contains("Oak table"), "{home}");
    m.stop().await;
}

#[tokio::test]
async fn browsers_upload_through_the_development_cors_proxy() {
    // s3s-fs answers no CORS; `village-s3-cors` (scripts/run) stands in front
    // of it on the address URLs are signed for, as R2's CORS rules would.
    let s3 = S3Server::start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = listener.local_addr().expect("addr");
    let origins = Arc::new(vec!["http://app.test".to_owned()]);
    let serving = tokio::spawn(village_s3_cors::serve(listener, s3.addr, origins));
    let mut config = s3.config();
    config.endpoint = format!("http://{proxy}");
    let http = village_platform::native::NativeHttp::new(Duration::from_secs(5));
    let store = village_platform::objects::S3Store::new(&config, &http).expect("store");
    let url = store.presign_put(
        "listings/9/a.webp",
        "image/webp",
        4,
        Duration::from_secs(900),
        chrono::Utc::now(),
    );
    let client = reqwest::Client::new();

    let preflight = |origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, url.clone())
            .header("origin", origin.to_owned())
            .header("access-control-request-method", "PUT")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("http://app.test").await.expect("OPTIONS");
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .expect("ascii")
            .contains("PUT")
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .expect("ascii")
            .contains("content-type")
    );
    let other = preflight("https://evil.example").await.expect("OPTIONS");
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let put = client
        .put(url)
        .header("origin", "http://app.test")
        .header("content-type", "image/webp")
        .body(b"RIFF".to_vec())
        .send()
        .await
        .expect("PUT");
    assert_eq!(
        put.status(),
        200,
        "the signature (Host included) checks out through the proxy"
    );
    assert_eq!(
        put.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    assert!(s3.has("listings/9/a.webp"));
    serving.abort();
}

#[tokio::test]
async fn server_side_blobs_go_to_the_bucket_when_configured_and_to_postgres_otherwise() {
    use village_platform::blob::{Blob, BlobStore, Blobs};
    let s3 = S3Server::start().await;
    let db = village_migrate::testing::fresh_database()
        .await
        .expect("db");
    let sql = village_platform::native::NativeSql::connect(&db)
        .await
        .expect("sql");
    let http = village_platform::native::NativeHttp::new(Duration::from_secs(5));
    let blob = Blob {
        content_type: "image/webp".into(),
        bytes: b"RIFF-webp-bytes".to_vec(),
        metadata: [("source-url".to_owned(), "https://example.org/".to_owned())].into(),
    };
    let config = s3.config();
    for (store, in_bucket) in [
        (
            Blobs::choose(Some(&config), &sql, &http).expect("bucket"),
            true,
        ),
        (Blobs::choose(None, &sql, &http).expect("embedded"), false),
    ] {
        store.put("screens/1.webp", &blob).await.expect("put");
        assert_eq!(s3.has("screens/1.webp"), in_bucket);
        assert_eq!(
            store.get("screens/1.webp").await.expect("get"),
            Some(blob.clone())
        );
        assert!(store.delete("screens/1.webp").await.expect("delete"));
        assert_eq!(store.get("screens/1.webp").await.expect("get"), None);
    }
}
