//! Requests the HTTP layer refuses before any middleware runs: a malformed head (bad syntax,
//! `Content-Length` with `Transfer-Encoding`, more than 96 headers), a head over the buffer limit,
//! and a head that does not arrive in time. actix-http answers these itself with a bare 400, 431 or
//! 408 and offers no hook to change the response, so they carry no problem body, request id or
//! security headers. What it does offer is its own diagnostics, emitted through `tracing`. This
//! module is a `tracing` subscriber for them (and a `log` backend for crates that use `log`): it
//! turns the dispatcher's events into a counter by reason
//! (`http_requests_refused_before_routing_total`) and a JSON warning line, so smugglers and
//! scanners are seen. The client address is not known at that point; the ingress logs it.
//!
//! The subscriber declares interest, once per call site, in warnings and errors of `actix_*` and in
//! the one trace event that reports a head timeout: the dispatcher's other traces, several per
//! request, then cost a load and a branch each.
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
/// Its line in actix-http 3.20's `h1/dispatcher.rs`: only this trace event is of interest.
const HEAD_TIMEOUT_LINE: u32 = 1074;

struct Bridge;

static BRIDGE: Bridge = Bridge;
static SUBSCRIBERS: Mutex<Vec<Weak<AppState>>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Sends the HTTP layer's refusals to `state`'s metrics and log from now on.
pub fn subscribe(state: &web::Data<AppState>) {
    let installed = *INSTALLED.get_or_init(|| {
        let dispatch = tracing_core::Dispatch::new(TracingBridge);
        let traced = tracing_core::dispatcher::set_global_default(dispatch).is_ok();
        if log::set_logger(&BRIDGE).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
        traced
    });
    if !installed {
        warn!(state.logger, "another tracing subscriber is installed: requests refused before routing are not counted";
            "event" => "refused_request_accounting_unavailable");
        return;
    }
    let mut subscribers = SUBSCRIBERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    subscribers.retain(|s| s.strong_count() > 0);
    subscribers.push(std::sync::Arc::downgrade(&state.clone().into_inner()));
}

/// Whether actix-http's events reach this module through its `tracing` subscriber (the process's
/// global one), rather than through the `log` fallback, which `tracing` uses only when no
/// subscriber is set.
pub fn receives_tracing_events() -> bool {
    tracing_core::dispatcher::has_been_set()
        && tracing_core::dispatcher::get_default(|dispatch| dispatch.is::<TracingBridge>())
}

/// What one `log` record means for us.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Refused(&'static str, String),
    /// Another warning or error of the HTTP layer, passed on.
    Other(log::Level, String),
    Ignore,
}

/// Whether an event of the HTTP layer can matter, from what is known before it is formatted.
fn of_interest(level: log::Level, target: &str, line: Option<u32>) -> bool {
    target.starts_with("actix_")
        && (level <= log::Level::Warn
            || (level == log::Level::Trace
                && line == Some(HEAD_TIMEOUT_LINE)
                && target == DISPATCHER))
}

fn classify(level: log::Level, text: String) -> Event {
    match level {
        log::Level::Trace => {
            if text.starts_with(HEAD_TIMEOUT_MESSAGE) {
                return Event::Refused("head_timeout", text);
            }
            Event::Ignore
        }
        log::Level::Error | log::Level::Warn => {
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

/// Counts and logs `event` for every running service.
fn report(event: Event, target: &str) {
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
                    error!(state.logger, "HTTP layer error"; "event" => "http_layer", "target" => target, "detail" => text);
                } else {
                    warn!(state.logger, "HTTP layer warning"; "event" => "http_layer", "target" => target, "detail" => text);
                }
            }
            Event::Ignore => {}
        }
    }
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        of_interest(metadata.level(), metadata.target(), None)
    }

    fn log(&self, record: &log::Record<'_>) {
        if of_interest(record.level(), record.target(), record.line()) {
            report(
                classify(record.level(), record.args().to_string()),
                record.target(),
            );
        }
    }

    fn flush(&self) {}
}

/// The `tracing` subscriber: interest in the events [`of_interest`] admits, none in spans.
struct TracingBridge;

fn log_level(level: &tracing_core::Level) -> log::Level {
    match *level {
        tracing_core::Level::ERROR => log::Level::Error,
        tracing_core::Level::WARN => log::Level::Warn,
        tracing_core::Level::INFO => log::Level::Info,
        tracing_core::Level::DEBUG => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

fn admits(metadata: &tracing_core::Metadata<'_>) -> bool {
    metadata.is_event()
        && of_interest(
            log_level(metadata.level()),
            metadata.target(),
            metadata.line(),
        )
}

/// An event's text as `tracing`'s own `log` output renders it: the message, then other fields.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl EventText {
    fn into_text(self) -> String {
        self.message + &self.fields
    }
}

impl tracing_core::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing_core::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = if field.name() == "message" {
            write!(self.message, "{value:?}")
        } else {
            write!(self.fields, " {}={value:?}", field.name())
        };
    }
}

impl tracing_core::Subscriber for TracingBridge {
    fn register_callsite(
        &self,
        metadata: &'static tracing_core::Metadata<'static>,
    ) -> tracing_core::Interest {
        if admits(metadata) {
            tracing_core::Interest::always()
        } else {
            tracing_core::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing_core::LevelFilter> {
        // The head-timeout event is a trace event.
        Some(tracing_core::LevelFilter::TRACE)
    }

    fn enabled(&self, metadata: &tracing_core::Metadata<'_>) -> bool {
        admits(metadata)
    }

    fn new_span(&self, _: &tracing_core::span::Attributes<'_>) -> tracing_core::span::Id {
        // Never called with interest in no span; an id is required all the same.
        tracing_core::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing_core::span::Id, _: &tracing_core::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing_core::span::Id, _: &tracing_core::span::Id) {}

    fn event(&self, event: &tracing_core::Event<'_>) {
        let metadata = event.metadata();
        let mut text = EventText::default();
        event.record(&mut text);
        report(
            classify(log_level(metadata.level()), text.into_text()),
            metadata.target(),
        );
    }

    fn enter(&self, _: &tracing_core::span::Id) {}

    fn exit(&self, _: &tracing_core::span::Id) {}
}
