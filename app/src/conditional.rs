//! Representations as HTTP caches and careful clients expect them: validators (`ETag`,
//! `Last-Modified`), conditional requests (RFC 9110 section 13) and content codings (gzip, br, zstd).
//!
//! Handlers put the validators on their 200 responses ([`set_validators`]); the middleware then
//! calls [`finish`], which picks the content coding, makes the ETag name it, and answers 304 (or
//! 412) from the request's preconditions, so every resource with an ETag gets the same rules.
//! Conditional writes evaluate the same [`Preconditions`] against the stored row inside the write
//! transaction (`db::Database::patch_user`).
//!
//! Compression: only 200 responses of at least [`COMPRESSION_MIN_BYTES`], in the coding the client
//! asked for (`Accept-Encoding`; none asked, none given, so a scrape that does not ask for gzip gets
//! plain text), and never to a request carrying credentials (`Authorization` or `Cookie`). BREACH
//! needs a secret and attacker-chosen bytes compressed together in one response, observed in size.
//! Whatever answers a request without credentials is readable by anyone who sends that request, so
//! it holds nothing to steal; responses to credentialed requests (every write, `/debug/memory`) may,
//! and they are also the ones that echo what a client sent, so they are never compressed.
//! actix-http's encoder does the coding; actix-web's `Compress` middleware is not used because it
//! knows no size threshold or per-response rule, and its compress features would also decompress
//! request bodies before the body limit applies.
//!
//! A strong ETag names one representation, so a compressed one carries the coding in its tag
//! (`"3-1733061234567890-gzip"`), as RFC 9110 section 8.8.3 requires; conditional writes accept a
//! tag with a coding suffix as the version it names.

use std::time::{Duration, SystemTime};

use actix_http::encoding::Encoder;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{
    self, AcceptEncoding, ContentEncoding, Encoding, EntityTag, Header, HeaderMap, HeaderValue,
    HttpDate, IfModifiedSince, IfUnmodifiedSince,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpMessage, HttpResponse, ResponseError};
use time::OffsetDateTime;

use crate::problem::ApiError;

/// Smaller bodies are sent as they are: a response that fits in one TCP segment gains nothing.
pub const COMPRESSION_MIN_BYTES: u64 = 1024;

/// The codings offered, besides identity.
const CODINGS: &[ContentEncoding] = &[
    ContentEncoding::Brotli,
    ContentEncoding::Zstd,
    ContentEncoding::Gzip,
];

/// `Cache-Control` of representations with validators: caches may keep them but must revalidate
/// each time (an If-None-Match round trip answered 304); `private` keeps users' emails out of
/// shared caches.
pub const REVALIDATE: &str = "private, no-cache";

/// Marks a response whose `Last-Modified` is informational only: a page of a list, where a deleted
/// user changes the page without changing any remaining row's date. `If-Modified-Since` is not
/// evaluated for it (the ETag is).
#[derive(Clone, Copy)]
pub struct DateIsNotAValidator;

/// The ETag of a stored user: its row version and `updated_at`, which every write changes. The
/// version alone would repeat after a restore from a backup; the microsecond timestamp alone after
/// a clock step.
pub fn user_etag(version: i64, updated_at: OffsetDateTime) -> EntityTag {
    let micros = updated_at.unix_timestamp_nanos() / 1_000;
    EntityTag::new_strong(format!("{version}-{micros}"))
}

/// The ETag of a body: the first 128 bits of its SHA-256, as hex.
pub fn body_etag(body: &[u8]) -> EntityTag {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    EntityTag::new_strong(hex)
}

/// Puts the validators on a response that carries the representation.
pub fn set_validators(
    response: &mut HttpResponse,
    etag: &EntityTag,
    last_modified: Option<OffsetDateTime>,
) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag.to_string()) {
        headers.insert(header::ETAG, value);
    }
    if let Some(at) = last_modified {
        let date = HttpDate::from(SystemTime::from(at));
        if let Ok(value) = HeaderValue::from_str(&date.to_string()) {
            headers.insert(header::LAST_MODIFIED, value);
        }
    }
}

/// Lets caches keep a GET response on the condition that they revalidate it ([`REVALIDATE`]).
pub fn revalidate(response: &mut HttpResponse) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(REVALIDATE));
}

/// The condition a conditional write checks against the stored row; `None` without preconditions.
pub fn write_condition(
    preconditions: &Preconditions,
) -> Option<impl Fn(&crate::db::StoredUser) -> bool + '_> {
    (!preconditions.is_empty()).then_some(move |current: &crate::db::StoredUser| {
        let etag = user_etag(current.version, current.user.updated_at);
        preconditions.evaluate(
            false,
            &etag,
            Some(SystemTime::from(current.user.updated_at)),
            true,
        ) == Verdict::Proceed
    })
}

/// `If-Match` or `If-None-Match`: `*` or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    Any,
    Tags(Vec<EntityTag>),
}

/// The preconditions a request carries. Entity tags are parsed strictly (a malformed one is a 400,
/// not a tag silently dropped); a date that is not a valid HTTP-date is ignored, as RFC 9110
/// section 13.1.3 requires.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    pub if_match: Option<TagList>,
    pub if_none_match: Option<TagList>,
    pub if_unmodified_since: Option<SystemTime>,
    pub if_modified_since: Option<SystemTime>,
}

/// Handlers take the preconditions the middleware parsed (none when it did not run).
impl actix_web::FromRequest for Preconditions {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(req
            .extensions()
            .get::<Preconditions>()
            .cloned()
            .unwrap_or_default()))
    }
}

/// What the preconditions say about a representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Proceed,
    /// GET or HEAD: the client's copy is current (304).
    NotModified,
    /// 412.
    Failed,
}

impl Preconditions {
    pub fn parse<M: HttpMessage>(message: &M) -> Result<Self, String> {
        let headers = message.headers();
        let mut preconditions = Preconditions {
            if_match: tag_list(headers, &header::IF_MATCH)?,
            if_none_match: tag_list(headers, &header::IF_NONE_MATCH)?,
            ..Preconditions::default()
        };
        if headers.contains_key(header::IF_UNMODIFIED_SINCE) {
            preconditions.if_unmodified_since =
                IfUnmodifiedSince::parse(message).ok().map(|d| d.0.into());
        }
        if headers.contains_key(header::IF_MODIFIED_SINCE) {
            preconditions.if_modified_since =
                IfModifiedSince::parse(message).ok().map(|d| d.0.into());
        }
        Ok(preconditions)
    }

    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_unmodified_since.is_none()
            && self.if_modified_since.is_none()
    }

    /// RFC 9110 section 13.2.2, in its order, for a resource whose current representation has
    /// `etag` and `last_modified` (`date_validates` false when that date is informational).
    /// `safe` is GET or HEAD. Tags sent back with a coding suffix name the same version.
    pub fn evaluate(
        &self,
        safe: bool,
        etag: &EntityTag,
        last_modified: Option<SystemTime>,
        date_validates: bool,
    ) -> Verdict {
        let last_modified = last_modified.filter(|_| date_validates);
        match &self.if_match {
            Some(TagList::Any) => {}
            Some(TagList::Tags(tags)) => {
                if !tags
                    .iter()
                    .any(|t| t.strong_eq(etag) || without_coding(t).strong_eq(etag))
                {
                    return Verdict::Failed;
                }
            }
            None => {
                if let (Some(limit), Some(modified)) = (self.if_unmodified_since, last_modified) {
                    if seconds(modified) > seconds(limit) {
                        return Verdict::Failed;
                    }
                }
            }
        }
        let refused = if safe {
            Verdict::NotModified
        } else {
            Verdict::Failed
        };
        match &self.if_none_match {
            Some(TagList::Any) => return refused,
            Some(TagList::Tags(tags)) => {
                if tags
                    .iter()
                    .any(|t| t.weak_eq(etag) || (!safe && without_coding(t).weak_eq(etag)))
                {
                    return refused;
                }
            }
            None => {
                if let (true, Some(since), Some(modified)) =
                    (safe, self.if_modified_since, last_modified)
                {
                    if seconds(modified) <= seconds(since) {
                        return Verdict::NotModified;
                    }
                }
            }
        }
        Verdict::Proceed
    }
}

/// HTTP dates have one-second resolution.
fn seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// The tag without the `-gzip`/`-br`/`-zstd` suffix [`finish`] adds for a compressed response.
fn without_coding(tag: &EntityTag) -> EntityTag {
    for coding in CODINGS {
        if let Some(base) = tag.tag().strip_suffix(&format!("-{}", coding.as_str())) {
            return EntityTag::new(tag.weak, base.to_string());
        }
    }
    tag.clone()
}

/// The grammar of `If-Match` and `If-None-Match` as a regular expression, for the OpenAPI document
/// (RFC 9110: `"*" / 1#entity-tag`, lists in the recipient form of section 5.6.1.2, which allows
/// empty elements; etagc limited to visible ASCII). [`tag_list`] accepts exactly these strings, as
/// a property test checks.
pub const TAG_LIST_PATTERN: &str =
    r#"^[\t ]*(\*|(,[\t ]*)*(W/)?"[!#-~]*"([\t ]*,([\t ]*(W/)?"[!#-~]*")?)*)[\t ]*$"#;

/// Parses `If-Match` or `If-None-Match` ([`TAG_LIST_PATTERN`]); several field lines are combined as
/// one list. Hand parsed because actix-web's parser splits at every comma (valid inside a tag) and
/// drops what it cannot read, which would turn a malformed `If-Match` into "matches nothing".
fn tag_list(headers: &HeaderMap, name: &header::HeaderName) -> Result<Option<TagList>, String> {
    let mut lines = headers.get_all(name);
    let Some(first) = lines.next() else {
        return Ok(None);
    };
    let mut combined = first.as_bytes().to_vec();
    for line in lines {
        combined.extend_from_slice(b", ");
        combined.extend_from_slice(line.as_bytes());
    }
    parse_tag_list(&combined)
        .map(Some)
        .map_err(|problem| format!("{name}: {problem}"))
}

pub fn parse_tag_list(value: &[u8]) -> Result<TagList, &'static str> {
    let value = trim_end(trim_start(value));
    if value == b"*" {
        return Ok(TagList::Any);
    }
    let mut rest = value;
    while let Some(after) = rest.strip_prefix(b",") {
        rest = trim_start(after);
    }
    let mut tags = vec![entity_tag(&mut rest)?];
    loop {
        rest = trim_start(rest);
        if rest.is_empty() {
            return Ok(TagList::Tags(tags));
        }
        rest = rest
            .strip_prefix(b",")
            .ok_or("expected a comma between entity tags")?;
        let after = trim_start(rest);
        if !after.is_empty() && after[0] != b',' {
            rest = after;
            tags.push(entity_tag(&mut rest)?);
        }
    }
}

/// `[ "W/" ] DQUOTE *etagc DQUOTE` at the start of `rest`, which moves past it.
fn entity_tag(rest: &mut &[u8]) -> Result<EntityTag, &'static str> {
    let (weak, body) = match rest.strip_prefix(b"W/") {
        Some(body) => (true, body),
        None => (false, *rest),
    };
    let body = body
        .strip_prefix(b"\"")
        .ok_or("an entity tag must be quoted (\"...\" or W/\"...\"), or the value must be *")?;
    let end = body
        .iter()
        .position(|b| *b == b'"')
        .ok_or("unterminated entity tag")?;
    let tag = &body[..end];
    if !tag.iter().all(|b| matches!(b, 0x21 | 0x23..=0x7e)) {
        return Err("entity tags hold visible ASCII characters only");
    }
    *rest = &body[end + 1..];
    Ok(EntityTag::new(
        weak,
        String::from_utf8_lossy(tag).into_owned(),
    ))
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let skip = bytes
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    &bytes[skip..]
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let keep = bytes.len()
        - bytes
            .iter()
            .rev()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
    &bytes[..keep]
}

/// What the middleware knows of a request when the response comes back.
pub struct Negotiation {
    /// GET or HEAD.
    pub safe: bool,
    pub accept_encoding: Option<AcceptEncoding>,
    /// The request carried `Authorization` or `Cookie`.
    pub credentials: bool,
    pub preconditions: Preconditions,
}

impl Negotiation {
    pub fn of<M: HttpMessage>(message: &M, method: &Method, preconditions: Preconditions) -> Self {
        let headers = message.headers();
        Negotiation {
            safe: method == Method::GET || method == Method::HEAD,
            accept_encoding: if headers.contains_key(header::ACCEPT_ENCODING) {
                message.get_header::<AcceptEncoding>()
            } else {
                None
            },
            credentials: headers.contains_key(header::AUTHORIZATION)
                || headers.contains_key(header::COOKIE),
            preconditions,
        }
    }

    /// The coding for a compressible response: the client's preference among ours; identity when
    /// it asked for none, or for none of ours (also when it refused identity: a 406 for an
    /// encoding preference would cost more than it protects).
    fn coding(&self) -> ContentEncoding {
        let Some(accept) = &self.accept_encoding else {
            return ContentEncoding::Identity;
        };
        let supported: Vec<Encoding> = std::iter::once(Encoding::identity())
            .chain(CODINGS.iter().map(|c| Encoding::Known(*c)))
            .collect();
        match accept.negotiate(supported.iter()) {
            Some(Encoding::Known(coding)) => coding,
            _ => ContentEncoding::Identity,
        }
    }
}

/// Applies coding and conditional rules to a handler's response (see the module docs).
pub fn finish(
    response: ServiceResponse<BoxBody>,
    negotiation: &Negotiation,
) -> ServiceResponse<BoxBody> {
    if response.status() != StatusCode::OK {
        return response;
    }
    let compressible = !negotiation.credentials
        && !response.headers().contains_key(header::CONTENT_ENCODING)
        && match response.response().body().size() {
            actix_web::body::BodySize::Sized(n) => n >= COMPRESSION_MIN_BYTES,
            actix_web::body::BodySize::Stream => true,
            actix_web::body::BodySize::None => false,
        };
    let coding = if compressible {
        negotiation.coding()
    } else {
        ContentEncoding::Identity
    };
    let (req, mut res) = response.into_parts();
    if coding != ContentEncoding::Identity {
        if let Some(tag) = etag_of(res.headers()) {
            let coded = EntityTag::new(tag.weak, format!("{}-{}", tag.tag(), coding.as_str()));
            if let Ok(value) = HeaderValue::from_str(&coded.to_string()) {
                res.headers_mut().insert(header::ETAG, value);
            }
        }
    }

    // Writes evaluated their preconditions against the stored row, before writing; the ETag on
    // their response is the new one.
    if negotiation.safe && !negotiation.preconditions.is_empty() {
        if let Some(etag) = etag_of(res.headers()) {
            let last_modified = res
                .headers()
                .get(header::LAST_MODIFIED)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<HttpDate>().ok())
                .map(SystemTime::from);
            let date_validates = res.extensions().get::<DateIsNotAValidator>().is_none();
            match negotiation
                .preconditions
                .evaluate(true, &etag, last_modified, date_validates)
            {
                Verdict::Proceed => {}
                Verdict::NotModified => {
                    let mut not_modified = HttpResponse::NotModified().finish();
                    // RFC 9110 section 15.4.5: the fields a 200 would have carried for caches.
                    for name in [
                        header::ETAG,
                        header::CACHE_CONTROL,
                        header::CONTENT_LOCATION,
                    ] {
                        if let Some(value) = res.headers().get(&name) {
                            not_modified.headers_mut().insert(name, value.clone());
                        }
                    }
                    if compressible {
                        not_modified
                            .headers_mut()
                            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
                    }
                    return ServiceResponse::new(req, not_modified);
                }
                Verdict::Failed => {
                    let problem = ApiError::PreconditionFailed.error_response();
                    return ServiceResponse::new(req, problem);
                }
            }
        }
    }

    if coding == ContentEncoding::Identity {
        if compressible {
            // Another client's Accept-Encoding would get another representation.
            res.headers_mut()
                .append(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        return ServiceResponse::new(req, res);
    }
    // The encoder sets Content-Encoding and Vary and streams the coded body.
    ServiceResponse::new(req, res)
        .map_body(|head, body| Encoder::response(coding, head, body).boxed())
}

fn etag_of(headers: &HeaderMap) -> Option<EntityTag> {
    headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<EntityTag>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn parse(pairs: &[(&str, &str)]) -> Result<Preconditions, String> {
        let mut req = TestRequest::default();
        for (name, value) in pairs {
            req = req.append_header((*name, *value));
        }
        Preconditions::parse(&req.to_http_request())
    }

    #[test]
    fn entity_tag_lists_are_parsed_strictly() {
        let p = parse(&[("If-Match", r#""a", W/"b" ,"c,d""#)]).expect("valid");
        assert_eq!(
            p.if_match,
            Some(TagList::Tags(vec![
                EntityTag::new_strong("a".into()),
                EntityTag::new_weak("b".into()),
                EntityTag::new_strong("c,d".into()),
            ]))
        );
        assert_eq!(
            parse(&[("If-None-Match", " * ")])
                .expect("any")
                .if_none_match,
            Some(TagList::Any)
        );
        for bad in [
            "abc",
            r#""unterminated"#,
            r#""a" "b""#,
            r#"*, "a""#,
            "",
            r#""a b""#,
            ",",
        ] {
            assert!(parse(&[("If-Match", bad)]).is_err(), "{bad:?}");
        }
        let p = parse(&[("If-None-Match", r#", "a",, W/"b" ,"#)]).expect("empty list elements");
        assert_eq!(
            p.if_none_match,
            Some(TagList::Tags(vec![
                EntityTag::new_strong("a".into()),
                EntityTag::new_weak("b".into()),
            ]))
        );
        // Dates that are not HTTP-dates are ignored, not errors.
        let p = parse(&[("If-Modified-Since", "yesterday")]).expect("ignored");
        assert!(p.is_empty());
    }

    proptest::proptest! {
        /// The parser accepts exactly the strings the documented pattern matches: strings built
        /// from the pattern, and arbitrary ones near the grammar.
        #[test]
        fn the_parser_is_the_documented_pattern(
            built in proptest::string::string_regex(
                TAG_LIST_PATTERN.trim_start_matches('^').trim_end_matches('$')
            ).expect("pattern"),
            near in "[ \t,*W/\"a-c!#~\\x7f\\u{e9}]{0,12}",
        ) {
            let pattern = regex::Regex::new(TAG_LIST_PATTERN).expect("pattern");
            proptest::prop_assert!(parse_tag_list(built.as_bytes()).is_ok(), "{built:?}");
            proptest::prop_assert_eq!(
                parse_tag_list(near.as_bytes()).is_ok(),
                pattern.is_match(&near),
                "{:?}", near
            );
        }
    }

    #[test]
    fn evaluation_follows_rfc_9110_order() {
        let etag = EntityTag::new_strong("3-100".into());
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let later = t0 + Duration::from_secs(10);
        let with = |pairs: &[(&str, &str)]| parse(pairs).expect("valid");
        let eval = |p: &Preconditions, safe| p.evaluate(safe, &etag, Some(t0), true);

        assert_eq!(
            eval(&with(&[("If-Match", r#""3-100""#)]), false),
            Verdict::Proceed
        );
        assert_eq!(
            eval(&with(&[("If-Match", r#""3-100-gzip""#)]), false),
            Verdict::Proceed
        );
        assert_eq!(
            eval(&with(&[("If-Match", r#"W/"3-100""#)]), false),
            Verdict::Failed
        );
        assert_eq!(
            eval(&with(&[("If-Match", r#""2-99""#)]), false),
            Verdict::Failed
        );
        assert_eq!(eval(&with(&[("If-Match", "*")]), false), Verdict::Proceed);
        assert_eq!(
            eval(&with(&[("If-None-Match", r#"W/"3-100""#)]), true),
            Verdict::NotModified
        );
        assert_eq!(
            eval(&with(&[("If-None-Match", r#""3-100""#)]), false),
            Verdict::Failed
        );
        assert_eq!(
            eval(&with(&[("If-None-Match", "*")]), false),
            Verdict::Failed
        );
        assert_eq!(
            eval(&with(&[("If-None-Match", r#""x""#)]), true),
            Verdict::Proceed
        );

        let date = |at: SystemTime| HttpDate::from(at).to_string();
        let ims_later = with(&[("If-Modified-Since", &date(later))]);
        assert_eq!(eval(&ims_later, true), Verdict::NotModified);
        // If-None-Match wins over If-Modified-Since.
        let both = with(&[
            ("If-Modified-Since", &date(later)),
            ("If-None-Match", r#""x""#),
        ]);
        assert_eq!(eval(&both, true), Verdict::Proceed);
        // An informational date is no validator.
        assert_eq!(
            ims_later.evaluate(true, &etag, Some(t0), false),
            Verdict::Proceed
        );
        let ius_before = with(&[("If-Unmodified-Since", &date(t0 - Duration::from_secs(10)))]);
        assert_eq!(eval(&ius_before, false), Verdict::Failed);
        // If-Match wins over If-Unmodified-Since.
        let both = with(&[
            ("If-Unmodified-Since", &date(t0 - Duration::from_secs(10))),
            ("If-Match", r#""3-100""#),
        ]);
        assert_eq!(eval(&both, false), Verdict::Proceed);
    }
}
