//! Requests the HTTP layer refuses before any middleware runs: a malformed head (bad syntax,
//! `Content-Length` with `Transfer-Encoding`, more than 96 headers), a head over the buffer limit,
//! and a head that does not arrive in time. actix-http answers these itself with a bare 400, 431 or
//! 408 and offers no hook to change the response, so they carry no problem body, request id or
//! security headers. What it does offer is its own diagnostics, emitted through `tracing` and, with
//! no tracing subscriber installed, forwarded to the `log` facade. This module is that facade's
//! backend: it turns the dispatcher's events into a counter by reason
//! (`http_requests_refused_before_routing_total`) and a JSON warning line, so smugglers and
//! scanners are seen. The client address is not known at that point; the ingress logs it.
//!
//! The event texts and the line of the head-timeout event are those of actix-http 3.x
//! (`h1/dispatcher.rs`); integration tests fail if an upgrade changes them.

use std::sync::{Mutex, OnceLock, Weak};

use actix_web::web;
use slog::{error, warn};

use crate::state::AppState;

const DISPATCHER: &str = "actix_http::h1::dispatcher";
/// `trace!("timed out on slow request; replying with 408 and closing connection")`.
const HEAD_TIMEOUT_MESSAGE: &str = "timed out on slow request; replying with 408";
/// Its line in actix-http 3.20's `h1/dispatcher.rs`. Trace events are frequent, and only this one
/// is formatted to compare its text; the line is checked first because it costs nothing.
const HEAD_TIMEOUT_LINE: u32 = 1074;

struct Bridge;

static BRIDGE: Bridge = Bridge;
static SUBSCRIBERS: Mutex<Vec<Weak<AppState>>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Sends the HTTP layer's refusals to `state`'s metrics and log from now on.
pub fn subscribe(state: &web::Data<AppState>) {
    let installed = *INSTALLED.get_or_init(|| {
        let ok = log::set_logger(&BRIDGE).is_ok();
        if ok {
            log::set_max_level(log::LevelFilter::Trace);
        }
        ok
    });
    if !installed {
        warn!(state.logger, "another log backend is installed: requests refused before routing are not counted";
            "event" => "refused_request_accounting_unavailable");
        return;
    }
    let mut subscribers = SUBSCRIBERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    subscribers.retain(|s| s.strong_count() > 0);
    subscribers.push(std::sync::Arc::downgrade(&state.clone().into_inner()));
}

/// What one `log` record means for us.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Refused(&'static str, String),
    /// Another warning or error of the HTTP layer, passed on.
    Other(log::Level, String),
    Ignore,
}

fn classify(record: &log::Record<'_>) -> Event {
    let target = record.target();
    match record.level() {
        log::Level::Trace => {
            if target == DISPATCHER && record.line() == Some(HEAD_TIMEOUT_LINE) {
                let text = record.args().to_string();
                if text.starts_with(HEAD_TIMEOUT_MESSAGE) {
                    return Event::Refused("head_timeout", text);
                }
            }
            Event::Ignore
        }
        level @ (log::Level::Error | log::Level::Warn) => {
            let text = record.args().to_string();
            if let Some(cause) = text.strip_prefix("stream error: request parse error: ") {
                let reason = if cause.starts_with("message head is too large") {
                    "head_too_large"
                } else {
                    "malformed"
                };
                Event::Refused(reason, cause.to_string())
            } else if text.starts_with("stream error: I/O error") {
                // The client went away: nothing to see.
                Event::Ignore
            } else {
                Event::Other(level, text)
            }
        }
        _ => Event::Ignore,
    }
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let target = metadata.target();
        if !target.starts_with("actix_") {
            return false;
        }
        metadata.level() <= log::Level::Warn
            || (metadata.level() == log::Level::Trace && target == DISPATCHER)
    }

    fn log(&self, record: &log::Record<'_>) {
        // The dispatcher traces several times per request: the one trace that matters is known
        // by its line, checked before anything that costs more.
        match record.level() {
            log::Level::Trace if record.line() != Some(HEAD_TIMEOUT_LINE) => return,
            log::Level::Info | log::Level::Debug => return,
            _ => {}
        }
        if !self.enabled(record.metadata()) {
            return;
        }
        let event = classify(record);
        if event == Event::Ignore {
            return;
        }
        let subscribers: Vec<_> = SUBSCRIBERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for state in subscribers {
            match &event {
                Event::Refused(reason, detail) => {
                    state
                        .metrics
                        .refused_early
                        .with_label_values(&[reason])
                        .inc();
                    warn!(state.logger, "request refused before routing";
                        "event" => "request_refused",
                        "reason" => *reason,
                        "detail" => detail.chars().take(200).collect::<String>());
                }
                Event::Other(level, text) => {
                    let text: String = text.chars().take(500).collect();
                    if *level == log::Level::Error {
                        error!(state.logger, "HTTP layer error"; "event" => "http_layer", "target" => record.target(), "detail" => text);
                    } else {
                        warn!(state.logger, "HTTP layer warning"; "event" => "http_layer", "target" => record.target(), "detail" => text);
                    }
                }
                Event::Ignore => {}
            }
        }
    }

    fn flush(&self) {}
}
