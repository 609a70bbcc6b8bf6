//! One capture: a fresh browser context behind its own guarded proxy, the
//! page loaded in a 1280×800 viewport, then two WebP pictures of what is
//! above the fold — full size, and a quarter-size thumbnail (Chromium
//! encodes both: `Page.captureScreenshot` with `format: webp`, the
//! thumbnail through the clip's `scale`).
//!
//! Whatever the page does, the capture ends with images or with a
//! [`CaptureError`] saying why: downloads are denied and reported, dialogs
//! dismissed, pop-ups left to the pop-up blocker (and disposed with the
//! context), and everything is bounded by the capture timeout.

use std::rc::Rc;
use std::time::Duration;

use base64::Engine;
use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, EventDownloadWillBegin, SetDownloadBehaviorBehavior,
    SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, EventJavascriptDialogOpening,
    HandleJavaScriptDialogParams, NavigateParams, Viewport,
};
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::error::CdpError;
use futures::StreamExt;
use url::Url;
use village_platform::address::MAX_URL_LEN;
use village_screenshots::{FULL_HEIGHT, FULL_WIDTH, THUMB_HEIGHT, THUMB_WIDTH};

use crate::browser::{Instance, Lease};
use crate::proxy::Proxy;

/// WebP quality of the pictures (Chromium's encoder, lossy).
const QUALITY: i64 = 80;
/// A browser that takes longer to tell its version after a failed capture
/// is hung.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What a capture needs to know.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub navigation_timeout: Duration,
    pub capture_timeout: Duration,
    pub max_page_bytes: u64,
    pub settle: Duration,
    pub allowed_hosts: Vec<String>,
}

/// A capture that worked.
#[derive(Debug, Clone)]
pub struct Captured {
    pub full: Vec<u8>,
    pub thumb: Vec<u8>,
    /// Where the page ended up, after redirects (at most
    /// [`MAX_URL_LEN`] characters: a page may make its URL any length).
    pub final_url: String,
    /// The page's `load` never came; what it showed by then was taken.
    pub partial: bool,
}

/// Why a capture did not work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// The site's fault, and it will not change by retrying soon: TLS,
    /// a refused address, too large, a download, a redirect loop.
    #[error("{0}")]
    Page(String),
    /// Could work later: unreachable, timed out.
    #[error("{0}")]
    Transient(String),
    /// Our fault: the browser died or hung under the capture.
    #[error("browser lost: {0}")]
    BrowserLost(String),
}

/// Captures `url` with the leased browser.
pub async fn capture(
    lease: &Lease,
    url: &str,
    settings: &CaptureSettings,
) -> Result<Captured, CaptureError> {
    let parsed = Url::parse(url).map_err(|e| CaptureError::Page(format!("not a URL: {e}")))?;
    let proxy = Proxy::start(settings.allowed_hosts.clone(), settings.max_page_bytes)
        .await
        .map_err(|e| CaptureError::Transient(format!("proxy: {e}")))?;
    let instance = &lease.instance;
    let context = instance
        .browser
        .create_browser_context(
            CreateBrowserContextParams::builder()
                .dispose_on_detach(true)
                .proxy_server(format!("http://{}", proxy.addr))
                .proxy_bypass_list("<-loopback>")
                .build(),
        )
        .await
        .map_err(|e| lost(instance, e))?;
    let outcome = tokio::time::timeout(
        settings.capture_timeout,
        in_context(instance, &context, &parsed, &proxy, settings),
    )
    .await;
    // The context goes whatever happened: its pages, pop-ups, sockets.
    let disposed = tokio::time::timeout(
        Duration::from_secs(10),
        instance.browser.dispose_browser_context(context),
    )
    .await;
    let mut result = match outcome {
        Ok(r) => r,
        Err(_) => Err(CaptureError::Transient(format!(
            "timed out: no picture after {} s",
            settings.capture_timeout.as_secs()
        ))),
    };
    if disposed.is_err() && result.is_err() {
        // A browser that cannot close a context is hung.
        result = Err(CaptureError::BrowserLost(
            "the browser did not close a context".into(),
        ));
    }
    // A capture that ran out of time may have met a hung browser rather
    // than a slow page: ask it something trivial. One that does not answer
    // is killed now (the pool starts another) and the job is not charged a
    // page's failure: it runs again in a second.
    if matches!(result, Err(CaptureError::Transient(_)))
        && instance.alive.get()
        && !matches!(
            tokio::time::timeout(PROBE_TIMEOUT, instance.browser.version()).await,
            Ok(Ok(_))
        )
    {
        tracing::warn!(
            pid = instance.pid,
            "the browser stopped answering during a capture; killing it"
        );
        instance.kill();
        result = Err(CaptureError::BrowserLost(
            "the browser stopped answering".into(),
        ));
    }
    if !instance.alive.get() && result.is_err() {
        // Whatever the capture saw last, the browser under it died (or the
        // watchdog killed it, hung): not the page's doing.
        result = Err(CaptureError::BrowserLost("the browser went away".into()));
    }
    result
}

async fn in_context(
    instance: &Rc<Instance>,
    context: &BrowserContextId,
    url: &Url,
    proxy: &Proxy,
    settings: &CaptureSettings,
) -> Result<Captured, CaptureError> {
    let browser = &instance.browser;
    browser
        .execute(SetDownloadBehaviorParams {
            behavior: SetDownloadBehaviorBehavior::Deny,
            browser_context_id: Some(context.clone()),
            download_path: None,
            // `Browser.downloadWillBegin` tells a download from a page
            // that never loaded (both leave the tab on about:blank).
            events_enabled: Some(true),
        })
        .await
        .map_err(|e| lost(instance, e))?;
    let page = browser
        .new_page(
            CreateTargetParams::builder()
                .url("about:blank")
                .browser_context_id(context.clone())
                .build()
                .map_err(|e| CaptureError::Transient(format!("new page: {e}")))?,
        )
        .await
        .map_err(|e| lost(instance, e))?;
    page.execute(SetDeviceMetricsOverrideParams::new(
        i64::from(FULL_WIDTH),
        i64::from(FULL_HEIGHT),
        1.0,
        false,
    ))
    .await
    .map_err(|e| lost(instance, e))?;
    // `alert()` and friends would hold the page: dismiss them.
    let mut dialogs = page
        .event_listener::<EventJavascriptDialogOpening>()
        .await
        .map_err(|e| lost(instance, e))?;
    let dialog_page = page.clone();
    let _dialogs = AbortOnDrop(tokio::task::spawn_local(async move {
        while dialogs.next().await.is_some() {
            let _ = dialog_page
                .execute(HandleJavaScriptDialogParams::new(false))
                .await;
        }
    }));
    let downloaded = Rc::new(std::cell::Cell::new(false));
    let mut downloads = browser
        .event_listener::<EventDownloadWillBegin>()
        .await
        .map_err(|e| lost(instance, e))?;
    let main_frame = page.mainframe().await.map_err(|e| lost(instance, e))?;
    let flag = downloaded.clone();
    let _downloads = AbortOnDrop(tokio::task::spawn_local(async move {
        while let Some(event) = downloads.next().await {
            if Some(&event.frame_id) == main_frame.as_ref() {
                flag.set(true);
            }
        }
    }));
    let navigated = tokio::time::timeout(
        settings.navigation_timeout + Duration::from_secs(2),
        page.execute(NavigateParams::new(url.as_str())),
    )
    .await;
    let observed = proxy.observed.clone();
    let authority_of = |u: &Url| {
        format!(
            "{}:{}",
            u.host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            u.port_or_known_default().unwrap_or(80)
        )
    };
    let mut partial = false;
    match navigated {
        Ok(Ok(response)) => {
            if response.result.is_download == Some(true) {
                return Err(CaptureError::Page("a download, not a page".into()));
            }
            if let Some(error) = response.result.error_text.clone() {
                return Err(navigation_error(&error, &observed, &authority_of(url)));
            }
        }
        Ok(Err(CdpError::Timeout)) | Err(_) => partial = true,
        Ok(Err(e)) => {
            return Err(lost(instance, e));
        }
    }
    if observed.over_budget.get() {
        return Err(CaptureError::Page(format!(
            "too large: the page downloads more than {} MB",
            settings.max_page_bytes >> 20
        )));
    }
    let final_url: String = page
        .url()
        .await
        .map_err(|e| lost(instance, e))?
        .unwrap_or_else(|| url.to_string())
        .chars()
        .take(MAX_URL_LEN)
        .collect();
    let final_parsed = Url::parse(&final_url).ok();
    if let Some(f) = &final_parsed
        && let Some(problem) = observed.problem_with(&authority_of(f))
    {
        return Err(classify(&problem));
    }
    if downloaded.get() {
        return Err(CaptureError::Page("a download, not a page".into()));
    }
    if final_url == "about:blank" {
        return Err(if partial {
            // Nothing arrived in time (or the browser froze: the caller
            // asks it).
            CaptureError::Transient(format!(
                "timed out: the page did not load in {} s",
                settings.navigation_timeout.as_secs()
            ))
        } else {
            CaptureError::Page("not a page: nothing a browser shows".into())
        });
    }
    if final_parsed
        .as_ref()
        .is_some_and(|f| !matches!(f.scheme(), "http" | "https"))
    {
        return Err(CaptureError::Page(format!(
            "the page ended at {final_url}, not a web page"
        )));
    }
    if partial {
        // No `load` in time: take what is there if there is a document.
        let state = page
            .evaluate("document.readyState")
            .await
            .ok()
            .and_then(|r| r.into_value::<String>().ok());
        if !matches!(state.as_deref(), Some("interactive" | "complete")) {
            return Err(CaptureError::Transient(format!(
                "timed out: the page did not load in {} s",
                settings.navigation_timeout.as_secs()
            )));
        }
    }
    tokio::time::sleep(settings.settle).await;
    // Above the fold means the top of the document, wherever the page
    // scrolled itself (an endless feed does); the clip is in document
    // coordinates and may lie beyond the viewport.
    let _ = page.evaluate("window.scrollTo(0, 0)").await;
    let full = shot(instance, &page, 1.0).await;
    let thumb = shot(
        instance,
        &page,
        f64::from(THUMB_WIDTH) / f64::from(FULL_WIDTH),
    )
    .await;
    let (full, thumb) = (full?, thumb?);
    if observed.over_budget.get() {
        return Err(CaptureError::Page(format!(
            "too large: the page downloads more than {} MB",
            settings.max_page_bytes >> 20
        )));
    }
    debug_assert_eq!(THUMB_HEIGHT * FULL_WIDTH, FULL_HEIGHT * THUMB_WIDTH);
    Ok(Captured {
        full,
        thumb,
        final_url,
        partial,
    })
}

/// The viewport at `scale`, as WebP.
async fn shot(
    instance: &Rc<Instance>,
    page: &chromiumoxide::Page,
    scale: f64,
) -> Result<Vec<u8>, CaptureError> {
    let params = CaptureScreenshotParams::builder()
        .format(CaptureScreenshotFormat::Webp)
        .quality(QUALITY)
        .clip(Viewport {
            x: 0.0,
            y: 0.0,
            width: f64::from(FULL_WIDTH),
            height: f64::from(FULL_HEIGHT),
            scale,
        })
        .capture_beyond_viewport(true)
        .build();
    let taken = page.execute(params).await.map_err(|e| lost(instance, e))?;
    let data: &str = taken.result.data.as_ref();
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| CaptureError::Transient(format!("screenshot data: {e}")))
}

/// Aborts a helper task when the capture ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A CDP failure: the browser's, unless it is merely a slow command.
fn lost(instance: &Instance, e: CdpError) -> CaptureError {
    if matches!(e, CdpError::Timeout) && instance.alive.get() {
        CaptureError::Transient("timed out: the browser was slow to answer".into())
    } else {
        CaptureError::BrowserLost(e.to_string())
    }
}

/// A proxy's note on a host, as a capture failure.
fn classify(problem: &str) -> CaptureError {
    if problem.starts_with("refused") {
        CaptureError::Page(problem.to_owned())
    } else {
        CaptureError::Transient(problem.to_owned())
    }
}

/// Chromium's `net::ERR_*` for a failed navigation, in words.
fn navigation_error(
    error: &str,
    observed: &crate::proxy::Observed,
    authority: &str,
) -> CaptureError {
    if let Some(problem) = observed.problem_with(authority) {
        return classify(&problem);
    }
    if observed.over_budget.get() {
        return CaptureError::Page("too large: the page downloads too much".into());
    }
    let page = |what: &str| CaptureError::Page(format!("{what} ({error})"));
    match error {
        e if e.contains("CERT") || e.contains("SSL") => page("TLS error"),
        "net::ERR_TOO_MANY_REDIRECTS" => page("redirect loop"),
        "net::ERR_ABORTED" => page("the navigation was aborted (a download?)"),
        "net::ERR_INVALID_RESPONSE" | "net::ERR_INVALID_HTTP_RESPONSE" => {
            page("not a valid HTTP answer")
        }
        "net::ERR_BLOCKED_BY_CLIENT" | "net::ERR_UNSAFE_REDIRECT" | "net::ERR_UNSAFE_PORT" => {
            page("refused")
        }
        _ => CaptureError::Transient(format!("unreachable ({error})")),
    }
}
