//! CycloneDX JSON with a `vulnerabilities` array: each affected component is an sca finding. The
//! highest rating's severity wins (or its CVSS score); none means medium.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{json, title};
use crate::error::{Error, Result};
use crate::model::{Category, RawFinding, Severity};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bom {
    bom_format: String,
    #[serde(default)]
    components: Vec<Component>,
    #[serde(default)]
    vulnerabilities: Vec<Vulnerability>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Component {
    #[serde(default)]
    bom_ref: Option<String>,
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct Vulnerability {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    ratings: Vec<Rating>,
    #[serde(default)]
    affects: Vec<Affect>,
    #[serde(default)]
    cwes: Vec<u32>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Deserialize)]
struct Rating {
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    score: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Affect {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Deserialize)]
struct Reference {
    id: String,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Vec<RawFinding>> {
    let bom: Bom = json(file, bytes)?;
    if bom.bom_format != "CycloneDX" {
        return Err(Error::input(
            file,
            format!("bomFormat is {:?}, not CycloneDX", bom.bom_format),
        ));
    }
    let components: HashMap<&str, &Component> = bom
        .components
        .iter()
        .filter_map(|c| c.bom_ref.as_deref().map(|r| (r, c)))
        .collect();
    let mut out = Vec::new();
    for v in &bom.vulnerabilities {
        let severity = v
            .ratings
            .iter()
            .filter_map(|r| {
                r.severity
                    .as_deref()
                    .and_then(Severity::from_label)
                    .or(r.score.map(Severity::from_cvss))
            })
            .max()
            .unwrap_or(Severity::Medium);
        let ids = std::iter::once(v.id.clone())
            .chain(v.references.iter().map(|r| r.id.clone()))
            .chain(v.cwes.iter().map(|c| format!("CWE-{c}")));
        for affect in &v.affects {
            let (name, version, purl) = match components.get(affect.reference.as_str()) {
                Some(c) => (c.name.clone(), c.version.clone(), c.purl.clone()),
                None => (affect.reference.clone(), None, None),
            };
            let ecosystem = purl
                .as_deref()
                .and_then(|p| p.strip_prefix("pkg:"))
                .and_then(|p| p.split('/').next())
                .unwrap_or("generic")
                .to_string();
            let mut f = RawFinding::new(
                "cyclonedx",
                Category::Sca,
                severity,
                &v.id,
                &title(v.description.as_deref().unwrap_or(&v.id)),
            )
            .in_component(&name, version.as_deref(), &ecosystem)
            .with_ids(ids.clone());
            if let (Some(component), Some(purl)) = (f.component.as_mut(), purl) {
                component.purl = Some(purl);
            }
            f.description = v.description.clone();
            out.push(f);
        }
    }
    Ok(out)
}
