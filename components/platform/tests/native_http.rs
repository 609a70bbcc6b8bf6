//! The native HTTP adapter against a local server: a response comes back
//! whole, and a server that never answers hits the timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use village_platform::http_client::{HttpClient, HttpError};
use village_platform::native::NativeHttp;

#[tokio::test]
async fn sends_a_request_and_reads_status_headers_and_body() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 2048];
        let n = s.read(&mut buf).await.expect("read");
        let req = String::from_utf8_lossy(&buf[..n]).to_lowercase();
        let body = if req.contains("x-probe: yes") {
            "saw header"
        } else {
            "no header"
        };
        let reply = format!(
            "HTTP/1.1 201 Created\r\ncontent-length: {}\r\nx-reply: 1\r\n\r\n{body}",
            body.len()
        );
        s.write_all(reply.as_bytes()).await.expect("write");
    });
    let req = http::Request::get(format!("http://{addr}/x"))
        .header("x-probe", "yes")
        .body(Vec::new())
        .expect("req");
    let resp = NativeHttp::new(Duration::from_secs(3))
        .send(req)
        .await
        .expect("response");
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["x-reply"], "1");
    assert_eq!(resp.body(), b"saw header");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (_s, _) = listener.accept().await.expect("accept");
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let req = http::Request::get(format!("http://{addr}/"))
        .body(Vec::new())
        .expect("req");
    let err = NativeHttp::new(Duration::from_millis(300))
        .send(req)
        .await
        .expect_err("timeout");
    assert!(matches!(err, HttpError::Timeout(_)), "{err}");
}
