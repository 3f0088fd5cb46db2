//! CycloneDX 1.5 JSON SBOMs: for the Cargo workspace (from `cargo metadata` and Cargo.lock checksums)
//! and for a Nix closure (from the JSON of `nix path-info --json --recursive`, or a store path when
//! nix is installed). Store paths become components with name, version, store path and narHash.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};

fn serial() -> String {
    // A random UUID v4 from the OS, formatted by hand (no uuid crate needed).
    let mut bytes = [0u8; 16];
    if let Ok(mut file) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = file.read_exact(&mut bytes);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn bom(component: Value, components: Vec<Value>, dependencies: Vec<Value>) -> Value {
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(),
        "version": 1,
        "metadata": {
            "timestamp": now(),
            "tools": {"components": [{"type": "application", "name": "devsecops", "version": env!("CARGO_PKG_VERSION")}]},
            "component": component,
        },
        "components": components,
        "dependencies": dependencies,
    })
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    resolve: Option<Resolve>,
    workspace_root: String,
}

#[derive(Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    repository: Option<String>,
}

#[derive(Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    deps: Vec<NodeDep>,
}

#[derive(Deserialize)]
struct NodeDep {
    pkg: String,
    #[serde(default)]
    dep_kinds: Vec<DepKind>,
}

#[derive(Deserialize)]
struct DepKind {
    #[serde(default)]
    kind: Option<String>,
}

impl Node {
    /// Dependencies that end up in a build: normal and build dependencies, not dev-dependencies.
    fn shipped(&self) -> Vec<String> {
        self.deps
            .iter()
            .filter(|d| {
                d.dep_kinds.is_empty()
                    || d.dep_kinds.iter().any(|k| k.kind.as_deref() != Some("dev"))
            })
            .map(|d| d.pkg.clone())
            .collect()
    }
}

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    #[serde(default)]
    checksum: Option<String>,
}

/// CycloneDX for the Cargo workspace at `root` (runs `cargo metadata --locked --offline`); with
/// `package`, only that workspace member and what it depends on (the contents of its binary or image).
pub fn cargo(root: &Path, package: Option<&str>) -> Result<Value> {
    let manifest = root.join("Cargo.toml");
    let output = Command::new("cargo")
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--offline",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .map_err(|e| Error::Usage(format!("cannot run cargo metadata: {e}")))?;
    if !output.status.success() {
        return Err(Error::input(
            &manifest,
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let metadata: Metadata = crate::ingest::json(&manifest, &output.stdout)?;
    let lock_path = root.join("Cargo.lock");
    let lock_text =
        std::fs::read_to_string(&lock_path).map_err(|e| Error::input(&lock_path, e.to_string()))?;
    let lock: Lock = toml::from_str(&lock_text)
        .map_err(|e| Error::input(&lock_path, crate::config::toml_error(&lock_text, &e)))?;
    let checksums: HashMap<(String, String), String> = lock
        .package
        .into_iter()
        .filter_map(|p| p.checksum.map(|c| ((p.name, p.version), c)))
        .collect();
    let mut members: BTreeSet<&str> = metadata
        .workspace_members
        .iter()
        .map(String::as_str)
        .collect();
    // With a package: keep its dependency closure only.
    let keep: Option<BTreeSet<String>> = match package {
        None => None,
        Some(name) => {
            let start = metadata
                .packages
                .iter()
                .find(|p| p.name == name && members.contains(p.id.as_str()))
                .ok_or_else(|| Error::Usage(format!("{name} is not a member of the workspace")))?
                .id
                .clone();
            let edges: HashMap<&str, Vec<String>> = metadata
                .resolve
                .as_ref()
                .map(|r| {
                    r.nodes
                        .iter()
                        .map(|n| (n.id.as_str(), n.shipped()))
                        .collect()
                })
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            let mut stack = vec![start.clone()];
            while let Some(id) = stack.pop() {
                if seen.insert(id.clone()) {
                    if let Some(deps) = edges.get(id.as_str()) {
                        stack.extend(deps.iter().cloned());
                    }
                }
            }
            members.retain(|m| *m == start);
            Some(seen)
        }
    };
    let kept = |id: &str| keep.as_ref().is_none_or(|k| k.contains(id));
    let purl = |p: &Package| format!("pkg:cargo/{}@{}", p.name, p.version);
    let refs: HashMap<&str, String> = metadata
        .packages
        .iter()
        .map(|p| (p.id.as_str(), purl(p)))
        .collect();
    let mut components = Vec::new();
    let mut member_refs = Vec::new();
    for p in metadata.packages.iter().filter(|p| kept(&p.id)) {
        let is_member = members.contains(p.id.as_str());
        let mut c = json!({
            "type": if is_member { "application" } else { "library" },
            "bom-ref": purl(p),
            "name": p.name,
            "version": p.version,
            "purl": purl(p),
        });
        if let Some(license) = &p.license {
            c["licenses"] = json!([{"expression": license}]);
        }
        if let Some(description) = &p.description {
            c["description"] = json!(description);
        }
        if let Some(checksum) = checksums.get(&(p.name.clone(), p.version.clone())) {
            c["hashes"] = json!([{"alg": "SHA-256", "content": checksum}]);
        }
        let mut references = Vec::new();
        if let Some(repo) = &p.repository {
            references.push(json!({"type": "vcs", "url": repo}));
        }
        if p.source
            .as_deref()
            .is_some_and(|s| s.starts_with("registry+"))
        {
            references.push(json!({"type": "distribution", "url": format!("https://crates.io/crates/{}/{}", p.name, p.version)}));
        }
        if !references.is_empty() {
            c["externalReferences"] = json!(references);
        }
        if is_member {
            member_refs.push(purl(p));
        }
        components.push(c);
    }
    let dependencies = metadata
        .resolve
        .map(|r| {
            r.nodes
                .iter()
                .filter(|n| kept(&n.id))
                .filter_map(|n| {
                    let depends: BTreeSet<&String> = n
                        .dependencies
                        .iter()
                        .filter_map(|d| refs.get(d.as_str()))
                        .collect();
                    refs.get(n.id.as_str())
                        .map(|me| json!({"ref": me, "dependsOn": depends}))
                })
                .collect()
        })
        .unwrap_or_default();
    let root_name = Path::new(&metadata.workspace_root)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("workspace")
        .to_string();
    let component = json!({
        "type": "application",
        "bom-ref": format!("workspace:{root_name}"),
        "name": root_name,
        "components": member_refs.iter().map(|r| json!({"type": "application", "bom-ref": format!("{r}#member"), "name": r})).collect::<Vec<_>>(),
    });
    Ok(bom(component, components, dependencies))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathInfo {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    nar_hash: Option<String>,
    #[serde(default)]
    nar_size: Option<u64>,
    #[serde(default)]
    references: Vec<String>,
    #[serde(default)]
    deriver: Option<String>,
}

/// Splits a store path's name into (name, version): `/nix/store/<hash>-openssl-3.0.13` gives
/// ("openssl", "3.0.13"); the version starts at the first dash followed by a digit.
pub fn store_name(path: &str) -> (String, Option<String>) {
    let base = path.rsplit('/').next().unwrap_or(path);
    let rest = base.split_once('-').map(|(_, r)| r).unwrap_or(base);
    let bytes = rest.as_bytes();
    for i in 0..bytes.len().saturating_sub(1) {
        if bytes[i] == b'-' && bytes[i + 1].is_ascii_digit() {
            return (rest[..i].to_string(), Some(rest[i + 1..].to_string()));
        }
    }
    (rest.to_string(), None)
}

/// CycloneDX for a Nix closure, from `nix path-info --json --recursive` output (the array form of
/// Nix up to 2.18 or the object form keyed by store path of later versions).
pub fn nix_from_json(file: &Path, bytes: &[u8]) -> Result<Value> {
    let value: Value = crate::ingest::json(file, bytes)?;
    let infos: Vec<(String, PathInfo)> = match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| {
                let info: PathInfo = serde_json::from_value(v)
                    .map_err(|e| Error::input(file, format!("path info: {e}")))?;
                let path = info
                    .path
                    .clone()
                    .ok_or_else(|| Error::input(file, "path info without a path"))?;
                Ok((path, info))
            })
            .collect::<Result<_>>()?,
        Value::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(path, v)| {
                let info: PathInfo = serde_json::from_value(v)
                    .map_err(|e| Error::input(file, format!("{path}: {e}")))?;
                Ok((path, info))
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(Error::input(
                file,
                "expected the JSON of `nix path-info --json --recursive`",
            ))
        }
    };
    if infos.is_empty() {
        return Err(Error::input(file, "the closure is empty"));
    }
    let paths: BTreeMap<&str, &PathInfo> = infos.iter().map(|(p, i)| (p.as_str(), i)).collect();
    // The root is the path no other path refers to.
    let referenced: BTreeSet<&str> = infos
        .iter()
        .flat_map(|(p, i)| {
            i.references
                .iter()
                .filter(move |r| *r != p)
                .map(String::as_str)
        })
        .collect();
    let root = paths
        .keys()
        .find(|p| !referenced.contains(*p))
        .copied()
        .unwrap_or(infos[0].0.as_str());
    let component = |path: &str, info: &PathInfo| {
        let (name, version) = store_name(path);
        let mut properties = vec![json!({"name": "nix:store_path", "value": path})];
        if let Some(hash) = &info.nar_hash {
            properties.push(json!({"name": "nix:nar_hash", "value": hash}));
        }
        if let Some(size) = info.nar_size {
            properties.push(json!({"name": "nix:nar_size", "value": size.to_string()}));
        }
        if let Some(deriver) = &info.deriver {
            properties.push(json!({"name": "nix:deriver", "value": deriver}));
        }
        let mut c =
            json!({"type": "library", "bom-ref": path, "name": name, "properties": properties});
        if let Some(v) = version {
            c["version"] = json!(v);
        }
        c
    };
    let components = paths
        .iter()
        .filter(|(p, _)| **p != root)
        .map(|(p, i)| component(p, i))
        .collect();
    let mut root_component = component(root, paths[root]);
    root_component["type"] = json!("application");
    let dependencies = paths
        .iter()
        .map(|(p, i)| {
            let depends: BTreeSet<&str> = i
                .references
                .iter()
                .map(String::as_str)
                .filter(|r| r != p && paths.contains_key(r))
                .collect();
            json!({"ref": p, "dependsOn": depends})
        })
        .collect();
    Ok(bom(root_component, components, dependencies))
}

/// CycloneDX for the closure of a store path, asking the installed `nix` for its path info.
pub fn nix_from_store_path(store_path: &str) -> Result<Value> {
    let output = Command::new("nix")
        .args(["--extra-experimental-features", "nix-command", "path-info", "--json", "--recursive", store_path])
        .output()
        .map_err(|e| Error::Usage(format!("nix is needed for a store path ({e}); or pass the JSON of `nix path-info --json --recursive`")))?;
    if !output.status.success() {
        return Err(Error::Usage(format!(
            "nix path-info {store_path}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    nix_from_json(Path::new(store_path), &output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_split_into_name_and_version() {
        assert_eq!(
            store_name("/nix/store/0c0f4m9ww7g6dh6fm7j5xzqj7l7q5q2l-openssl-3.0.13"),
            ("openssl".into(), Some("3.0.13".into()))
        );
        assert_eq!(
            store_name("/nix/store/abc-python3.11-requests-2.31.0"),
            ("python3.11-requests".into(), Some("2.31.0".into()))
        );
        assert_eq!(store_name("/nix/store/abc-source"), ("source".into(), None));
        assert_eq!(
            store_name("/nix/store/abc-glibc-2.39-52-bin"),
            ("glibc".into(), Some("2.39-52-bin".into()))
        );
    }
}
