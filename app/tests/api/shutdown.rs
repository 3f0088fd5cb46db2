//! Graceful shutdown of the real binary: SIGTERM turns readiness 503 at once, in-flight requests
//! complete, load that stops at the readiness signal loses nothing, and the process exits in time.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::TOKEN;

const SHUTDOWN_DELAY_MS: u64 = 700;
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

struct Running {
    child: tokio::process::Child,
    port: u16,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

/// The real binary serving a fresh SQLite database in `dir` on free ports, stdout piped.
fn service_command(dir: &std::path::Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"));
    command
        .env_clear()
        .env("PORT", "0")
        .env("METRICS_PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("API_TOKEN", TOKEN)
        .env("WORKERS", "2")
        .env("RATE_LIMIT_PER_SECOND", "0")
        .env("DATABASE_URL", format!("sqlite://{}/app.db", dir.display()))
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn start_binary(dir: &std::path::Path) -> Running {
    let mut child = service_command(dir)
        .env("SHUTDOWN_DELAY_MS", SHUTDOWN_DELAY_MS.to_string())
        .env("SHUTDOWN_TIMEOUT_SECS", SHUTDOWN_TIMEOUT_SECS.to_string())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("stdout");
    let lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        let mut port_tx = Some(port_tx);
        while let Ok(Some(line)) = reader.next_line().await {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) {
                if value["message"] == "listening" {
                    let port = value["address"]
                        .as_str()
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse::<u16>().ok());
                    if let (Some(tx), Some(port)) = (port_tx.take(), port) {
                        let _ = tx.send(port);
                    }
                }
            }
            sink.lock().expect("lines").push(line);
        }
    });
    let port = tokio::time::timeout(Duration::from_secs(10), port_rx)
        .await
        .expect("the service starts within 10 s")
        .expect("listening line");
    Running { child, port, lines }
}

/// Sends a request by hand and returns (status, whole response text).
async fn raw_request(port: u16, request: &[u8]) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(request).await?;
    read_status(&mut stream).await
}

async fn read_status(stream: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no response: {text:?}")))?;
    Ok((status, text))
}

fn post_head(body_len: usize) -> String {
    format!(
        "POST /api/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
    )
}

#[actix_web::test]
async fn sigterm_drains_in_flight_requests_and_exits_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut app = start_binary(dir.path()).await;
    let port = app.port;
    let (status, _) = raw_request(
        port,
        b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("ready");
    assert_eq!(status, 200);

    // In flight: requests whose bodies are half sent when SIGTERM arrives.
    let mut slow = Vec::new();
    for i in 0..4 {
        let body = format!(r#"{{"name":"slow {i}","email":"slow{i}@example.com"}}"#);
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream
            .write_all(post_head(body.len()).as_bytes())
            .await
            .expect("head");
        let (first, rest) = body.split_at(body.len() / 2);
        stream.write_all(first.as_bytes()).await.expect("half body");
        slow.push((stream, rest.to_string()));
    }

    // Load: clients that stop sending new requests once readiness fails, as a load balancer would.
    let draining = Arc::new(AtomicBool::new(false));
    let (sent, answered) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (draining, sent, answered) = (draining.clone(), sent.clone(), answered.clone());
        load.push(tokio::spawn(async move {
            let mut lost = Vec::new();
            let mut n = 0;
            while !draining.load(Ordering::SeqCst) {
                n += 1;
                let body = format!(r#"{{"name":"load","email":"w{worker}-{n}@example.com"}}"#);
                let request = format!("{}{body}", post_head(body.len()));
                sent.fetch_add(1, Ordering::SeqCst);
                match raw_request(port, request.as_bytes()).await {
                    Ok((201, _)) => {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    other => lost.push(format!("{other:?}")),
                }
            }
            lost
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = app.child.id().expect("pid");
    let term_sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());

    // Readiness turns 503 at once, while the listener still accepts.
    let mut ready_status = 0;
    while term_sent.elapsed() < Duration::from_millis(SHUTDOWN_DELAY_MS) {
        let (status, _) = raw_request(
            port,
            b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("ready during the delay");
        ready_status = status;
        if status == 503 {
            break;
        }
    }
    assert_eq!(
        ready_status, 503,
        "readiness did not turn 503 within the delay"
    );
    let not_ready_after = term_sent.elapsed();
    draining.store(true, Ordering::SeqCst);
    let mut lost = Vec::new();
    for task in load {
        lost.extend(task.await.expect("load task"));
    }

    // Finish the in-flight requests after the listener has stopped accepting.
    tokio::time::sleep(
        Duration::from_millis(SHUTDOWN_DELAY_MS + 300).saturating_sub(term_sent.elapsed()),
    )
    .await;
    for (mut stream, rest) in slow {
        stream
            .write_all(rest.as_bytes())
            .await
            .expect("rest of body");
        let (status, text) = read_status(&mut stream).await.expect("in-flight response");
        assert_eq!(status, 201, "in-flight request lost: {text}");
    }

    let exit = tokio::time::timeout(
        Duration::from_millis(SHUTDOWN_DELAY_MS) + Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 2),
        app.child.wait(),
    )
    .await
    .expect("the process exits within the shutdown bound")
    .expect("wait");
    let exited_after = term_sent.elapsed();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(lost.is_empty(), "requests lost during shutdown: {lost:?}");
    assert!(answered.load(Ordering::SeqCst) > 0, "the load ran");
    assert_eq!(sent.load(Ordering::SeqCst), answered.load(Ordering::SeqCst));

    // New connections are refused once draining started.
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());

    let lines = app.lines.lock().expect("lines").clone();
    assert!(
        lines.iter().any(|l| l.contains("shutdown started")),
        "{lines:?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("\"stopped\"")),
        "{:?}",
        lines.last()
    );
    let access = lines
        .iter()
        .filter(|l| l.contains("\"event\":\"access\""))
        .count();
    assert!(
        access >= answered.load(Ordering::SeqCst) + 4,
        "one access line per answered request"
    );
    eprintln!(
        "shutdown: readiness 503 after {not_ready_after:?}, exit after {exited_after:?}, {} load requests answered",
        answered.load(Ordering::SeqCst)
    );
}

#[actix_web::test]
async fn production_refuses_weak_tokens_at_start() {
    for (token, expect) in [
        (None, "API_TOKEN or API_TOKEN_FILE is required"),
        (Some("development-only-token"), "development default"),
        (Some("short"), "at least 32 characters"),
    ] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_devsecops-app"));
        cmd.env_clear()
            .env("APP_ENV", "production")
            .env("PORT", "0");
        if let Some(token) = token {
            cmd.env("API_TOKEN", token);
        }
        let output = cmd.output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{token:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expect), "{token:?}: {stderr}");
        if let Some(token) = token {
            assert!(
                !stderr.contains(token) || token == "development-only-token",
                "token echoed"
            );
        }
    }
}

#[actix_web::test]
async fn healthcheck_subcommand_reports_the_service_state() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await;
    let bin = env!("CARGO_BIN_EXE_devsecops-app");
    let url = app.url("/health");
    let ok = tokio::process::Command::new(bin)
        .args(["healthcheck", &url])
        .output()
        .await
        .expect("run");
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("HTTP/1.1 200"));
    let missing = tokio::process::Command::new(bin)
        .args(["healthcheck", &app.url("/nope")])
        .output()
        .await
        .expect("run");
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let refused = tokio::process::Command::new(bin)
        .args(["healthcheck", "http://127.0.0.1:1/health"])
        .output()
        .await
        .expect("run");
    assert!(!refused.status.success());
}

/// The log pipeline dies (stdout's reader goes away): requests are still served in both write
/// modes, the lost lines are counted on /metrics, and standard error says why once.
#[tokio::test]
async fn a_closed_stdout_loses_log_lines_but_no_request() {
    for mode in ["sync", "batched"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = service_command(dir.path())
            .env("LOG_WRITE", mode)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the binary");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (port, metrics_port) = loop {
            let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
                .await
                .expect("the service starts within 10 s")
                .expect("read stdout")
                .expect("a listening line before stdout ends");
            let value: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
            if value["message"] == "listening" {
                let port_of = |key: &str| -> u16 {
                    value[key]
                        .as_str()
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse().ok())
                        .expect("a port")
                };
                break (port_of("address"), port_of("internal_address"));
            }
        };
        // The reading end closes: every later write to stdout fails with EPIPE.
        drop(stdout);

        for i in 0..20 {
            let (status, text) = raw_request(
                port,
                b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .await
            .expect("a response");
            assert_eq!(status, 200, "{mode}, request {i}: {text}");
        }
        let body = format!(r#"{{"name":"Ann","email":"ann-{mode}@example.com"}}"#);
        let (status, text) =
            raw_request(port, format!("{}{body}", post_head(body.len())).as_bytes())
                .await
                .expect("a response");
        assert_eq!(status, 201, "{mode}: a write is still served: {text}");
        // Batched lines are written at the end of the worker's turn: give it one.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let (status, metrics) = raw_request(
            metrics_port,
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("metrics");
        assert_eq!(status, 200);
        let dropped: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("app_log_lines_dropped_total "))
            .and_then(|v| v.trim().parse().ok())
            .expect("app_log_lines_dropped_total is exported");
        assert!(
            dropped >= 21.0,
            "{mode}: {dropped} lines counted as dropped"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "{mode}: the service is still running"
        );

        child.start_kill().expect("kill");
        let output = child.wait_with_output().await.expect("output");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.matches("log lines cannot be written").count(),
            1,
            "{mode}: the failure is reported once: {stderr}"
        );
    }
}
