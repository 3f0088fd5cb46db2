//! Structured JSON logging with slog + slog-json.
//!
//! The drain is synchronous: every record is written before the call returns, so no line is dropped
//! under load (an async drain with a bounded channel would drop or block unpredictably). Each record
//! is serialized into a per-thread buffer first and then written to the sink with one `write_all`
//! under a mutex, so lines never interleave and workers contend only for the write itself.
//! Each line carries `timestamp` (RFC 3339, UTC), `level`, `message`, `service` and `version`;
//! request handlers get a child logger that adds `request_id`.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use slog::{o, Drain, FnValue, Logger, OwnedKVList, PushFnValue, Record};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const SERVICE_NAME: &str = "devsecops-app";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where log lines go. Standard output in production, a shared buffer in tests.
pub type LogSink = Box<dyn Write + Send>;

/// Builds the root logger writing JSON lines at `level` and above to `sink`.
pub fn logger(sink: LogSink, level: slog::Level) -> Logger {
    let drain = JsonLines {
        sink: Mutex::new(sink),
    };
    let drain = slog::LevelFilter::new(drain.fuse(), level).fuse();
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

/// A per-thread line buffer that the thread's JSON encoder writes into.
#[derive(Clone, Default)]
struct ThreadBuffer(Rc<RefCell<Vec<u8>>>);

impl Write for ThreadBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

thread_local! {
    static ENCODER: (ThreadBuffer, slog_json::Json<ThreadBuffer>) = {
        let buffer = ThreadBuffer::default();
        let json = slog_json::Json::new(buffer.clone())
            .add_key_value(o!(
                "timestamp" => PushFnValue(|_, ser| {
                    let now = OffsetDateTime::now_utc();
                    ser.emit(now.format(&Rfc3339).unwrap_or_default())
                }),
                "level" => FnValue(|record| level_name(record.level())),
                "message" => PushFnValue(|record, ser| ser.emit(record.msg())),
            ))
            .set_flush(false)
            .build();
        (buffer, json)
    };
}

struct JsonLines {
    sink: Mutex<LogSink>,
}

impl Drain for JsonLines {
    type Ok = ();
    type Err = std::io::Error;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), std::io::Error> {
        ENCODER.with(|(buffer, json)| {
            buffer.0.borrow_mut().clear();
            json.log(record, values)?;
            let line = buffer.0.borrow();
            let mut sink = self
                .sink
                .lock()
                .map_err(|_| std::io::Error::other("log sink poisoned"))?;
            sink.write_all(&line)?;
            sink.flush()
        })
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
