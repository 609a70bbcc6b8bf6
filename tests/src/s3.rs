//! A real S3-compatible server for a test: `s3s-fs` (crates.io; installed
//! by `scripts/setup.sh`'s `ensure_s3s`) on a free loopback port over a
//! temporary folder, with bucket `village` and its own keys. It checks
//! SigV4 signatures — presigned URLs' expiry and signed headers included —
//! as R2 does. Killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ACCESS_KEY: &str = "village-test-key";
pub const SECRET_KEY: &str = "village-test-secret";
pub const BUCKET: &str = "village";

pub struct S3Server {
    pub addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

fn binary() -> std::path::PathBuf {
    let installed = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default()
        .join(".cache/village/tools/bin/s3s-fs");
    if installed.exists() {
        installed
    } else {
        "s3s-fs".into()
    }
}

impl S3Server {
    pub async fn start() -> S3Server {
        let dir = tempfile::tempdir().expect("a folder for the bucket");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket folder");
        let addr = crate::spin::free_addr();
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs starts (scripts/test installs it: ensure_s3s)");
        // Owned from here: dropped (killed) however the test ends.
        let server = S3Server { addr, dir, child };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("s3s-fs did not listen on {addr}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The application variables that point the app at this server.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        vec![
            ("object_store_endpoint", self.endpoint()),
            ("object_store_bucket", BUCKET.to_owned()),
            ("object_store_region", "us-east-1".to_owned()),
            ("object_store_access_key", ACCESS_KEY.to_owned()),
            ("object_store_secret_key", SECRET_KEY.to_owned()),
        ]
    }

    /// Whether an object is stored under `key` (read from the folder).
    pub fn has(&self, key: &str) -> bool {
        self.dir.path().join(BUCKET).join(key).exists()
    }

    pub fn config(&self) -> village_platform::objects::S3Config {
        village_platform::objects::S3Config {
            endpoint: self.endpoint(),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Already gone is fine; nothing else can be done in a drop.
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}
