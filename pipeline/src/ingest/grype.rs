//! `grype -o json` (anchore/grype grype/presenter/models): `matches[]`, each a `vulnerability`
//! (id, severity, cvss[], fix {versions, state}), its `relatedVulnerabilities` (the CVE behind a
//! GHSA or distribution advisory) and the `artifact` (name, version, type, purl, locations). OS
//! packages are container findings, the rest sca. `descriptor.db` records the database's build
//! time (`built`, or `status.built` since the v6 database). `ignoredMatches` are left out.

use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{json_borrowed, none_readable, not_a_report, purl_type, title, Parsed};
use crate::error::Result;
use crate::model::{AdvisoryDb, Category, RawFinding, Severity};

#[derive(Deserialize)]
struct Document<'a> {
    #[serde(borrow)]
    matches: Option<Vec<&'a RawValue>>,
    #[serde(default)]
    descriptor: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(default)]
    name: String,
    #[serde(default)]
    db: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    vulnerability: Vulnerability,
    #[serde(default)]
    related_vulnerabilities: Vec<Related>,
    artifact: Artifact,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vulnerability {
    id: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    cvss: Vec<Cvss>,
    #[serde(default)]
    fix: Option<Fix>,
    #[serde(default)]
    data_source: Option<String>,
}

#[derive(Deserialize)]
struct Related {
    id: String,
}

#[derive(Deserialize)]
struct Cvss {
    #[serde(default)]
    vector: Option<String>,
}

#[derive(Deserialize)]
struct Fix {
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    purl: Option<String>,
    #[serde(default)]
    locations: Vec<ArtifactLocation>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    #[serde(default)]
    path: String,
}

const OS_TYPES: &[&str] = &["deb", "rpm", "apk", "alpm", "portage", "linux-kernel"];

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    const EXPECTED: &str = "an object with \"matches\" (grype -o json)";
    if super::first_byte(bytes) != Some(b'{') {
        let _: Value = super::json(file, bytes)?;
        return Err(not_a_report(file, "grype JSON", EXPECTED));
    }
    let document: Document = json_borrowed(file, bytes)?;
    let Some(matches) = document.matches else {
        return Err(not_a_report(file, "grype JSON", EXPECTED));
    };
    let mut parsed = Parsed::default();
    if let Some(db) = document.descriptor.as_ref().and_then(|d| d.db.as_ref()) {
        let status = db.get("status").unwrap_or(db);
        let built = status
            .get("built")
            .and_then(Value::as_str)
            .map(str::to_string);
        let schema = status
            .get("schemaVersion")
            .map(|v| v.to_string().trim_matches('"').to_string());
        parsed.databases.push(AdvisoryDb {
            tool: document.descriptor.as_ref().map_or("grype".into(), |d| {
                if d.name.is_empty() {
                    "grype".into()
                } else {
                    d.name.clone()
                }
            }),
            name: format!(
                "grype vulnerability database{}",
                schema.map(|s| format!(" (schema {s})")).unwrap_or_default()
            ),
            commit: status
                .get("checksum")
                .and_then(Value::as_str)
                .map(str::to_string),
            updated: built,
        });
    }
    let read = super::results::<Match>(bytes, &matches, "match", &mut parsed);
    if read.is_empty() && !matches.is_empty() {
        return Err(none_readable(
            file,
            "grype",
            "match",
            matches.len(),
            &parsed.warnings,
        ));
    }
    for (_, m) in read {
        let v = m.vulnerability;
        let a = m.artifact;
        let category = if OS_TYPES.contains(&a.kind.as_str()) {
            Category::Container
        } else {
            Category::Sca
        };
        let severity = v
            .severity
            .as_deref()
            .and_then(Severity::from_label)
            .filter(|s| *s != Severity::Info)
            .or_else(|| {
                v.cvss
                    .iter()
                    .filter_map(|c| c.vector.as_deref().and_then(Severity::from_cvss_vector))
                    .max()
            })
            .unwrap_or(Severity::Info);
        let text = v
            .description
            .clone()
            .unwrap_or_else(|| format!("{} in {}", v.id, a.name));
        let mut f = RawFinding::new("grype", category, severity, &v.id, &title(&text))
            .in_package(
                &a.name,
                a.version.as_deref(),
                &purl_type(&a.kind),
                a.purl.as_deref(),
            )
            .with_ids(
                std::iter::once(v.id.clone())
                    .chain(m.related_vulnerabilities.into_iter().map(|r| r.id)),
            )
            .fixed_by(v.fix.map(|f| f.versions).unwrap_or_default());
        if category == Category::Sca {
            if let Some(path) = a
                .locations
                .first()
                .map(|l| l.path.trim_start_matches('/'))
                .filter(|p| !p.is_empty())
            {
                f = f.at(path, None, None);
            }
        }
        f.description = v.description;
        f.help_uri = v.data_source.or_else(|| v.urls.into_iter().next());
        parsed.findings.push(f);
    }
    Ok(parsed)
}
