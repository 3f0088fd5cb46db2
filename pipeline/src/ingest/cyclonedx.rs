//! CycloneDX BOMs with vulnerabilities, JSON or XML (specVersion 1.2 to 1.6), told apart by their
//! content: each affected component is an sca finding. The highest rating's severity wins (its
//! CVSS vector or score when it has no label); none means medium. `affects[].ref` is resolved
//! through every component, however deeply nested, and the metadata component, so the package
//! gets its name, version and purl. The 1.2/1.3 XML vulnerability extension
//! (`http://cyclonedx.org/schema/ext/vulnerability/1.0`, `v:vulnerability` inside a component)
//! is read too. A BOM without any vulnerability section is an error: it is an inventory, not a
//! scan result, and zero findings from it would mean nothing.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::{not_a_report, title, Parsed};
use crate::error::{Error, Result};
use crate::model::{Category, RawFinding, Severity};

#[derive(Debug, Default, Clone)]
struct Package {
    name: String,
    version: Option<String>,
    purl: Option<String>,
}

#[derive(Debug, Default)]
struct Vulnerability {
    id: String,
    description: Option<String>,
    /// (severity label, score, vector) per rating.
    ratings: Vec<(Option<String>, Option<f64>, Option<String>)>,
    ids: Vec<String>,
    /// Referenced components (bom-refs), or the enclosing component (1.2/1.3 extension).
    affects: Vec<std::result::Result<String, Package>>,
    fixed: Vec<String>,
}

pub fn parse(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    match super::first_byte(bytes) {
        Some(b'{') => parse_json(file, bytes),
        Some(b'<') => parse_xml(file, bytes),
        _ => Err(Error::input(
            file,
            "not a CycloneDX BOM: expected JSON (an object with \"bomFormat\": \"CycloneDX\") or XML (a <bom> element in a http://cyclonedx.org/schema/bom/ namespace)",
        )),
    }
}

fn severity_of(v: &Vulnerability) -> Severity {
    v.ratings
        .iter()
        .filter_map(|(label, score, vector)| {
            label
                .as_deref()
                .and_then(Severity::from_label)
                .filter(|s| *s != Severity::Info || score.is_none())
                .or_else(|| vector.as_deref().and_then(Severity::from_cvss_vector))
                .or_else(|| score.filter(|s| s.is_finite()).map(Severity::from_cvss))
        })
        .max()
        .unwrap_or(Severity::Medium)
}

fn findings(vulns: Vec<Vulnerability>, packages: &HashMap<String, Package>) -> Parsed {
    let mut parsed = Parsed::default();
    for v in vulns {
        let severity = severity_of(&v);
        for affect in &v.affects {
            let package = match affect {
                Ok(reference) => match packages.get(reference) {
                    Some(p) => p.clone(),
                    None => {
                        // A reference that is itself a purl still names the package.
                        match super::purl_parts(reference) {
                            Some((_, name, version)) => Package {
                                name,
                                version,
                                purl: Some(reference.to_string()),
                            },
                            None => {
                                parsed.skipped += 1;
                                parsed.warnings.push(format!(
                                    "vulnerability {}: affects {reference:?}, which no component of the BOM declares",
                                    v.id
                                ));
                                continue;
                            }
                        }
                    }
                },
                Err(p) => p.clone(),
            };
            let ecosystem = package
                .purl
                .as_deref()
                .and_then(super::purl_parts)
                .map(|(kind, _, _)| kind)
                .unwrap_or_else(|| "generic".into());
            let mut f = RawFinding::new(
                "cyclonedx",
                Category::Sca,
                severity,
                &v.id,
                &title(v.description.as_deref().unwrap_or(&v.id)),
            )
            .in_package(
                &package.name,
                package.version.as_deref(),
                &ecosystem,
                package.purl.as_deref(),
            )
            .with_ids(std::iter::once(&v.id).chain(&v.ids))
            .fixed_by(&v.fixed);
            f.description = v.description.clone();
            parsed.read += 1;
            parsed.findings.push(f);
        }
    }
    parsed
}

// ---- JSON ----

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn collect_json(component: &Value, out: &mut HashMap<String, Package>, depth: usize) {
    if depth > 64 {
        return;
    }
    if let (Some(reference), Some(name)) = (str_of(component, "bom-ref"), str_of(component, "name"))
    {
        out.insert(
            reference,
            Package {
                name,
                version: str_of(component, "version"),
                purl: str_of(component, "purl"),
            },
        );
    }
    for child in component
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect_json(child, out, depth + 1);
    }
}

fn parse_json(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let bom: Value = super::json(file, bytes)?;
    if bom.get("bomFormat").and_then(Value::as_str) != Some("CycloneDX") {
        return Err(Error::input(
            file,
            format!(
                "bomFormat is {}, not CycloneDX",
                bom.get("bomFormat")
                    .map_or("missing".into(), |v| v.to_string())
            ),
        ));
    }
    let Some(list) = bom.get("vulnerabilities").and_then(Value::as_array) else {
        return Err(not_a_report(
            file,
            "CycloneDX vulnerability",
            "a \"vulnerabilities\" array (this BOM lists components only; ingest the output of a vulnerability scan)",
        ));
    };
    let mut packages = HashMap::new();
    if let Some(root) = bom.get("metadata").and_then(|m| m.get("component")) {
        collect_json(root, &mut packages, 0);
    }
    for c in bom
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect_json(c, &mut packages, 0);
    }
    let mut vulns = Vec::new();
    let mut warnings = Vec::new();
    for (index, v) in list.iter().enumerate() {
        let Some(id) = str_of(v, "id") else {
            warnings.push(format!("vulnerability #{index} skipped: it has no \"id\""));
            continue;
        };
        let mut vuln = Vulnerability {
            id,
            description: str_of(v, "description").or_else(|| str_of(v, "detail")),
            ..Vulnerability::default()
        };
        for r in v
            .get("ratings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            vuln.ratings.push((
                str_of(r, "severity"),
                r.get("score").and_then(Value::as_f64),
                str_of(r, "vector"),
            ));
        }
        for r in v
            .get("references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            vuln.ids.extend(str_of(r, "id"));
        }
        for c in v
            .get("cwes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(n) = c.as_u64() {
                vuln.ids.push(format!("CWE-{n}"));
            }
        }
        for a in v
            .get("affects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(reference) = str_of(a, "ref") {
                vuln.affects.push(Ok(reference));
            }
            for ver in a
                .get("versions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if str_of(ver, "status").as_deref() == Some("unaffected") {
                    vuln.fixed.extend(str_of(ver, "version"));
                }
            }
        }
        if vuln.affects.is_empty() {
            warnings.push(format!(
                "vulnerability #{index} ({}) skipped: it affects no component",
                vuln.id
            ));
            continue;
        }
        vulns.push(vuln);
    }
    if vulns.is_empty() && !list.is_empty() {
        return Err(super::none_readable(
            file,
            "CycloneDX",
            "vulnerabilit",
            list.len(),
            &warnings,
        ));
    }
    let mut parsed = findings(vulns, &packages);
    parsed.skipped += warnings.len();
    warnings.append(&mut parsed.warnings);
    parsed.warnings = warnings;
    Ok(parsed)
}

// ---- XML ----

fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a>(
    node: roxmltree::Node<'a, 'a>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> + 'a {
    node.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn text_of(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn package_of(component: roxmltree::Node<'_, '_>) -> Option<Package> {
    Some(Package {
        name: text_of(component, "name")?,
        version: text_of(component, "version"),
        purl: text_of(component, "purl"),
    })
}

fn xml_vulnerability(node: roxmltree::Node<'_, '_>, id: String) -> Vulnerability {
    let mut v = Vulnerability {
        id,
        description: text_of(node, "description").or_else(|| text_of(node, "detail")),
        ..Vulnerability::default()
    };
    for rating in child(node, "ratings")
        .into_iter()
        .flat_map(|r| children(r, "rating"))
    {
        // 1.4+: <score>9.8</score>; the 1.0 extension: <score><base>9.8</base></score>.
        let score = child(rating, "score").and_then(|s| {
            s.text()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .or_else(|| text_of(s, "base"))
        });
        v.ratings.push((
            text_of(rating, "severity"),
            score.and_then(|s| s.parse().ok()),
            text_of(rating, "vector"),
        ));
    }
    for r in child(node, "references")
        .into_iter()
        .flat_map(|r| children(r, "reference"))
    {
        v.ids.extend(text_of(r, "id"));
    }
    for c in child(node, "cwes")
        .into_iter()
        .flat_map(|c| children(c, "cwe"))
    {
        if let Some(n) = c.text().map(str::trim).filter(|t| !t.is_empty()) {
            v.ids.push(format!("CWE-{n}"));
        }
    }
    for target in child(node, "affects")
        .into_iter()
        .flat_map(|a| children(a, "target"))
    {
        if let Some(reference) = text_of(target, "ref") {
            v.affects.push(Ok(reference));
        }
        for ver in child(target, "versions")
            .into_iter()
            .flat_map(|vs| children(vs, "version"))
        {
            if text_of(ver, "status").as_deref() == Some("unaffected") {
                v.fixed.extend(text_of(ver, "version"));
            }
        }
    }
    v
}

fn parse_xml(file: &Path, bytes: &[u8]) -> Result<Parsed> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Error::input(file, format!("XML is not UTF-8: byte {}", e.valid_up_to())))?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| {
        let pos = e.pos();
        Error::input(
            file,
            format!("line {}, column {}: invalid XML: {e}", pos.row, pos.col),
        )
    })?;
    let root = doc.root_element();
    let namespace = root.tag_name().namespace().unwrap_or("");
    if root.tag_name().name() != "bom" || !namespace.starts_with("http://cyclonedx.org/schema/bom/")
    {
        return Err(Error::input(
            file,
            format!(
                "not a CycloneDX BOM: the root element is <{}> in namespace {namespace:?}, expected <bom> in http://cyclonedx.org/schema/bom/1.x",
                root.tag_name().name()
            ),
        ));
    }
    let mut packages = HashMap::new();
    let mut vulns = Vec::new();
    let mut warnings = Vec::new();
    let mut sections = 0;
    for node in root.descendants().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "component" => {
                if let (Some(reference), Some(p)) = (node.attribute("bom-ref"), package_of(node)) {
                    packages.insert(reference.to_string(), p);
                }
            }
            "vulnerabilities" => sections += 1,
            "vulnerability" => {
                let index = vulns.len() + warnings.len();
                let Some(id) = text_of(node, "id") else {
                    warnings.push(format!("vulnerability #{index} skipped: it has no <id>"));
                    continue;
                };
                let mut v = xml_vulnerability(node, id);
                // The 1.2/1.3 extension nests vulnerabilities inside the affected component.
                let owner = node
                    .ancestors()
                    .skip(1)
                    .find(|a| a.is_element() && a.tag_name().name() == "component");
                if let Some(component) = owner.filter(|_| v.affects.is_empty()) {
                    if let Some(p) = package_of(component) {
                        v.affects.push(Err(p));
                    }
                }
                if v.affects.is_empty() {
                    if let Some(reference) = node.attribute("ref") {
                        v.affects.push(Ok(reference.to_string()));
                    }
                }
                if v.affects.is_empty() {
                    warnings.push(format!(
                        "vulnerability #{index} ({}) skipped: it affects no component",
                        v.id
                    ));
                    continue;
                }
                vulns.push(v);
            }
            _ => {}
        }
    }
    if sections == 0 {
        return Err(not_a_report(
            file,
            "CycloneDX vulnerability",
            "a <vulnerabilities> element (this BOM lists components only; ingest the output of a vulnerability scan)",
        ));
    }
    if vulns.is_empty() && !warnings.is_empty() {
        return Err(super::none_readable(
            file,
            "CycloneDX",
            "vulnerabilit",
            warnings.len(),
            &warnings,
        ));
    }
    let mut parsed = findings(vulns, &packages);
    parsed.skipped += warnings.len();
    warnings.append(&mut parsed.warnings);
    parsed.warnings = warnings;
    Ok(parsed)
}
