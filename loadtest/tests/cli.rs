//! The load test's verdicts from the outside: the real binary against targets that misbehave.
//! Each run is bounded (1 s ramp-up, 1 s at full load); the passing run is the test command's smoke.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn loadtest(reports: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "--users",
        "3",
        "--ramp-up",
        "1s",
        "--duration",
        "1s",
        "--think-time",
        "50ms",
        "--reports",
    ];
    let reports = reports.to_str().expect("utf-8 path");
    args.push(reports);
    args.extend_from_slice(extra);
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(&args)
        .env_remove("LOADTEST_TOKEN")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the load test ends on its own")
        .expect("run loadtest")
}

fn summary(reports: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(reports.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary is JSON")
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A server that answers every request 200 with a body that is not what the API returns.
async fn wrong_body_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let body = "it works";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn an_unmet_latency_threshold_fails_the_run_and_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = loadtest(dir.path(), &["--p95", "1ms", "--threshold", "p99<1us"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let summary = summary(dir.path());
    assert_eq!(summary["passed"], false);
    let rules = summary["thresholds"].as_array().expect("rules");
    let p99 = rules
        .iter()
        .find(|r| r["rule"] == "p99<1us")
        .expect("the extra rule is judged");
    assert_eq!(p99["passed"], false, "{p99}");
    assert!(summary["requests"].as_u64().expect("count") > 0);
    assert!(dir.path().join("report.html").is_file());
    assert!(dir.path().join("report.json").is_file());
}

#[tokio::test]
async fn responses_with_the_wrong_shape_count_as_errors() {
    let port = wrong_body_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let host = format!("http://127.0.0.1:{port}");
    let output = loadtest(
        dir.path(),
        &["--host", &host, "--weights", "1:0:1", "--p95", "off"],
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let summary = summary(dir.path());
    let requests = summary["requests"].as_u64().expect("count");
    assert!(requests > 0, "{summary}");
    assert_eq!(summary["failed"].as_u64(), Some(requests), "{summary}");
}

#[tokio::test]
async fn an_unreachable_host_fails_instead_of_passing_empty() {
    // A port nothing listens on: bound, then released.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let host = format!("http://127.0.0.1:{port}");
    let output = loadtest(dir.path(), &["--host", &host, "--weights", "1:0:1"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert_eq!(summary(dir.path())["passed"], false);
}

#[tokio::test]
async fn sign_up_against_a_host_needs_the_token_and_bad_flags_stop_early() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = loadtest(dir.path(), &["--host", "http://127.0.0.1:9"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LOADTEST_TOKEN"));

    let missing = dir.path().join("no-such-token");
    let output = loadtest(
        dir.path(),
        &[
            "--host",
            "http://127.0.0.1:9",
            "--token-file",
            missing.to_str().expect("utf-8"),
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--token-file"));

    let output = loadtest(dir.path(), &["--host", "ftp://example"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let output = loadtest(dir.path(), &["--weights", "1:2"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let output = loadtest(dir.path(), &["--threshold", "p100<1s"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("p100<1s"));
    assert!(!dir.path().join("summary.json").exists());
}
