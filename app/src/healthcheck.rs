//! `devsecops-app healthcheck [URL]`: one HTTP GET, exit 0 on 2xx. The distroless image has no shell
//! or curl, so the chart's `helm test` pod and compose health checks run the binary itself.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/health";
const TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches `url` (plain `http://host:port/path`) and returns its status line on 2xx.
pub fn check(url: Option<&str>) -> Result<String, String> {
    let url = url.unwrap_or(DEFAULT_URL);
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&address, TIMEOUT).map_err(|e| format!("{authority}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: devsecops-app-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut head = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| format!("{url}: {e}"))?;
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().to_string();
    let code: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{url}: not an HTTP response"))?;
    if (200..300).contains(&code) {
        Ok(status_line)
    } else {
        Err(format!("{url}: {status_line}"))
    }
}
