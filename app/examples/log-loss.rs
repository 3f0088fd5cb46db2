//! Load for the log-loss figures of `bench/run.py`: keep-alive connections send `GET /health` one
//! after another, each with its own `X-Request-ID` (`ll-<connection>-<sequence>`), until the service
//! goes away; after `--after-ms` this program sends it `--signal` (TERM or KILL). It prints, as JSON,
//! how many responses each connection received complete. Every received response names a request the
//! service answered, so its id must be in the access log: the bench counts those that are not.
//!
//!   log-loss --port 8080 --pid 1234 --signal KILL [--connections 10] [--after-ms 2000]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Options {
    port: u16,
    pid: u32,
    signal: String,
    connections: usize,
    after: Duration,
}

fn options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str, default: Option<u64>| -> Result<u64, String> {
        match (value(name), default) {
            (Some(raw), _) => raw
                .parse()
                .map_err(|_| format!("{name}: not a number: {raw}")),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(format!("{name} is required")),
        }
    };
    let signal = value("--signal").ok_or("--signal TERM|KILL is required")?;
    if signal != "TERM" && signal != "KILL" {
        return Err(format!("--signal: expected TERM or KILL, got {signal}"));
    }
    Ok(Options {
        port: u16::try_from(number("--port", None)?).map_err(|_| "--port: out of range")?,
        pid: u32::try_from(number("--pid", None)?).map_err(|_| "--pid: out of range")?,
        signal,
        connections: number("--connections", Some(10))? as usize,
        after: Duration::from_millis(number("--after-ms", Some(2_000))?),
    })
}

/// Sends requests on one connection until it fails; returns how many completed with a 200.
async fn connection(port: u16, index: usize) -> u64 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return 0;
    };
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::with_capacity(4096);
    let mut completed = 0u64;
    loop {
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: ll-{index}-{}\r\n\r\n",
            completed + 1
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            return completed;
        }
        match read_response(&mut stream, &mut buffer).await {
            Some(200) => completed += 1,
            _ => return completed,
        }
    }
}

/// Reads one whole response (head and `Content-Length` body); its status, or `None` when the
/// connection ended first.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<u16> {
    buffer.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let status = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())?;
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Some(status);
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::main(worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("log-loss: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let tasks: Vec<_> = (0..options.connections)
        .map(|i| tokio::spawn(connection(options.port, i)))
        .collect();
    tokio::time::sleep(options.after).await;
    let signalled_after = started.elapsed();
    let sent = std::process::Command::new("kill")
        .args([format!("-{}", options.signal), options.pid.to_string()])
        .status();
    if !sent.is_ok_and(|s| s.success()) {
        eprintln!("log-loss: could not signal {}", options.pid);
        return std::process::ExitCode::from(2);
    }
    let mut completed = Vec::new();
    for task in tasks {
        completed.push(
            tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(0),
        );
    }
    let total: u64 = completed.iter().sum();
    println!(
        "{{\"signal\":\"{}\",\"signalled_after_s\":{:.3},\"responses\":{total},\"completed_per_connection\":{:?}}}",
        options.signal,
        signalled_after.as_secs_f64(),
        completed
    );
    std::process::ExitCode::SUCCESS
}
