//! Looks at the homepage the way a person would: headless Chromium renders
//! it to a PNG. The picture is kept at `target/screenshots/homepage.png`
//! (for a human to look at); the test checks it is a real, non-blank render.

use std::process::Command;
use std::time::Duration;

use village_e2e::{chromium, repo_root, spawn_app};

#[tokio::test]
async fn the_homepage_renders_in_headless_chromium() {
    let app = spawn_app().await;
    let out_dir = repo_root().join("target/screenshots");
    std::fs::create_dir_all(&out_dir).expect("screenshot dir");
    let png = out_dir.join("homepage.png");
    let profile = tempfile::tempdir().expect("profile dir");
    let url = app.url("/");
    let browser = chromium();
    let png_arg = format!("--screenshot={}", png.display());
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            Command::new(browser)
                .args(village_e2e::HEADLESS)
                .args([
                    "--disable-quic",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--window-size=1280,900",
                ])
                .arg(&profile_arg)
                .arg(&png_arg)
                .arg(&url)
                .output()
        }),
    )
    .await
    .expect("Chromium finished within a minute")
    .expect("join")
    .expect("Chromium ran");
    assert!(
        status.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG file");
    assert!(
        bytes.len() > 10_000,
        "a real render, not a blank page ({} bytes)",
        bytes.len()
    );
    app.stop().await;
}
