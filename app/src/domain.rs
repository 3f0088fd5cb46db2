//! Users and the rules their fields obey. Validation collects every field error at once so a client
//! can fix a request in one round trip.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::problem::FieldError;

pub const NAME_MAX_CHARS: usize = 100;
pub const EMAIL_MAX_CHARS: usize = 254;
pub const PAGE_SIZE_DEFAULT: u32 = 20;
pub const PAGE_SIZE_MAX: u32 = 100;

/// A stored user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct User {
    #[schema(example = 1, minimum = 1)]
    pub id: i64,
    #[schema(example = "Ada Lovelace")]
    pub name: String,
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// Whether a character is refused in names and emails: control characters (Cc), format characters
/// (Cf: zero-width spaces and joiners, bidi embeddings, overrides and isolates, tags, the BOM), line
/// and paragraph separators (Zl, Zp), private-use characters (Co), noncharacters, the
/// default-ignorable code points (which renderers show as nothing: Hangul fillers, variation
/// selectors, the combining grapheme joiner) and the blank braille pattern U+2800. None of them is
/// visible, and each can make two strings that look the same compare different, or reorder what a
/// reader sees. The joiners U+200C and U+200D and the emoji variation selector U+FE0F are refused
/// too, although some scripts and emoji sequences use them: telling a needed joiner from a hidden
/// one takes per-script rules (RFC 5892's CONTEXTJ), and names read fine without them.
pub fn is_refused_char(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
    ) || is_default_ignorable(c)
        || is_noncharacter(c)
        || c == '\u{2800}'
}

/// Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, unchanged since
/// Unicode 9 but for U+180F added in 14); unicode-properties does not provide it.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// The 66 noncharacters: U+FDD0..U+FDEF and the last two code points of every plane.
fn is_noncharacter(c: char) -> bool {
    let n = c as u32;
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// Combining marks (Mn, Mc, Me): a name needs at least one character that is not one, so a lone
/// accent is not a name.
fn is_mark(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark
    )
}

/// The body of a regular-expression character class listing every refused character, generated
/// from the same Unicode data as [`is_refused_char`]: BMP ranges as `\uXXXX` escapes, astral ranges
/// as the characters themselves (which Python's `re` and ECMA-262 with the `u` flag both read).
fn refused_class() -> &'static str {
    static CLASS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLASS.get_or_init(|| character_class(is_refused_char))
}

/// As [`refused_class`], for the refused characters and the combining marks.
fn refused_or_mark_class() -> &'static str {
    static CLASS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CLASS.get_or_init(|| character_class(|c| is_refused_char(c) || is_mark(c)))
}

fn character_class(member: impl Fn(char) -> bool) -> String {
    let mut ranges: Vec<(char, char)> = Vec::new();
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        if !member(c) {
            continue;
        }
        match ranges.last_mut() {
            Some((_, end)) if (*end as u32) + 1 == c as u32 => *end = c,
            _ => ranges.push((c, c)),
        }
    }
    let item = |c: char| {
        if (c as u32) <= 0xFFFF {
            format!("\\u{:04x}", c as u32)
        } else {
            c.to_string()
        }
    };
    ranges
        .into_iter()
        .map(|(start, end)| {
            if start == end {
                item(start)
            } else {
                format!("{}-{}", item(start), item(end))
            }
        })
        .collect()
}

/// The name pattern of the OpenAPI document: no refused character, and at least one that is
/// neither white space nor a combining mark. The same rule as [`check_name`].
pub fn name_pattern() -> String {
    let r = refused_class();
    let base = refused_or_mark_class();
    format!("^[^{r}]*[^\\s{base}][^{r}]*$")
}

/// The email pattern of the OpenAPI document: local@domain.tld, no white space, `<`, `>` or
/// refused character. The same rule as [`check_email`].
pub fn email_pattern() -> String {
    let r = refused_class();
    format!("^[^@\\s<>{r}]{{1,64}}@(?:[^@\\s<>.{r}]+\\.)+[^@\\s<>.{r}]+$")
}

/// The key under which emails are unique: Unicode compatibility caseless form (NFKC with full case
/// folding: the Unicode Standard, section 3.13, D146), so full-width letters, ligatures and case variants of an address
/// already taken are refused as duplicates; the domain part is compared in its IDNA ASCII form.
pub fn email_key(email: &str) -> String {
    let (local, domain) = email.rsplit_once('@').unwrap_or((email, ""));
    // The domain as DNS sees it (UTS #46 ToASCII: `bücher.de` and `xn--bcher-kva.de` are one
    // domain); a domain IDNA cannot convert is compared by its folded form.
    let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| compatibility_fold(domain));
    format!("{}@{domain}", compatibility_fold(local))
}

fn compatibility_fold(text: &str) -> String {
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    text.chars()
        .nfd()
        .default_case_fold()
        .nfkd()
        .default_case_fold()
        .nfkd()
        .nfc()
        .collect()
}

/// A JSON body that must be an object. serde's derived structs also accept an array (fields by
/// position), which the OpenAPI document does not allow.
pub struct JsonObject<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(std::marker::PhantomData))
            .map(JsonObject)
    }
}

/// Body of `POST /api/users` and `PUT /api/users/{id}`: every field is required.
///
/// Fields are `Option` so that every missing field is reported at once (422), but `null` is refused
/// like any other wrong type (400).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Display name; leading and trailing white space is dropped.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, example = "Ada Lovelace", min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// E-mail address, unique regardless of case; stored in lower case.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, example = "ada@example.com", max_length = 254)]
    pub email: Option<String>,
}

/// Body of `PATCH /api/users/{id}`: only the fields present change; at least one must be.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Display name; leading and trailing white space is dropped.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, example = "Ada King", min_length = 1, max_length = 100)]
    pub name: Option<String>,
    /// E-mail address, unique regardless of case; stored in lower case.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, example = "ada.king@example.com", max_length = 254)]
    pub email: Option<String>,
}

/// A field that, when present, must be a string: `null` is a type error, absence is `None`.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    String::deserialize(deserializer).map(Some)
}

/// A validated name and e-mail address, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidUser {
    pub name: String,
    pub email: String,
}

/// Validated changes of a PATCH.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ValidPatch {
    pub name: Option<String>,
    pub email: Option<String>,
}

impl UserInput {
    pub fn validate(self) -> Result<ValidUser, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name =
            required("name", self.name, &mut errors).and_then(|n| check_name(n, &mut errors));
        let email =
            required("email", self.email, &mut errors).and_then(|e| check_email(e, &mut errors));
        match (name, email) {
            (Some(name), Some(email)) if errors.is_empty() => Ok(ValidUser { name, email }),
            _ => Err(errors),
        }
    }
}

impl UserPatch {
    pub fn validate(self) -> Result<ValidPatch, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.name.is_none() && self.email.is_none() {
            errors.push(field_error(
                "name",
                "required",
                "give at least one of name and email",
            ));
            return Err(errors);
        }
        let name = self.name.and_then(|n| check_name(n, &mut errors));
        let email = self.email.and_then(|e| check_email(e, &mut errors));
        if errors.is_empty() {
            Ok(ValidPatch { name, email })
        } else {
            Err(errors)
        }
    }
}

fn field_error(field: &str, code: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_string(),
        code: code.to_string(),
        message: message.to_string(),
    }
}

fn required(field: &str, value: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    if value.is_none() {
        errors.push(field_error(field, "required", "this field is required"));
    }
    value
}

fn check_name(raw: String, errors: &mut Vec<FieldError>) -> Option<String> {
    if raw.chars().count() > NAME_MAX_CHARS {
        errors.push(field_error(
            "name",
            "too_long",
            &format!("name must be at most {NAME_MAX_CHARS} characters"),
        ));
        return None;
    }
    if raw.chars().any(is_refused_char) {
        errors.push(field_error(
            "name",
            "invalid_characters",
            "name must not contain invisible characters: control, format (zero-width, bidi), separator, private-use, default-ignorable or blank characters",
        ));
        return None;
    }
    let name = raw.trim();
    if !name.chars().any(|c| !c.is_whitespace() && !is_mark(c)) {
        errors.push(field_error(
            "name",
            "empty",
            "name must hold a character that is neither white space nor a combining mark",
        ));
        return None;
    }
    Some(name.to_string())
}

/// A deliberately plain check, the same as [`email_pattern`] (local@domain.tld, no white space or
/// control characters): the address is lower-cased so uniqueness is case-insensitive.
fn check_email(raw: String, errors: &mut Vec<FieldError>) -> Option<String> {
    let email = raw.to_lowercase();
    if email.chars().count() > EMAIL_MAX_CHARS {
        errors.push(field_error(
            "email",
            "too_long",
            &format!("email must be at most {EMAIL_MAX_CHARS} characters"),
        ));
        return None;
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local.chars().count() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
                && email
                    .chars()
                    .all(|c| !c.is_whitespace() && !is_refused_char(c) && c != '<' && c != '>')
                && !domain.split('.').any(str::is_empty)
        }
        None => false,
    };
    if !valid {
        errors.push(field_error(
            "email",
            "invalid_format",
            "email must look like name@example.com",
        ));
        return None;
    }
    Some(email)
}

/// Query of `GET /api/users`: keyset pagination, so page N costs the same as page 1.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(minimum = 0)]
    pub cursor: Option<i64>,
}

impl PageQuery {
    pub fn validate(&self) -> Result<(u32, i64), Vec<FieldError>> {
        let mut errors = Vec::new();
        let limit = self.limit.unwrap_or(PAGE_SIZE_DEFAULT);
        if limit == 0 || limit > PAGE_SIZE_MAX {
            errors.push(field_error(
                "limit",
                "out_of_range",
                &format!("limit must be between 1 and {PAGE_SIZE_MAX}"),
            ));
        }
        let cursor = self.cursor.unwrap_or(0);
        if cursor < 0 {
            errors.push(field_error(
                "cursor",
                "out_of_range",
                "cursor must not be negative",
            ));
        }
        if errors.is_empty() {
            Ok((limit, cursor))
        } else {
            Err(errors)
        }
    }
}

/// One page of users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    /// The page size used.
    pub limit: u32,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: Option<&str>, email: Option<&str>) -> UserInput {
        UserInput {
            name: name.map(str::to_string),
            email: email.map(str::to_string),
        }
    }

    #[test]
    fn valid_input_is_trimmed_and_lowercased() {
        let user = input(Some("  Ada "), Some("Ada@Example.COM"))
            .validate()
            .expect("valid");
        assert_eq!(user.name, "Ada");
        assert_eq!(user.email, "ada@example.com");
    }

    #[test]
    fn every_field_error_is_reported_at_once() {
        let errors = input(None, Some("not-an-email")).validate().unwrap_err();
        let fields: Vec<_> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(fields, [("name", "required"), ("email", "invalid_format")]);
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in [
            "a@b", "@b.c", "a@.b.c", "a@b.c.", "a b@c.d", "a@b@c.d", "a@b..c", "<a@b.c>", "",
            " a@b.co", "a@b.co\n",
        ] {
            assert!(input(Some("x"), Some(bad)).validate().is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(input(Some("x"), Some(&long)).validate().is_err());
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(input(Some(&"é".repeat(100)), Some("a@b.co"))
            .validate()
            .is_ok());
        assert!(input(Some(&"é".repeat(101)), Some("a@b.co"))
            .validate()
            .is_err());
        assert!(input(Some("   "), Some("a@b.co")).validate().is_err());
        assert!(input(Some("a\u{0}b"), Some("a@b.co")).validate().is_err());
    }

    #[test]
    fn patch_needs_a_field_and_validates_those_given() {
        let empty = UserPatch {
            name: None,
            email: None,
        }
        .validate()
        .unwrap_err();
        assert_eq!(empty[0].code, "required");
        let patch = UserPatch {
            name: None,
            email: Some("X@Y.ORG".into()),
        }
        .validate()
        .expect("valid");
        assert_eq!(
            patch,
            ValidPatch {
                name: None,
                email: Some("x@y.org".into())
            }
        );
    }

    #[test]
    fn page_size_is_bounded() {
        let q = |limit, cursor| PageQuery { limit, cursor }.validate();
        assert_eq!(q(None, None).expect("default"), (20, 0));
        assert_eq!(q(Some(100), Some(5)).expect("max"), (100, 5));
        assert!(q(Some(0), None).is_err());
        assert!(q(Some(101), None).is_err());
        assert!(q(None, Some(-1)).is_err());
    }
}
