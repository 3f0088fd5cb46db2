//! The devsecops-app image in the real Docker engine through testcontainers: /health and /ready,
//! uid 10001 with no capabilities on a read-only root filesystem, JSON log lines on stdout, and
//! SIGTERM as PID 1 draining an in-flight request within the bound. The image comes from
//! scripts/build-image.sh (scripts/test.sh builds it first); DEVSECOPS_IMAGE names it.

use std::time::{Duration, Instant};

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "image-test-4f9c2a7e1b3d5f8a0c6e2b4d7f1a3c5e";

fn image() -> (String, String) {
    let full = std::env::var("DEVSECOPS_IMAGE").unwrap_or_else(|_| "devsecops-app:test".into());
    let (name, tag) = full.rsplit_once(':').unwrap_or((full.as_str(), "latest"));
    (name.to_string(), tag.to_string())
}

async fn start() -> (ContainerAsync<GenericImage>, u16) {
    let (name, tag) = image();
    let container = GenericImage::new(name, tag)
        .with_exposed_port(8080.tcp())
        .with_wait_for(WaitFor::message_on_stdout("\"listening\""))
        .with_env_var("API_TOKEN", TOKEN)
        .with_env_var("APP_ENV", "production")
        .with_env_var("SHUTDOWN_TIMEOUT_SECS", "10")
        .with_readonly_rootfs(true)
        .with_startup_timeout(Duration::from_secs(30))
        .start()
        .await
        .expect("the image starts (build it with scripts/build-image.sh devsecops-app:test)");
    let port = container
        .get_host_port_ipv4(8080)
        .await
        .expect("published port");
    (container, port)
}

async fn request(port: u16, raw: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(port: u16, path: &str) -> String {
    request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

fn post_head(len: usize) -> String {
    format!("POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
}

/// A field of /proc/<pid>/status of the container's main process, read from the host.
fn proc_status(id: &str) -> std::collections::HashMap<String, String> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "-f", "{{.State.Pid}}", id])
        .output()
        .expect("docker inspect");
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status of the container's process")
        .lines()
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

#[tokio::test]
async fn serves_as_uid_10001_without_capabilities_on_a_read_only_root() {
    let (container, port) = start().await;
    assert!(get(port, "/health").await.starts_with("HTTP/1.1 200"));
    assert!(get(port, "/ready").await.starts_with("HTTP/1.1 200"));
    let body = r#"{"name":"Ada","email":"ada@example.com"}"#;
    let created = request(port, format!("{}{body}", post_head(body.len())).as_bytes()).await;
    assert!(
        created.starts_with("HTTP/1.1 201"),
        "writes to /data work on a read-only root: {created}"
    );
    let status = proc_status(container.id());
    assert_eq!(
        status["Uid"].split_whitespace().take(2).collect::<Vec<_>>(),
        ["10001", "10001"]
    );
    assert_eq!(
        u64::from_str_radix(&status["CapEff"], 16).expect("hex"),
        0,
        "no effective capabilities"
    );
    assert_eq!(
        u64::from_str_radix(&status["CapPrm"], 16).expect("hex"),
        0,
        "no permitted capabilities"
    );
    let inspect = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.ReadonlyRootfs}}",
            container.id(),
        ])
        .output()
        .expect("inspect");
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), "true");
}

#[tokio::test]
async fn logs_on_stdout_are_json_lines_without_the_token() {
    let (container, port) = start().await;
    get(port, "/health").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stdout = String::from_utf8(container.stdout_to_vec().await.expect("logs")).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{stdout}");
    for line in &lines {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(record["service"], "devsecops-app");
        assert!(record["timestamp"].is_string() && record["level"].is_string());
    }
    assert!(lines.iter().any(|l| l.contains("\"event\":\"access\"")));
    assert!(!stdout.contains(TOKEN));
}

#[tokio::test]
async fn sigterm_as_pid_1_drains_the_in_flight_request_and_exits_in_time() {
    let (container, port) = start().await;
    let body = r#"{"name":"Slow","email":"slow@example.com"}"#;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(post_head(body.len()).as_bytes())
        .await
        .expect("head");
    stream
        .write_all(&body.as_bytes()[..10])
        .await
        .expect("half the body");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let stop = container.stop_with_timeout(Some(15));
    let finish = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        stream
            .write_all(&body.as_bytes()[10..])
            .await
            .expect("rest of the body");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.expect("response");
        String::from_utf8_lossy(&out).into_owned()
    };
    let (stopped, response) = tokio::join!(stop, finish);
    stopped.expect("docker stop");
    assert!(
        response.starts_with("HTTP/1.1 201"),
        "in-flight request lost: {response}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(12),
        "took {elapsed:?}: killed at the 15 s bound instead of exiting"
    );
    assert_eq!(container.exit_code().await.expect("exit code"), Some(0));
}
