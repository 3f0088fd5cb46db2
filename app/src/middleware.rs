//! The one middleware every request passes through, in this order: request id, header size limit,
//! per-client rate limit, time limit, problem+json for bodiless errors, security headers, metrics and
//! exactly one access-log line. One middleware rather than six keeps the per-request cost to a few
//! microseconds (see BENCHMARKS.md).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use slog::{error, info, o, warn, Logger};

use crate::client_address::client_address;
use crate::conditional::{self, Negotiation, Preconditions};
use crate::metrics::{method_label, UNMATCHED_ENDPOINT};
use crate::problem::{ApiError, Problem, PROBLEM_CONTENT_TYPE};
use crate::state::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest accepted X-Request-ID; longer or unusual values are replaced, not echoed.
pub const REQUEST_ID_MAX_LEN: usize = 128;

const READINESS_ENDPOINT: &str = "/ready";

/// Longest method token written to the access log: any token is valid HTTP, and a long one must not
/// become a long log line.
const METHOD_LOG_MAX_CHARS: usize = 32;

/// Paths the orchestrator and Prometheus poll: never rate limited, so a busy client cannot make a
/// healthy pod look dead.
const UNLIMITED_PATHS: &[&str] = &["/health", "/ready", "/metrics"];

/// The id of the current request, in request extensions: the client's when valid (see
/// [`is_valid_request_id`]), else a new UUID. Held inline, so taking it allocates nothing.
#[derive(Clone, Copy)]
pub struct RequestId {
    bytes: [u8; REQUEST_ID_MAX_LEN],
    len: u8,
}

impl RequestId {
    /// The client's id, if it is one we accept.
    fn from_client(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        if !is_valid_request_id(text) {
            return None;
        }
        let mut bytes = [0; REQUEST_ID_MAX_LEN];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Some(RequestId {
            bytes,
            len: text.len() as u8,
        })
    }

    fn generate() -> Self {
        let mut bytes = [0; REQUEST_ID_MAX_LEN];
        let len = uuid::Uuid::new_v4()
            .simple()
            .encode_lower(&mut bytes[..uuid::fmt::Simple::LENGTH])
            .len();
        RequestId {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

/// A logger carrying the request id, for every log line written while handling the request.
/// Built when a handler asks for it, not for every request.
#[derive(Clone)]
pub struct RequestLogger(pub Logger);

impl RequestLogger {
    /// The service's logger with the id of `req`, if the request passed through [`request_context`].
    pub fn of(req: &HttpRequest) -> Option<Self> {
        let id = *req.extensions().get::<RequestId>()?;
        let state = req.app_data::<web::Data<AppState>>()?;
        Some(RequestLogger(with_request_id(&state.logger, &id)))
    }
}

fn with_request_id(logger: &Logger, id: &RequestId) -> Logger {
    logger.new(o!("request_id" => id.as_str().to_string()))
}

impl FromRequest for RequestLogger {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let logger = RequestLogger::of(req).unwrap_or_else(|| {
            RequestLogger(
                req.app_data::<web::Data<AppState>>()
                    .map(|s| s.logger.clone())
                    .unwrap_or_else(|| Logger::root(slog::Discard, o!())),
            )
        });
        std::future::ready(Ok(logger))
    }
}

/// Accepts a client's request id when it is 1 to 128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= REQUEST_ID_MAX_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The client's address as [`crate::client_address`] determined it, in request extensions.
#[derive(Clone, Copy)]
pub struct ClientAddress(pub Option<IpAddr>);

/// The client address of a request that passed through [`request_context`]; the peer otherwise.
pub fn client_of(req: &HttpRequest) -> Option<IpAddr> {
    match req.extensions().get::<ClientAddress>() {
        Some(ClientAddress(ip)) => *ip,
        None => req.peer_addr().map(|addr| addr.ip()),
    }
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let settings = &state.settings;

    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| RequestId::from_client(v.as_bytes()))
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(request_id);
    // Lines the middleware itself writes besides the access line, which are rare.
    let logger = || with_request_id(&state.logger, &request_id);

    // Captured before the call: the request moves into the router, which needs it unshared.
    // Shared handles (method, URI, header value), cut to length only when the line is written.
    let info = RequestInfo {
        request_id,
        method: req.method().clone(),
        endpoint: req
            .match_pattern()
            .unwrap_or_else(|| UNMATCHED_ENDPOINT.to_string()),
        uri: req.uri().clone(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        client: client_address(
            req.peer_addr().map(|addr| addr.ip()),
            req.headers(),
            &settings.trusted_proxies,
            settings.forwarded_header,
            settings.forwarded_hops,
        ),
    };
    req.extensions_mut().insert(ClientAddress(info.client));
    // Counted and logged even if the client goes away and actix drops this future.
    let mut pending = Pending {
        state: &state,
        info,
        started,
        answered: false,
    };

    state.metrics.in_flight.inc();
    let _in_flight = InFlightGuard(&state.metrics.in_flight);

    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();

    // Preconditions are read once here: handlers of conditional writes take them from the request,
    // and `conditional::finish` applies them to GET and HEAD.
    let preconditions = Preconditions::parse(&req);
    let negotiation = Negotiation::of(
        &req,
        req.method(),
        preconditions.clone().unwrap_or_default(),
    );
    let encoded_body = req
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));

    let outcome = if header_bytes > settings.max_header_bytes {
        let problem = Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Some(format!(
                "request headers exceed {} bytes",
                settings.max_header_bytes
            )),
        );
        Ok(req.into_response(problem.into_response()))
    } else if let Some(retry_after) = rate_limited(&state, req.path(), pending.info.client) {
        state.metrics.rate_limited.inc();
        warn!(logger(), "rate limit exceeded";
            "event" => "rate_limited",
            "client_address" => LogIp(pending.info.client),
            "path" => pending.info.path());
        let error = ApiError::RateLimited {
            retry_after_secs: retry_after,
        };
        Ok(req.into_response(error.error_response()))
    } else if let Err(detail) = preconditions {
        Ok(req.into_response(ApiError::BadRequest(detail).error_response()))
    } else if encoded_body {
        Ok(req.into_response(ApiError::EncodedBody.error_response()))
    } else {
        let mut req = req;
        req.extensions_mut()
            .insert(negotiation.preconditions.clone());
        let body = track_body(&mut req);
        match tokio::time::timeout(settings.request_timeout, next.call(req)).await {
            Ok(Ok(response)) => Ok(response.map_into_boxed_body()),
            Ok(Err(err)) => Err(err),
            Err(_)
                if body
                    .as_ref()
                    .is_some_and(|done| !done.load(Ordering::Acquire)) =>
            {
                // The client did not send the body it announced: its fault, not an outage.
                info!(logger(), "request body did not arrive in time";
                    "event" => "request_body_timeout",
                    "timeout_ms" => settings.request_timeout.as_millis() as u64);
                Err(ApiError::RequestTimeout(format!(
                    "the request body did not arrive within {} ms",
                    settings.request_timeout.as_millis()
                ))
                .into())
            }
            Err(_) => {
                error!(logger(), "request timed out";
                    "event" => "request_timeout",
                    "timeout_ms" => settings.request_timeout.as_millis() as u64);
                Err(ApiError::Unavailable(format!(
                    "the request did not complete within {} ms",
                    settings.request_timeout.as_millis()
                ))
                .into())
            }
        }
    };

    let elapsed = started.elapsed();
    match outcome {
        Ok(response) => {
            let response = conditional::finish(response, &negotiation);
            let mut response = ensure_problem_body(response);
            add_headers(response.headers_mut(), &request_id, settings.hsts_max_age);
            pending.answered = true;
            finish(&state, &pending.info, response.status(), elapsed);
            Ok(response)
        }
        Err(err) => {
            // No request left to attach a response to: actix renders the error, and
            // `Answered` makes that rendering carry the same body shape and headers.
            let status = err.as_response_error().status_code();
            pending.answered = true;
            finish(&state, &pending.info, status, elapsed);
            Err(Answered {
                inner: err,
                request_id,
                hsts_max_age: settings.hsts_max_age,
            }
            .into())
        }
    }
}

/// When the request announces a body, wraps its payload so the time limit can tell a client that
/// stopped sending (408) from a server that stopped answering (503). The flag turns true when the
/// body has been read to its end or failed.
fn track_body(req: &mut ServiceRequest) -> Option<Arc<AtomicBool>> {
    let headers = req.headers();
    let announced = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0);
    if !announced {
        return None;
    }
    let done = Arc::new(AtomicBool::new(false));
    let (_, payload) = req.parts_mut();
    let inner = std::mem::replace(payload, Payload::None);
    *payload = Payload::from(Box::pin(TrackedBody {
        inner,
        done: done.clone(),
    })
        as std::pin::Pin<
            Box<dyn futures_core::Stream<Item = Result<web::Bytes, PayloadError>>>,
        >);
    Some(done)
}

struct TrackedBody {
    inner: Payload,
    done: Arc<AtomicBool>,
}

impl futures_core::Stream for TrackedBody {
    type Item = Result<web::Bytes, PayloadError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_next(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.done.store(true, Ordering::Release);
        }
        polled
    }
}

/// A request being handled. If its future is dropped before it answered (actix-http drops it when
/// the connection fails while it reads the request's body, and when a worker stops), it is still
/// counted and logged once where the logger can still write, with status 499 as nginx records it.
/// A client that disconnects while the handler runs is not noticed: actix-http reads nothing more
/// from an HTTP/1 connection until the response, so that request completes with its own status.
struct Pending<'a> {
    state: &'a AppState,
    info: RequestInfo,
    started: Instant,
    answered: bool,
}

/// Not an HTTP status: nginx's "client closed request", the convention log tools know.
const CLIENT_CLOSED_REQUEST: u16 = 499;

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.answered {
            if let Ok(status) = StatusCode::from_u16(CLIENT_CLOSED_REQUEST) {
                finish(self.state, &self.info, status, self.started.elapsed());
            }
        }
    }
}

/// What the access log and metrics need of a request, taken before the router consumes it.
struct RequestInfo {
    request_id: RequestId,
    /// As sent; cut to [`METHOD_LOG_MAX_CHARS`] for the log; metrics use [`method_label`].
    method: actix_web::http::Method,
    endpoint: String,
    uri: actix_web::http::Uri,
    user_agent: Option<HeaderValue>,
    client: Option<IpAddr>,
}

impl RequestInfo {
    fn path(&self) -> &str {
        truncate_chars(self.uri.path(), PATH_LOG_MAX_CHARS)
    }
}

/// Longest path and user agent written to the access log.
const PATH_LOG_MAX_CHARS: usize = 256;

/// The first `max` characters of `text`.
fn truncate_chars(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text; // no more characters than bytes
    }
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// A client address as a log value, without the formatting machinery for IPv4.
struct LogIp(Option<IpAddr>);

impl slog::Value for LogIp {
    fn serialize(
        &self,
        _: &slog::Record,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        match self.0 {
            None => serializer.emit_none(key),
            Some(IpAddr::V4(ip)) => {
                let mut text = [0u8; 15];
                let mut len = 0;
                let mut push = |digit: u8| {
                    text[len] = digit;
                    len += 1;
                };
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        push(b'.');
                    }
                    if octet >= 100 {
                        push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        push(b'0' + octet / 10 % 10);
                    }
                    push(b'0' + octet % 10);
                }
                serializer.emit_str(key, std::str::from_utf8(&text[..len]).unwrap_or_default())
            }
            Some(ip @ IpAddr::V6(_)) => serializer.emit_arguments(key, &format_args!("{ip}")),
        }
    }
}

fn finish(state: &AppState, info: &RequestInfo, status: StatusCode, elapsed: Duration) {
    state.metrics.observe_request(
        method_label(info.method.as_str()),
        &info.endpoint,
        status.as_str(),
        elapsed.as_secs_f64(),
    );
    access_log(&state.logger, info, status, elapsed);
}

/// An error that escaped the handlers, rendered as problem+json with the usual headers.
#[derive(Debug)]
struct Answered {
    inner: actix_web::Error,
    request_id: RequestId,
    hsts_max_age: Option<u64>,
}

impl std::fmt::Display for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl ResponseError for Answered {
    fn status_code(&self) -> StatusCode {
        self.inner.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let original = self.inner.error_response();
        let mut response = if original
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes())
        {
            original
        } else {
            problem_for(self.status_code(), &self.inner)
        };
        add_headers(response.headers_mut(), &self.request_id, self.hsts_max_age);
        response
    }
}

/// The rate limiter's key for a client: its IPv4 address, or the /64 network of its IPv6 address
/// (one subscriber's allocation: a client rotating addresses inside it is still one client). An
/// IPv4 client seen through a dual-stack socket (`::ffff:a.b.c.d`) is keyed by its IPv4 address:
/// as a /64 every such client would share one key.
pub fn rate_limit_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => client.to_canonical(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
    }
}

/// Seconds to wait when the client is over its quota, else `None`.
fn rate_limited(state: &AppState, path: &str, client: Option<IpAddr>) -> Option<u64> {
    let limiter = state.rate_limiter.as_ref()?;
    if UNLIMITED_PATHS.contains(&path) {
        return None;
    }
    let client = rate_limit_key(client?);
    match limiter.check_key(&client) {
        Ok(()) => None,
        Err(not_until) => {
            use governor::clock::Clock;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        }
    }
}

fn problem_for(status: StatusCode, err: &actix_web::Error) -> HttpResponse {
    let detail = if status.is_server_error() {
        None
    } else {
        Some(err.to_string().chars().take(200).collect())
    };
    Problem::new(status, detail).into_response()
}

/// Errors produced outside our handlers (routing's 405, actix's own 4xx) arrive without a problem
/// body; replace them so every error has the same shape.
fn ensure_problem_body(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    if is_problem {
        return response;
    }
    let (req, old) = response.into_parts();
    let mut replacement = Problem::new(status, None).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = old.headers().get(&name) {
            replacement.headers_mut().insert(name, value.clone());
        }
    }
    ServiceResponse::new(req, replacement)
}

fn add_headers(
    headers: &mut actix_web::http::header::HeaderMap,
    request_id: &RequestId,
    hsts_max_age: Option<u64>,
) {
    // Room for all of them at once rather than growing the map twice on the way.
    headers.reserve(8);
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if let Some(max_age) = hsts_max_age {
        if let Ok(value) = HeaderValue::from_str(&format!("max-age={max_age}; includeSubDomains")) {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, value);
        }
    }
}

fn access_log(logger: &Logger, info: &RequestInfo, status: StatusCode, elapsed: Duration) {
    // Group commit of this worker's log lines (LOG_WRITE=batched); a no-op after the first request.
    crate::telemetry::batch_on_this_worker();
    let user_agent = info
        .user_agent
        .as_ref()
        .map(|v| String::from_utf8_lossy(v.as_bytes()));
    macro_rules! log_at {
        ($level:ident) => {
            $level!(logger, "request completed";
                "request_id" => info.request_id.as_str(),
                "event" => "access",
                "method" => truncate_chars(info.method.as_str(), METHOD_LOG_MAX_CHARS),
                "route" => &info.endpoint,
                "path" => info.path(),
                "status" => status.as_u16(),
                "duration_ms" => elapsed.as_secs_f64() * 1_000.0,
                "user_agent" => user_agent.as_deref().map(|ua| truncate_chars(ua, PATH_LOG_MAX_CHARS)),
                "client_address" => LogIp(info.client))
        };
    }
    // A 5xx is an error, but for readiness: 503 there is a state the orchestrator polls (starting,
    // draining, database down), reported where it happens.
    if status.is_server_error() && info.endpoint != READINESS_ENDPOINT {
        log_at!(error);
    } else if status.is_server_error() {
        log_at!(warn);
    } else {
        log_at!(info);
    }
}

struct InFlightGuard<'a>(&'a prometheus::IntGauge);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_keys_group_an_ipv6_subscriber_and_keep_ipv4_clients_apart() {
        let key = |a: &str| rate_limit_key(a.parse().expect("address"));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            key("2001:db8:1:2::1"),
            "2001:db8:1:2::".parse::<IpAddr>().expect("net")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.1"), "192.0.2.1".parse::<IpAddr>().expect("v4"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        // Through a dual-stack socket: still one key per IPv4 client, the same as without it.
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
        assert_ne!(key("::ffff:192.0.2.1"), key("::ffff:192.0.2.2"));
    }

    #[test]
    fn client_addresses_in_the_log_read_as_rust_formats_them() {
        let buffer = crate::telemetry::SharedBuffer::default();
        let log = crate::telemetry::logger(Box::new(buffer.clone()), slog::Level::Info);
        let addresses = [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.100.255",
            "255.255.255.255",
            "1.22.203.4",
            "::1",
            "2001:db8::ff00:42:8329",
            "::ffff:192.0.2.1",
        ];
        for address in addresses {
            let ip: IpAddr = address.parse().expect("address");
            info!(log, "x"; "client_address" => LogIp(Some(ip)));
        }
        info!(log, "x"; "client_address" => LogIp(None));
        let logged: Vec<_> = buffer
            .lines()
            .iter()
            .map(|l| l["client_address"].clone())
            .collect();
        let mut expected: Vec<serde_json::Value> = addresses
            .iter()
            .map(|a| a.parse::<IpAddr>().expect("address").to_string().into())
            .collect();
        expected.push(serde_json::Value::Null);
        assert_eq!(logged, expected);
    }

    #[test]
    fn log_fields_are_cut_at_characters_not_bytes() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "abc");
        assert_eq!(truncate_chars("ééé", 2), "éé");
        assert_eq!(truncate_chars("日本語テキスト", 3), "日本語");
        assert_eq!(truncate_chars("", 0), "");
        let long = "ü".repeat(300);
        assert_eq!(
            truncate_chars(&long, PATH_LOG_MAX_CHARS).chars().count(),
            256
        );
    }

    #[test]
    fn request_ids_keep_a_valid_client_id_and_replace_anything_else() {
        let kept = RequestId::from_client(b"abc-123_X.y:z").expect("valid");
        assert_eq!(kept.as_str(), "abc-123_X.y:z");
        let longest = "a".repeat(REQUEST_ID_MAX_LEN);
        assert_eq!(
            RequestId::from_client(longest.as_bytes())
                .expect("valid")
                .as_str(),
            longest
        );
        for refused in [
            &b""[..],
            b"a b",
            b"\xff\xfe",
            "é".as_bytes(),
            "a".repeat(REQUEST_ID_MAX_LEN + 1).as_bytes(),
        ] {
            assert!(RequestId::from_client(refused).is_none(), "{refused:?}");
        }
        let generated = RequestId::generate();
        assert_eq!(generated.as_str().len(), 32);
        assert!(generated.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(generated.as_str(), RequestId::generate().as_str());
    }

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(is_valid_request_id("abc-123_X.y:z"));
        assert!(is_valid_request_id(&"a".repeat(REQUEST_ID_MAX_LEN)));
        assert!(!is_valid_request_id(&"a".repeat(REQUEST_ID_MAX_LEN + 1)));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id("a b"));
        assert!(!is_valid_request_id("a\"b"));
        assert!(!is_valid_request_id("é"));
    }
}
