//! Approvals of a policy change: SSH signatures (`ssh-keygen -Y sign`, OpenSSH's PROTOCOL.sshsig)
//! over the text `devsecops policy --message` prints for the change, verified against the keys of
//! an OpenSSH allowed signers file read from the base revision (ssh-keygen(1), ALLOWED SIGNERS).
//! The signature files travel with the change; the keys never do, so a change cannot approve
//! itself: a key it adds is not on the base, and a signature made for another change does not
//! verify against this one's text.
//!
//! Verification is RustCrypto's `ssh-key`. Ed25519 keys only, plain or on a FIDO token
//! (`sk-ssh-ed25519@openssh.com`): RSA verification would build the `rsa` crate, which carries an
//! unfixed timing advisory (RUSTSEC-2023-0071). Lines this module cannot honour (other key types,
//! `cert-authority`) are skipped with a notice: skipping a trust root only makes fewer approvals
//! valid.

use ssh_key::{HashAlg, PublicKey, SshSig};
use time::OffsetDateTime;

/// The signature namespace (`ssh-keygen -Y sign -n`): a signature made for anything else (git
/// commits use "git", files "file") never counts as an approval.
pub const NAMESPACE: &str = "devsecops-policy";

/// One usable line of an allowed signers file.
#[derive(Debug, Clone)]
pub struct Signer {
    /// ssh_config pattern-list of the identities this key speaks for (`@alice,@org/security`).
    pub principals: String,
    pub key: PublicKey,
    namespaces: Option<String>,
    valid_after: Option<OffsetDateTime>,
    valid_before: Option<OffsetDateTime>,
    pub line: usize,
}

/// An allowed signers file: its usable keys and what was skipped, line by line.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    pub signers: Vec<Signer>,
    pub skipped: Vec<String>,
}

/// A verified approval.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Approval {
    /// The signature file.
    pub file: String,
    /// The principals of the allowed signers line whose key made it.
    pub principals: String,
    /// The key's SHA-256 fingerprint, as ssh-keygen prints it.
    pub key: String,
}

impl AllowedSigners {
    pub fn parse(file: &str, text: &str, now: OffsetDateTime) -> Result<AllowedSigners, String> {
        let mut out = AllowedSigners::default();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_fields(line).map_err(|e| format!("{file}: line {n}: {e}"))?;
            if fields.len() < 3 {
                return Err(format!(
                    "{file}: line {n}: expected principals, [options,] key type and key"
                ));
            }
            let principals = fields[0].clone();
            let (options, key_at) = if is_key_type(&fields[1]) {
                (None, 1)
            } else {
                (Some(fields[1].as_str()), 2)
            };
            if fields.len() < key_at + 2 {
                return Err(format!("{file}: line {n}: no key after the options"));
            }
            let key_type = fields[key_at].as_str();
            if !matches!(key_type, "ssh-ed25519" | "sk-ssh-ed25519@openssh.com") {
                out.skipped.push(format!(
                    "{file}: line {n} skipped: {key_type} keys are not accepted (Ed25519 only)"
                ));
                continue;
            }
            let key_text = format!("{key_type} {}", fields[key_at + 1]);
            let key = PublicKey::from_openssh(&key_text)
                .map_err(|e| format!("{file}: line {n}: not an OpenSSH public key: {e}"))?;
            let mut signer = Signer {
                principals,
                key,
                namespaces: None,
                valid_after: None,
                valid_before: None,
                line: n,
            };
            let mut skip = None;
            for option in options.map(split_options).unwrap_or_default() {
                let (name, value) = match option.split_once('=') {
                    Some((k, v)) => (
                        k.to_ascii_lowercase(),
                        Some(v.trim_matches('"').to_string()),
                    ),
                    None => (option.to_ascii_lowercase(), None),
                };
                match (name.as_str(), value) {
                    ("cert-authority", None) => {
                        skip = Some("certificate authorities are not supported".to_string())
                    }
                    ("namespaces", Some(v)) => signer.namespaces = Some(v),
                    ("valid-after", Some(v)) => {
                        signer.valid_after = Some(
                            timestamp(&v)
                                .map_err(|e| format!("{file}: line {n}: valid-after: {e}"))?,
                        )
                    }
                    ("valid-before", Some(v)) => {
                        signer.valid_before = Some(
                            timestamp(&v)
                                .map_err(|e| format!("{file}: line {n}: valid-before: {e}"))?,
                        )
                    }
                    (other, _) => {
                        return Err(format!("{file}: line {n}: unknown option {other:?}"));
                    }
                }
            }
            if let Some(ns) = &signer.namespaces {
                if !pattern_list_matches(ns, NAMESPACE) {
                    skip = Some(format!("its namespaces do not include {NAMESPACE}"));
                }
            }
            if signer.valid_after.is_some_and(|t| now < t)
                || signer.valid_before.is_some_and(|t| now > t)
            {
                skip = Some("it is not valid now (valid-after/valid-before)".to_string());
            }
            match skip {
                Some(why) => out.skipped.push(format!("{file}: line {n} skipped: {why}")),
                None => out.signers.push(signer),
            }
        }
        Ok(out)
    }

    /// Verifies one signature file's content over `message`: the approval, or why it is none.
    pub fn verify(&self, file: &str, signature: &[u8], message: &[u8]) -> Result<Approval, String> {
        let text = std::str::from_utf8(signature)
            .map_err(|_| format!("{file}: not an SSH signature (not text)"))?;
        let sig = SshSig::from_pem(text.trim())
            .map_err(|e| format!("{file}: not an SSH signature: {e}"))?;
        let fingerprint = PublicKey::from(sig.public_key().clone())
            .fingerprint(HashAlg::Sha256)
            .to_string();
        let signers: Vec<&Signer> = self
            .signers
            .iter()
            .filter(|s| s.key.key_data() == sig.public_key())
            .collect();
        if signers.is_empty() {
            return Err(format!(
                "{file}: signed with key {fingerprint}, which the base's allowed signers do not list"
            ));
        }
        if sig.namespace() != NAMESPACE {
            return Err(format!(
                "{file}: signed for namespace {:?}, not {NAMESPACE:?}",
                sig.namespace()
            ));
        }
        let mut last = String::new();
        for signer in signers {
            match signer.key.verify(NAMESPACE, message, &sig) {
                Ok(()) => {
                    return Ok(Approval {
                        file: file.to_string(),
                        principals: signer.principals.clone(),
                        key: fingerprint,
                    })
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!(
            "{file}: does not sign this change (made for another change, or altered): {last}"
        ))
    }
}

impl Approval {
    /// Whether this approval speaks for `identity` (an owner as CODEOWNERS or `approved_by`
    /// write it), by the allowed signers line's principal patterns.
    pub fn speaks_for(&self, identity: &str) -> bool {
        pattern_list_matches(&self.principals, identity)
    }
}

/// ssh_config PATTERNS: a comma-separated list of `*`/`?` wildcards, any `!pattern` that matches
/// refuses. Compared without ASCII case, as GitHub compares owners.
pub fn pattern_list_matches(list: &str, subject: &str) -> bool {
    let subject = subject.to_ascii_lowercase();
    let mut matched = false;
    for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        if wildcard(pattern.to_ascii_lowercase().as_bytes(), subject.as_bytes()) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

fn is_key_type(field: &str) -> bool {
    field.starts_with("ssh-")
        || field.starts_with("ecdsa-sha2-")
        || field.starts_with("sk-ssh-")
        || field.starts_with("sk-ecdsa-")
}

/// Splits a line on spaces outside double quotes; quotes are kept inside the fields except
/// around a whole field (quoted principals).
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    fields.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err("unterminated quote".into());
    }
    if !current.is_empty() {
        fields.push(current);
    }
    if let Some(first) = fields.first_mut() {
        if first.len() >= 2 && first.starts_with('"') && first.ends_with('"') {
            *first = first[1..first.len() - 1].to_string();
        }
    }
    Ok(fields)
}

/// Splits options on commas outside double quotes.
fn split_options(options: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in options.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out.into_iter().filter(|o| !o.is_empty()).collect()
}

/// `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]`. ssh-keygen reads times without `Z` in the local time
/// zone; here every time is UTC, the zone CI machines run in.
fn timestamp(text: &str) -> Result<OffsetDateTime, String> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    if !digits.chars().all(|c| c.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(format!(
            "{text:?} is not YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z]"
        ));
    }
    let num = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<u32>().ok());
    let bad = || format!("{text:?} is not a valid date and time");
    let year = num(0..4).ok_or_else(bad)?;
    let month = num(4..6)
        .and_then(|m| time::Month::try_from(m as u8).ok())
        .ok_or_else(bad)?;
    let day = num(6..8).ok_or_else(bad)?;
    let date = time::Date::from_calendar_date(year as i32, month, day as u8).map_err(|_| bad())?;
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (num(8..10).ok_or_else(bad)?, num(10..12).ok_or_else(bad)?, 0),
        _ => (
            num(8..10).ok_or_else(bad)?,
            num(10..12).ok_or_else(bad)?,
            num(12..14).ok_or_else(bad)?,
        ),
    };
    let time = time::Time::from_hms(hour as u8, minute as u8, second as u8).map_err(|_| bad())?;
    Ok(date.with_time(time).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEYOrZHx96czF/0HzCoRotFX/KszMzes4aY/TwCGF6P4";

    #[test]
    fn lines_with_options_quotes_and_comments_parse() {
        let now = time::macros::datetime!(2026-06-01 0:00 UTC);
        let text = format!(
            "# trust roots\n\n\"@alice,@org/security\" {KEY} alice's laptop\n\
             @bob namespaces=\"file,devsecops-*\",valid-before=\"20270101Z\" {KEY}\n\
             @carol namespaces=\"git\" {KEY}\n\
             @dave valid-after=\"20300101\" {KEY}\n\
             *@example.com cert-authority {KEY}\n\
             @erin ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBTLSDCBgzALKZE9eQKZRDOhDXp1m6oZCdWstRw7cBaGXndd35BV3EQxSUDT1sMe3gT/RemPW1PVMSUGucPl2CA=\n"
        );
        let s = AllowedSigners::parse("allowed_signers", &text, now).expect("parses");
        let names: Vec<_> = s.signers.iter().map(|s| s.principals.as_str()).collect();
        assert_eq!(names, ["@alice,@org/security", "@bob"]);
        let skipped = s.skipped.join("\n");
        for expect in [
            "line 5 skipped: its namespaces",
            "line 6 skipped: it is not valid now",
            "line 7 skipped: certificate",
            "line 8 skipped: ecdsa-sha2-nistp256 keys",
        ] {
            assert!(skipped.contains(expect), "{expect}: {skipped}");
        }
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line() {
        let now = OffsetDateTime::now_utc();
        for (text, expect) in [
            ("@a\n", "line 1: expected principals"),
            (
                "@a ssh-ed25519 AAAAnotbase64!\n",
                "not an OpenSSH public key",
            ),
            (&format!("@a frobnicate {KEY}\n") as &str, "unknown option"),
            (&format!("@a valid-after=\"2026\" {KEY}\n"), "valid-after"),
            ("\"@a ssh-ed25519 x\n", "unterminated quote"),
        ] {
            let err = AllowedSigners::parse("s", text, now).expect_err(text);
            assert!(err.contains(expect), "{text}: {err}");
        }
    }

    #[test]
    fn principal_patterns_follow_ssh_config() {
        assert!(pattern_list_matches(
            "@alice,@org/security",
            "@Org/Security"
        ));
        assert!(pattern_list_matches("*@example.com", "alice@example.com"));
        assert!(!pattern_list_matches(
            "*@example.com,!mallory@*",
            "mallory@example.com"
        ));
        assert!(pattern_list_matches("@a?ice", "@alice"));
        assert!(!pattern_list_matches("@alice", "@alicex"));
        assert!(!pattern_list_matches("", "@alice"));
    }

    #[test]
    fn timestamps_are_utc_dates_or_times() {
        assert_eq!(
            timestamp("20270131").expect("date"),
            time::macros::datetime!(2027-01-31 0:00 UTC)
        );
        assert_eq!(
            timestamp("202701311230Z").expect("time"),
            time::macros::datetime!(2027-01-31 12:30 UTC)
        );
        assert!(timestamp("20271332").is_err());
    }
}
