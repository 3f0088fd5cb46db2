//! Structured JSON logging with slog, and how lines reach the sink without losing any.
//!
//! Each record is serialized into a per-thread buffer, then written to the sink in one of two modes
//! ([`LogWrite`], setting `LOG_WRITE`):
//!
//! - `batched` (default), group commit: on an HTTP worker, a line is appended to that worker's own
//!   pending buffer (a lock no other thread takes while it works), and a flush task on the worker's
//!   event loop writes the whole buffer with one `write(2)` once the worker has run the tasks that
//!   were ready before it, i.e. just before its event loop would wait for I/O again. actix-server
//!   builds each worker's Tokio runtime itself, so `Builder::on_thread_park` is out of reach; a task
//!   woken by the first pending line lands at the back of the worker's FIFO run queue, which is the
//!   same moment (see docs in ARCHITECTURE.md, "Logs"). Pending lines are also written when they
//!   pass [`MAX_PENDING_BYTES`], when the worker's event loop stops, when its thread exits (also by
//!   unwinding), on panic, and before any line written synchronously, so the output keeps the order
//!   in which lines were logged on each thread. Lines logged outside a worker (start, shutdown,
//!   errors on the main thread) are written at once. What a SIGKILL can lose is the last, unflushed
//!   batch of each worker: the lines of responses already sent in that event-loop turn.
//! - `sync`: every line is written with one `write_all` under the sink's mutex before the call
//!   returns, so no line can be lost once its response is sent, at the cost of one system call per
//!   line contended by all workers.
//!
//! Lines never interleave: each write holds the sink's mutex and carries whole lines.
//! Each line carries `timestamp` (RFC 3339, UTC), `level`, `message`, `service` and `version`;
//! request handlers get a child logger that adds `request_id`.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use slog::{o, Drain, Logger, OwnedKVList, Record};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Notify;

pub const SERVICE_NAME: &str = "devsecops-app";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A worker's pending lines are written at once when they reach this size, bounding both memory
/// and what a crash can lose even if its event loop never yields.
pub const MAX_PENDING_BYTES: usize = 64 * 1024;

/// Where log lines go. Standard output in production, a shared buffer in tests.
pub type LogSink = Box<dyn Write + Send>;

/// How lines are written; see the module documentation for the trade-off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogWrite {
    /// Group commit per worker event-loop turn.
    #[default]
    Batched,
    /// One write per line, before the logging call returns.
    Sync,
}

impl LogWrite {
    pub fn as_str(self) -> &'static str {
        match self {
            LogWrite::Batched => "batched",
            LogWrite::Sync => "sync",
        }
    }
}

impl std::str::FromStr for LogWrite {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "batched" => Ok(LogWrite::Batched),
            "sync" => Ok(LogWrite::Sync),
            other => Err(format!("expected batched or sync, got {other:?}")),
        }
    }
}

/// Builds the root logger writing JSON lines at `level` and above to `sink`, in the default mode.
pub fn logger(sink: LogSink, level: slog::Level) -> Logger {
    logger_with(sink, level, LogWrite::default())
}

/// Builds the root logger writing JSON lines at `level` and above to `sink` in `mode`.
pub fn logger_with(sink: LogSink, level: slog::Level, mode: LogWrite) -> Logger {
    if mode == LogWrite::Batched {
        install_panic_flush();
    }
    let drain = JsonLines {
        sink: Arc::new(Sink::new(sink)),
        mode,
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

/// Encodes one record as a JSON object on one line: `timestamp`, `level` and `message`, then the
/// logger's key-values (a child's before its parent's), then the record's. slog-json wrote the same
/// fields in another order; JSON consumers (Loki, Alloy, the tests) do not depend on it.
/// Written here rather than taken from slog-json, which passes every fragment through serde's map
/// serializer and an `io::Write` call: the access line is encoded once per request, and that path was
/// a fifth of the middleware's instructions (BENCHMARKS.md). Strings that need escaping are escaped by
/// serde_json, so the JSON is the same; plain ones are copied.
struct LineEncoder<'a> {
    out: &'a mut Vec<u8>,
    /// For values that arrive as format arguments.
    scratch: &'a mut String,
}

impl LineEncoder<'_> {
    fn key(&mut self, key: &str) {
        // Every line starts with `{"timestamp":…`, so a field is never the first one.
        self.out.push(b',');
        json_string(self.out, key);
        self.out.push(b':');
    }

    fn raw(&mut self, key: &str, text: &[u8]) -> slog::Result {
        self.key(key);
        self.out.extend_from_slice(text);
        Ok(())
    }

    fn integer(&mut self, key: &str, value: impl itoa::Integer) -> slog::Result {
        self.raw(key, itoa::Buffer::new().format(value).as_bytes())
    }
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut Vec<u8>, text: &str) {
    let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let plain = if text.len() < 32 {
        // Keys and most values: a plain loop beats the vector loop's set-up.
        !text.bytes().any(special)
    } else {
        // Bitwise, with no early exit, so the compiler checks many bytes per instruction.
        text.bytes().fold(0u8, |acc, b| acc | u8::from(special(b))) == 0
    };
    if plain {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    }
}

/// The value of a field whose `Display` implementation returned an error.
pub const UNFORMATTABLE: &str = "<value could not be formatted>";

impl slog::Serializer for LineEncoder<'_> {
    fn emit_arguments(&mut self, key: slog::Key, value: &std::fmt::Arguments) -> slog::Result {
        if let Some(text) = value.as_str() {
            return self.emit_str(key, text);
        }
        self.scratch.clear();
        if std::fmt::Write::write_fmt(&mut *self.scratch, *value).is_err() {
            // A Display implementation that fails costs its field, not the line.
            self.scratch.clear();
            self.scratch.push_str(UNFORMATTABLE);
        }
        self.key(key);
        json_string(self.out, self.scratch);
        Ok(())
    }
    fn emit_str(&mut self, key: slog::Key, value: &str) -> slog::Result {
        self.key(key);
        json_string(self.out, value);
        Ok(())
    }
    fn emit_none(&mut self, key: slog::Key) -> slog::Result {
        self.raw(key, b"null")
    }
    fn emit_unit(&mut self, key: slog::Key) -> slog::Result {
        self.raw(key, b"null")
    }
    fn emit_bool(&mut self, key: slog::Key, value: bool) -> slog::Result {
        self.raw(key, if value { b"true" } else { b"false" })
    }
    fn emit_char(&mut self, key: slog::Key, value: char) -> slog::Result {
        self.emit_str(key, value.encode_utf8(&mut [0; 4]))
    }
    fn emit_u8(&mut self, key: slog::Key, value: u8) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_i8(&mut self, key: slog::Key, value: i8) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_u16(&mut self, key: slog::Key, value: u16) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_i16(&mut self, key: slog::Key, value: i16) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_u32(&mut self, key: slog::Key, value: u32) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_i32(&mut self, key: slog::Key, value: i32) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_u64(&mut self, key: slog::Key, value: u64) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_i64(&mut self, key: slog::Key, value: i64) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_usize(&mut self, key: slog::Key, value: usize) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_isize(&mut self, key: slog::Key, value: isize) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_u128(&mut self, key: slog::Key, value: u128) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_i128(&mut self, key: slog::Key, value: i128) -> slog::Result {
        self.integer(key, value)
    }
    fn emit_f32(&mut self, key: slog::Key, value: f32) -> slog::Result {
        self.key(key);
        // Its own shortest form (0.1, not the f64 widening 0.10000000149011612).
        let _ = serde_json::to_writer(&mut *self.out, &value);
        Ok(())
    }
    fn emit_f64(&mut self, key: slog::Key, value: f64) -> slog::Result {
        self.key(key);
        // serde_json's number format; NaN and infinities become null, as in slog-json.
        let _ = serde_json::to_writer(&mut *self.out, &value);
        Ok(())
    }
}

/// The date and time to the second, formatted once per second per thread.
#[derive(Default)]
struct Clock {
    second: Option<u64>,
    /// `YYYY-MM-DDTHH:MM:SS`
    prefix: String,
}

impl Clock {
    /// Appends the current time as an RFC 3339 string in UTC with microseconds.
    fn write_now(&mut self, out: &mut Vec<u8>) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let second = now.as_secs();
        if self.second != Some(second) {
            // Calendar arithmetic is the time crate's; the format is RFC 3339's.
            let text = i64::try_from(second)
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .and_then(|t| t.format(&Rfc3339).ok())
                .unwrap_or_default();
            self.prefix = text.get(..19).unwrap_or("1970-01-01T00:00:00").to_string();
            self.second = Some(second);
        }
        out.push(b'"');
        out.extend_from_slice(self.prefix.as_bytes());
        let micros = now.subsec_micros();
        let mut digits = *b".000000Z";
        for (i, slot) in digits[1..7].iter_mut().rev().enumerate() {
            *slot = b'0' + (micros / 10u32.pow(i as u32) % 10) as u8;
        }
        out.extend_from_slice(&digits);
        out.push(b'"');
    }
}

/// A thread's line under construction, kept between lines so encoding allocates nothing.
#[derive(Default)]
struct LineBuffers {
    line: Vec<u8>,
    scratch: String,
    clock: Clock,
}

impl LineBuffers {
    fn encode(&mut self, record: &Record, values: &OwnedKVList) -> slog::Result {
        use slog::KV;
        self.line.clear();
        self.line.extend_from_slice(b"{\"timestamp\":");
        self.clock.write_now(&mut self.line);
        self.line.extend_from_slice(b",\"level\":\"");
        self.line
            .extend_from_slice(level_name(record.level()).as_bytes());
        self.line.push(b'"');
        let mut encoder = LineEncoder {
            out: &mut self.line,
            scratch: &mut self.scratch,
        };
        slog::Serializer::emit_arguments(&mut encoder, "message", record.msg())?;
        values.serialize(record, &mut encoder)?;
        record.kv().serialize(record, &mut encoder)?;
        self.line.extend_from_slice(b"}\n");
        Ok(())
    }
}

thread_local! {
    static LINE: RefCell<LineBuffers> = RefCell::new(LineBuffers::default());
}

/// The destination, shared by every thread's pending buffer.
struct Sink(Mutex<SinkState>);

struct SinkState {
    out: LogSink,
    /// A write failed part-way through a line: its start is in the output without a newline.
    cut: bool,
}

impl Sink {
    fn new(out: LogSink) -> Self {
        Sink(Mutex::new(SinkState { out, cut: false }))
    }

    /// Writes whole lines. When the sink fails (a closed pipe, a full disk) the lines not written
    /// in full are lost: they are counted ([`lines_dropped`]), reported on standard error at most
    /// every [`REPORT_INTERVAL_SECS`], and logging goes on, so a broken log pipeline never takes
    /// requests down. A line cut by a failure is ended before the next one, so that one line is
    /// lost, not two.
    fn write_lines(&self, lines: &[u8]) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        state.write_lines(lines);
    }
}

impl SinkState {
    fn write_lines(&mut self, lines: &[u8]) {
        if self.cut {
            if let Err(error) = self.write_counted(b"\n").1 {
                dropped(count_lines(lines), "log lines cannot be written", &error);
                return;
            }
            self.cut = false;
        }
        let (written, result) = self.write_counted(lines);
        if let Err(error) = result.and_then(|()| self.out.flush()) {
            let (done, lost) = lines.split_at(written);
            self.cut = done.last().is_some_and(|&b| b != b'\n');
            dropped(count_lines(lost), "log lines cannot be written", &error);
        }
    }

    /// `write_all` that says how far it got.
    fn write_counted(&mut self, bytes: &[u8]) -> (usize, std::io::Result<()>) {
        let mut written = 0;
        while written < bytes.len() {
            match self.out.write(&bytes[written..]) {
                Ok(0) => return (written, Err(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return (written, Err(e)),
            }
        }
        (written, Ok(()))
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Log lines lost since the process started: the sink failed, or a record could not be encoded.
static LINES_DROPPED: AtomicU64 = AtomicU64::new(0);
/// When standard error last heard of lost lines (seconds on the process's clock, plus one).
static LAST_REPORT: AtomicU64 = AtomicU64::new(0);
/// Lost lines are reported on standard error at most this often; the counter has every one.
pub const REPORT_INTERVAL_SECS: u64 = 10;

/// Log lines lost since the process started (exported as `app_log_lines_dropped_total`).
pub fn lines_dropped() -> u64 {
    LINES_DROPPED.load(Ordering::Relaxed)
}

fn dropped(lines: u64, what: &str, cause: &dyn std::fmt::Display) {
    if lines == 0 {
        return;
    }
    let total = LINES_DROPPED.fetch_add(lines, Ordering::Relaxed) + lines;
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let now = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
        + 1;
    let last = LAST_REPORT.load(Ordering::Relaxed);
    let due = last == 0 || now >= last + REPORT_INTERVAL_SECS;
    if due
        && LAST_REPORT
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        // Standard error is all that is left; if it fails too, there is no one to tell.
        let _ = writeln!(
            std::io::stderr(),
            "devsecops-app: {what} ({cause}); {total} lines dropped so far, counted in app_log_lines_dropped_total"
        );
    }
}

struct JsonLines {
    sink: Arc<Sink>,
    mode: LogWrite,
}

impl Drain for JsonLines {
    type Ok = ();
    type Err = std::io::Error;

    fn log(&self, record: &Record, values: &OwnedKVList) -> Result<(), std::io::Error> {
        // A value whose formatting logs, or a line logged during the thread's teardown, gets
        // buffers of its own.
        let reused = LINE.try_with(|buffers| {
            buffers
                .try_borrow_mut()
                .map(|mut buffers| self.write(&mut buffers, record, values))
        });
        match reused {
            Ok(Ok(result)) => result,
            _ => self.write(&mut LineBuffers::default(), record, values),
        }
    }
}

impl JsonLines {
    fn write(
        &self,
        buffers: &mut LineBuffers,
        record: &Record,
        values: &OwnedKVList,
    ) -> std::io::Result<()> {
        // Never an error: slog's `Fuse` would turn it into a panic in whatever logged.
        match buffers.encode(record, values) {
            Err(error) => dropped(1, "a log record could not be encoded", &error),
            Ok(())
                if self.mode == LogWrite::Batched
                    && append_on_worker(&self.sink, &buffers.line) => {}
            Ok(()) => {
                // Written now: what workers logged to this sink before goes first, so no line
                // overtakes another.
                flush_pending(Some(&self.sink));
                self.sink.write_lines(&buffers.line);
            }
        }
        // One huge line or value must not pin its memory on the thread.
        if buffers.line.capacity() > MAX_PENDING_BYTES {
            buffers.line = Vec::new();
        }
        if buffers.scratch.capacity() > MAX_PENDING_BYTES {
            buffers.scratch = String::new();
        }
        Ok(())
    }
}

/// One thread's lines for one sink that are not written yet.
struct Pending {
    sink: Arc<Sink>,
    /// Taken by its own thread for every line, and by others only to flush (shutdown, panic, a
    /// synchronous line), so it is practically never contended.
    lines: Mutex<Vec<u8>>,
}

impl Pending {
    fn flush(&self) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        Self::write_out(&self.sink, &mut lines);
    }

    fn write_out(sink: &Sink, lines: &mut Vec<u8>) {
        if lines.is_empty() {
            return;
        }
        // Cleared even when the write fails: a broken sink must not grow memory without bound.
        sink.write_lines(lines);
        lines.clear();
    }
}

/// Every thread's pending buffers, so a flush from anywhere (shutdown, panic, a synchronous line,
/// a test reading its log) writes all of them.
static PENDING: Mutex<Vec<Weak<Pending>>> = Mutex::new(Vec::new());

/// The batching state of the current thread.
#[derive(Default)]
struct Worker {
    /// Wakes this thread's flush task; present while one runs on the thread's event loop.
    flusher: Option<Rc<Notify>>,
    /// This thread's pending buffers, one per sink it has written to (one in practice).
    pending: Vec<Arc<Pending>>,
}

impl Drop for Worker {
    /// The thread is ending (also by unwinding): nothing it logged may stay behind.
    fn drop(&mut self) {
        for pending in &self.pending {
            pending.flush();
        }
    }
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

/// Appends `line` to this thread's pending buffer when a flush task runs here; `false` when the
/// line must be written synchronously instead.
fn append_on_worker(sink: &Arc<Sink>, line: &[u8]) -> bool {
    let appended = WORKER.try_with(|worker| {
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return false;
        };
        let Some(flusher) = worker.flusher.clone() else {
            return false;
        };
        let pending = match worker.pending.iter().find(|p| Arc::ptr_eq(&p.sink, sink)) {
            Some(pending) => pending.clone(),
            None => {
                let pending = Arc::new(Pending {
                    sink: sink.clone(),
                    lines: Mutex::new(Vec::with_capacity(MAX_PENDING_BYTES)),
                });
                if let Ok(mut all) = PENDING.lock() {
                    all.retain(|p| p.strong_count() > 0);
                    all.push(Arc::downgrade(&pending));
                }
                worker.pending.push(pending.clone());
                pending
            }
        };
        drop(worker);
        let mut lines = pending.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let first = lines.is_empty();
        lines.extend_from_slice(line);
        if lines.len() >= MAX_PENDING_BYTES {
            Pending::write_out(sink, &mut lines);
        } else if first {
            flusher.notify_one();
        }
        true
    });
    // During the thread's own teardown the line is written directly.
    appended.unwrap_or(false)
}

/// Starts group commit on the current HTTP worker: spawns its flush task on the worker's event
/// loop, once per thread. Call it only from code an actix worker runs (the request middleware);
/// it needs the worker's local task set.
pub fn batch_on_this_worker() {
    let started = WORKER.try_with(|worker| {
        let Ok(mut worker) = worker.try_borrow_mut() else {
            return;
        };
        if worker.flusher.is_some() {
            return;
        }
        let notify = Rc::new(Notify::new());
        worker.flusher = Some(notify.clone());
        drop(worker);
        actix_web::rt::spawn(flush_task(notify));
    });
    let _ = started;
}

/// Writes this thread's pending lines each time the first of a batch wakes it; by then the tasks
/// that were ready before have run.
async fn flush_task(notify: Rc<Notify>) {
    struct Stopped;
    impl Drop for Stopped {
        // The event loop is stopping: later lines on this thread are written directly.
        fn drop(&mut self) {
            let _ = WORKER.try_with(|worker| {
                if let Ok(mut worker) = worker.try_borrow_mut() {
                    worker.flusher = None;
                }
            });
            flush_this_thread();
        }
    }
    let _stopped = Stopped;
    loop {
        notify.notified().await;
        flush_this_thread();
    }
}

fn flush_this_thread() {
    let pending: Vec<Arc<Pending>> = WORKER
        .try_with(|worker| {
            worker
                .try_borrow()
                .map(|w| w.pending.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    for p in pending {
        p.flush();
    }
}

/// Writes every thread's pending lines now. The logger does it before each synchronous line;
/// call it before the process exits outside the normal shutdown (which writes them anyway).
pub fn flush_all() {
    flush_pending(None);
}

/// Writes the pending lines of every thread for `sink`, or for every sink.
fn flush_pending(sink: Option<&Arc<Sink>>) {
    let all: Vec<Arc<Pending>> = match PENDING.lock() {
        Ok(all) => all
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|p| sink.is_none_or(|sink| Arc::ptr_eq(&p.sink, sink)))
            .collect(),
        Err(_) => return,
    };
    for pending in all {
        pending.flush();
    }
}

/// On panic, write what is pending before the process may abort. Only `try_lock`: the panic may
/// have happened while this thread held one of the locks.
fn install_panic_flush() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Ok(all) = PENDING.try_lock() {
                for pending in all.iter().filter_map(Weak::upgrade) {
                    if let (Ok(mut lines), Ok(mut sink)) =
                        (pending.lines.try_lock(), pending.sink.0.try_lock())
                    {
                        // Counts what it cannot write, as every other path does.
                        sink.write_lines(&lines);
                        lines.clear();
                    }
                }
            }
            previous(info);
        }));
    });
}

/// An in-memory sink whose contents can be read while the logger keeps writing (tests, benchmarks).
#[derive(Clone, Default)]
pub struct SharedBuffer(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// The lines written so far, after every worker's pending lines were written.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        flush_all();
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn text(&self) -> String {
        flush_all();
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

    #[test]
    fn values_of_every_kind_are_valid_json_equal_to_what_was_logged() {
        let buffer = SharedBuffer::default();
        let log = logger(Box::new(buffer.clone()), slog::Level::Info);
        let hostile = [
            "plain",
            "",
            "quote \" and backslash \\",
            "control \u{0}\u{1}\t\n\r\u{1f} end",
            "unicode é ü 漢字 🦀 \u{7f} \u{2028}",
            "long and plain: the quick brown fox jumps over the lazy dog",
            "long, special at the very end ........................\"",
            "long, control in the middle ............\u{8}.............",
        ];
        for text in hostile {
            info!(log, "{}", text; "value" => text, "count" => 7u8, "big" => u128::MAX,
                "negative" => -3i64, "ratio" => 0.25f64, "nan" => f64::NAN, "inf" => f32::INFINITY,
                "flag" => false, "letter" => '"', "missing" => None::<&str>, "unit" => (),
                "formatted" => format_args!("{}-{}", text, 1));
        }
        let text = buffer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), hostile.len(), "one line per record:\n{text}");
        for (line, expected) in lines.iter().zip(hostile) {
            let value: serde_json::Value = serde_json::from_str(line).expect("valid JSON");
            assert_eq!(value["message"], expected, "{line}");
            assert_eq!(value["value"], expected, "{line}");
            assert_eq!(value["formatted"], format!("{expected}-1"), "{line}");
            assert_eq!(value["count"], 7);
            // Beyond what serde_json reads back exactly: the text itself.
            assert!(line.contains(&format!("\"big\":{},", u128::MAX)), "{line}");
            assert_eq!(value["negative"], -3);
            assert_eq!(value["ratio"], 0.25);
            assert!(value["nan"].is_null() && value["inf"].is_null(), "{line}");
            assert_eq!(value["flag"], false);
            assert_eq!(value["letter"], "\"");
            assert!(value["missing"].is_null() && value["unit"].is_null());
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds_and_follow_the_clock() {
        let mut clock = Clock::default();
        let mut first = Vec::new();
        clock.write_now(&mut first);
        let text: String = serde_json::from_slice(&first).expect("a JSON string");
        let parsed = OffsetDateTime::parse(&text, &Rfc3339).expect("RFC 3339");
        let now = OffsetDateTime::now_utc();
        assert!((now - parsed).abs() < time::Duration::seconds(2), "{text}");
        assert_eq!(text.len(), "2026-01-01T00:00:00.000000Z".len(), "{text}");
        // A cached second from the past is replaced, not reused.
        clock.second = Some(0);
        let mut again = Vec::new();
        clock.write_now(&mut again);
        let again: String = serde_json::from_slice(&again).expect("a JSON string");
        assert!(!again.starts_with("1970"), "{again}");
    }

    #[test]
    fn a_value_that_logs_while_it_is_formatted_does_not_break_the_line() {
        struct Noisy(Logger);
        impl std::fmt::Display for Noisy {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                info!(self.0, "from inside a value");
                f.write_str("noisy")
            }
        }
        let buffer = SharedBuffer::default();
        let log = logger_with(Box::new(buffer.clone()), slog::Level::Info, LogWrite::Sync);
        info!(log, "outer"; "value" => %Noisy(log.clone()));
        let lines = buffer.lines();
        let messages: Vec<_> = lines.iter().map(|l| l["message"].clone()).collect();
        assert_eq!(
            messages,
            ["from inside a value", "outer"],
            "{}",
            buffer.text()
        );
        assert_eq!(lines[1]["value"], "noisy");
    }

    /// Counts the writes that reach the sink: one `flush` ends each `write_lines`.
    #[derive(Clone, Default)]
    struct CountingSink {
        bytes: Arc<Mutex<Vec<u8>>>,
        batches: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl CountingSink {
        fn batches(&self) -> usize {
            self.batches.load(std::sync::atomic::Ordering::SeqCst)
        }
        fn messages(&self) -> Vec<String> {
            let bytes = self.bytes.lock().expect("bytes").clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
                    v["message"].as_str().unwrap_or_default().to_string()
                })
                .collect()
        }
    }

    impl Write for CountingSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes.lock().expect("bytes").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.batches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    /// A sink that fails while `broken` is set, as stdout does when its pipe is closed.
    #[derive(Clone, Default)]
    struct BreakableSink {
        inner: CountingSink,
        broken: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Write for BreakableSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.inner.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }

    #[test]
    fn a_failing_sink_drops_and_counts_lines_and_logging_goes_on() {
        for mode in [LogWrite::Sync, LogWrite::Batched] {
            let sink = BreakableSink::default();
            let log = logger_with(Box::new(sink.clone()), slog::Level::Info, mode);
            actix_web::rt::System::new().block_on(async {
                batch_on_this_worker();
                info!(log, "before");
                tokio::task::yield_now().await;
                sink.broken.store(true, std::sync::atomic::Ordering::SeqCst);
                let dropped_before = lines_dropped();
                // Would panic through slog's Fuse if a write error escaped the drain.
                for i in 0..3 {
                    info!(log, "lost {}", i);
                }
                tokio::task::yield_now().await;
                assert!(
                    lines_dropped() >= dropped_before + 3,
                    "{mode:?}: the lost lines are counted"
                );
                sink.broken
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                info!(log, "after");
                tokio::task::yield_now().await;
            });
            assert_eq!(sink.inner.messages(), ["before", "after"], "{mode:?}");
        }
    }

    /// Accepts `budget` more bytes, then fails every write until given a new budget.
    #[derive(Clone, Default)]
    struct ShortSink {
        bytes: Arc<Mutex<Vec<u8>>>,
        budget: Arc<Mutex<Option<usize>>>,
    }

    impl Write for ShortSink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut budget = self.budget.lock().expect("budget");
            let n = match *budget {
                None => buf.len(),
                Some(0) => return Err(std::io::ErrorKind::StorageFull.into()),
                Some(left) => buf.len().min(left),
            };
            if let Some(left) = budget.as_mut() {
                *left -= n;
            }
            self.bytes
                .lock()
                .expect("bytes")
                .extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_cut_by_a_failing_write_is_ended_before_the_next_one() {
        let sink = ShortSink::default();
        let log = logger_with(Box::new(sink.clone()), slog::Level::Info, LogWrite::Sync);
        let dropped_before = lines_dropped();
        info!(log, "one");
        *sink.budget.lock().expect("budget") = Some(40); // the next line stops after 40 bytes
        info!(log, "two");
        info!(log, "three");
        *sink.budget.lock().expect("budget") = None;
        info!(log, "four");
        let text = String::from_utf8(sink.bytes.lock().expect("bytes").clone()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        let parsed: Vec<serde_json::Value> = lines
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let messages: Vec<_> = parsed.iter().map(|l| l["message"].clone()).collect();
        assert_eq!(messages, ["one", "four"], "{text}");
        assert_eq!(
            lines.len(),
            3,
            "one cut line of its own between them: {text}"
        );
        assert!(text.ends_with('\n'));
        assert!(
            lines_dropped() >= dropped_before + 2,
            "two and three are counted"
        );
    }

    #[test]
    fn a_value_that_cannot_be_formatted_costs_its_field_not_the_line() {
        struct Failing;
        impl std::fmt::Display for Failing {
            fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Err(std::fmt::Error)
            }
        }
        let buffer = SharedBuffer::default();
        let log = logger_with(Box::new(buffer.clone()), slog::Level::Info, LogWrite::Sync);
        info!(log, "kept"; "detail" => %Failing, "status" => 200u16, "ratio" => 0.1f32);
        let lines = buffer.lines();
        assert_eq!(lines.len(), 1, "{}", buffer.text());
        assert_eq!(lines[0]["message"], "kept");
        assert_eq!(lines[0]["detail"], UNFORMATTABLE);
        assert_eq!(lines[0]["status"], 200);
        assert!(
            buffer.text().contains("\"ratio\":0.1,") || buffer.text().contains("\"ratio\":0.1}")
        );
    }

    #[test]
    fn a_huge_formatted_value_does_not_stay_allocated_on_the_thread() {
        let buffer = SharedBuffer::default();
        let log = logger_with(Box::new(buffer.clone()), slog::Level::Info, LogWrite::Sync);
        let big = "x".repeat(4 * MAX_PENDING_BYTES);
        info!(log, "big"; "value" => format_args!("{big}"));
        let (line, scratch) = LINE.with(|b| {
            let b = b.borrow();
            (b.line.capacity(), b.scratch.capacity())
        });
        assert!(
            line <= MAX_PENDING_BYTES && scratch <= MAX_PENDING_BYTES,
            "{line} {scratch}"
        );
        assert_eq!(
            buffer.lines()[0]["value"].as_str().map(str::len),
            Some(big.len())
        );
    }

    #[test]
    fn the_panic_hook_counts_what_it_cannot_write() {
        let sink = BreakableSink::default();
        let log = logger_with(Box::new(sink.clone()), slog::Level::Info, LogWrite::Batched);
        sink.broken.store(true, std::sync::atomic::Ordering::SeqCst);
        let dropped_before = lines_dropped();
        let worker_log = log.clone();
        let panicked = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                batch_on_this_worker();
                info!(worker_log, "pending 1");
                info!(worker_log, "pending 2");
                panic!("handler bug");
            })
        })
        .join();
        assert!(panicked.is_err());
        assert!(lines_dropped() >= dropped_before + 2);
        assert!(sink.inner.messages().is_empty());
    }

    #[test]
    fn log_write_setting_parses() {
        assert_eq!("batched".parse(), Ok(LogWrite::Batched));
        assert_eq!("SYNC".parse(), Ok(LogWrite::Sync));
        assert!("async".parse::<LogWrite>().is_err());
        assert_eq!(LogWrite::default(), LogWrite::Batched);
    }

    #[test]
    fn sync_mode_writes_each_line_before_the_call_returns() {
        let sink = CountingSink::default();
        let log = logger_with(Box::new(sink.clone()), slog::Level::Info, LogWrite::Sync);
        actix_web::rt::System::new().block_on(async {
            batch_on_this_worker();
            for i in 0..5 {
                info!(log, "line"; "n" => i);
                assert_eq!(sink.batches(), i + 1, "written at once");
            }
        });
    }

    #[test]
    fn a_worker_writes_the_lines_of_one_turn_together_after_its_ready_tasks() {
        let sink = CountingSink::default();
        let log = logger_with(Box::new(sink.clone()), slog::Level::Info, LogWrite::Batched);
        actix_web::rt::System::new().block_on(async {
            batch_on_this_worker();
            // Ten requests ready in the same turn, each logging one line, then an observer that
            // was ready before the first line woke the flush task.
            for i in 0..10 {
                let log = log.clone();
                actix_web::rt::spawn(async move { info!(log, "request {}", i) });
            }
            let observer = {
                let sink = sink.clone();
                actix_web::rt::spawn(async move { sink.batches() })
            };
            assert_eq!(
                observer.await.expect("observer"),
                0,
                "nothing written while tasks were ready"
            );
            tokio::task::yield_now().await;
            assert_eq!(sink.batches(), 1, "one write for the turn");
            let expected: Vec<String> = (0..10).map(|i| format!("request {i}")).collect();
            assert_eq!(sink.messages(), expected);

            // The next turn is a batch of its own.
            info!(log, "later");
            tokio::task::yield_now().await;
            assert_eq!(sink.batches(), 2);
        });
    }

    #[test]
    fn a_line_written_directly_goes_after_what_workers_logged_before() {
        let sink = CountingSink::default();
        let log = logger_with(Box::new(sink.clone()), slog::Level::Info, LogWrite::Batched);
        let worker_log = log.clone();
        let (logged_tx, logged_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                batch_on_this_worker();
                info!(worker_log, "from the worker");
                logged_tx.send(()).expect("send");
                // Blocks the worker's event loop: its flush task cannot run meanwhile.
                done_rx.recv().expect("recv");
            })
        });
        logged_rx.recv().expect("worker logged");
        assert!(sink.messages().is_empty(), "still pending on the worker");
        info!(log, "from the main thread");
        assert_eq!(sink.messages(), ["from the worker", "from the main thread"]);
        done_tx.send(()).expect("send");
        worker.join().expect("worker");
    }

    #[test]
    fn pending_lines_survive_a_worker_that_panics_or_stops() {
        let sink = CountingSink::default();
        let log = logger_with(Box::new(sink.clone()), slog::Level::Info, LogWrite::Batched);
        let worker_log = log.clone();
        let panicked = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                batch_on_this_worker();
                info!(worker_log, "before the panic");
                panic!("handler bug");
            })
        })
        .join();
        assert!(panicked.is_err());
        assert_eq!(sink.messages(), ["before the panic"]);

        let worker_log = log.clone();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                batch_on_this_worker();
                info!(worker_log, "last line before the event loop ends");
            })
        })
        .join()
        .expect("worker");
        assert_eq!(
            sink.messages(),
            ["before the panic", "last line before the event loop ends"]
        );
    }

    #[test]
    fn a_worker_that_never_yields_still_writes_past_the_size_bound() {
        let sink = CountingSink::default();
        let log = logger_with(Box::new(sink.clone()), slog::Level::Info, LogWrite::Batched);
        actix_web::rt::System::new().block_on(async {
            batch_on_this_worker();
            let filler = "x".repeat(1_000);
            for _ in 0..(MAX_PENDING_BYTES / 1_000 + 1) {
                info!(log, "big"; "filler" => &filler);
            }
            // At least the write at the bound (a flush from elsewhere in the process may add one).
            assert!(
                sink.batches() >= 1,
                "written at the bound, without yielding"
            );
        });
    }
}
