//! Structured JSON logging with slog + slog-json.
//!
//! The drain is synchronous behind a mutex: every record is written before the call returns, so no line
//! is dropped under load (an async drain with a bounded channel would drop or block unpredictably).
//! Each line carries `timestamp` (RFC 3339, UTC), `level`, `message`, `service` and `version`; request
//! handlers get a child logger that adds `request_id`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use slog::{o, Drain, FnValue, Logger, PushFnValue};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const SERVICE_NAME: &str = "devsecops-app";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where log lines go. Standard output in production, a shared buffer in tests.
pub type LogSink = Box<dyn Write + Send>;

/// Builds the root logger writing JSON lines at `level` and above to `sink`.
pub fn logger(sink: LogSink, level: slog::Level) -> Logger {
    let json = slog_json::Json::new(LineWriter::new(sink))
        .add_key_value(o!(
            "timestamp" => PushFnValue(|_, ser| {
                let now = OffsetDateTime::now_utc();
                ser.emit(now.format(&Rfc3339).unwrap_or_default())
            }),
            "level" => FnValue(|record| level_name(record.level())),
            "message" => PushFnValue(|record, ser| ser.emit(record.msg())),
        ))
        .build();
    let drain = Mutex::new(json).map(slog::Fuse);
    let drain = slog::LevelFilter::new(drain, level).fuse();
    Logger::root(drain, o!("service" => SERVICE_NAME, "version" => VERSION))
}

/// Lower-case level names that Loki and Grafana recognise.
pub fn level_name(level: slog::Level) -> &'static str {
    match level {
        slog::Level::Critical => "critical",
        slog::Level::Error => "error",
        slog::Level::Warning => "warn",
        slog::Level::Info => "info",
        slog::Level::Debug => "debug",
        slog::Level::Trace => "trace",
    }
}

/// Collects a record and writes it with one `write_all` when its newline arrives, so a line is never
/// split across writes (container runtimes and log shippers read lines, not records).
struct LineWriter {
    inner: LogSink,
    pending: Vec<u8>,
}

impl LineWriter {
    fn new(inner: LogSink) -> Self {
        LineWriter {
            inner,
            pending: Vec::with_capacity(512),
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if buf.contains(&b'\n') {
            self.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let result = self.inner.write_all(&self.pending);
            self.pending.clear();
            result?;
        }
        self.inner.flush()
    }
}

/// An in-memory sink whose contents can be read while the logger keeps writing (tests, benchmarks).
#[derive(Clone, Default)]
pub struct SharedBuffer(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("log buffer poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slog::info;

    #[test]
    fn lines_are_json_with_the_required_keys() {
        let buffer = SharedBuffer::default();
        let log = logger(Box::new(buffer.clone()), slog::Level::Info);
        info!(log, "hello"; "request_id" => "abc");
        slog::debug!(log, "filtered out");
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{}", buffer.text());
        let line = &lines[0];
        assert_eq!(line["message"], "hello");
        assert_eq!(line["level"], "info");
        assert_eq!(line["request_id"], "abc");
        assert_eq!(line["service"], SERVICE_NAME);
        assert_eq!(line["version"], VERSION);
        let ts = line["timestamp"].as_str().expect("timestamp is a string");
        OffsetDateTime::parse(ts, &Rfc3339).expect("timestamp is RFC 3339");
    }
}
