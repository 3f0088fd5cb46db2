//! CycloneDX 1.5 JSON SBOMs: for the Cargo workspace (from `cargo metadata` and Cargo.lock checksums);
//! for a Nix closure (see `nix::closure` for what names one), whose store paths become components
//! with name, version, a purl, store path and narHash, and the crates embedded in their Rust
//! binaries components under them; and for a derivation's fixed-output sources (URL and hash).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::{audit, nix};

pub(crate) fn serial() -> String {
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

/// A store path's component: name and version from its name, the purl syft gives store paths,
/// and its store path, NAR hash, NAR size and deriver as properties.
fn store_component(info: &nix::PathInfo) -> Value {
    let (name, version) = nix::store_name(&info.path);
    let mut properties = vec![json!({"name": "nix:store_path", "value": info.path})];
    if let Some(hash) = &info.nar_hash {
        properties.push(json!({"name": "nix:nar_hash", "value": hash}));
    }
    if let Some(size) = info.nar_size {
        properties.push(json!({"name": "nix:nar_size", "value": size.to_string()}));
    }
    if let Some(deriver) = &info.deriver {
        properties.push(json!({"name": "nix:deriver", "value": deriver}));
    }
    let mut c = json!({
        "type": "library",
        "bom-ref": info.path,
        "name": name,
        "purl": nix::store_purl(&info.path),
        "properties": properties,
    });
    if let Some(v) = version {
        c["version"] = json!(v);
    }
    c
}

/// The crates cargo-auditable embedded in a binary, as components under it (bom-refs prefixed
/// with the binary's path, so one crate in two binaries stays two components), and their
/// dependency graph.
fn binary_component(audited: &audit::binary::Audited, dependencies: &mut Vec<Value>) -> Value {
    let binary = &audited.artifact.path;
    let reference = |p: &auditable_serde::Package| {
        format!(
            "{binary}#{}",
            crate::model::purl("cargo", &p.name, &p.version.to_string())
        )
    };
    let packages = &audited.info.packages;
    let crates: Vec<Value> = packages
        .iter()
        .map(|p| {
            let mut c = json!({
                "type": "library",
                "bom-ref": reference(p),
                "name": p.name,
                "version": p.version.to_string(),
                "purl": crate::model::purl("cargo", &p.name, &p.version.to_string()),
            });
            let mut properties = vec![
                json!({"name": "devsecops:crate_source", "value": String::from(p.source.clone())}),
            ];
            if p.kind == auditable_serde::DependencyKind::Build {
                properties.push(json!({"name": "devsecops:dependency_kind", "value": "build"}));
            }
            c["properties"] = json!(properties);
            c
        })
        .collect();
    let roots: Vec<String> = packages.iter().filter(|p| p.root).map(reference).collect();
    dependencies.push(json!({"ref": binary, "dependsOn": roots}));
    for p in packages {
        let depends: BTreeSet<String> = p
            .dependencies
            .iter()
            .filter_map(|i| packages.get(*i))
            .map(reference)
            .collect();
        dependencies.push(json!({"ref": reference(p), "dependsOn": depends}));
    }
    json!({
        "type": "application",
        "bom-ref": binary,
        "name": binary.rsplit('/').next().unwrap_or(binary),
        "properties": [{"name": "devsecops:embedded_dependencies", "value": "cargo-auditable"}],
        "components": crates,
    })
}

/// CycloneDX for a Nix closure: a component per store path (the root as the BOM's subject) with
/// its references as dependencies. With `binaries`, every executable of every store path is read
/// (the paths must be on this machine): the crates embedded in each Rust binary become components
/// under it, and a Rust binary without them is listed as such.
pub fn nix(closure: &nix::Closure, binaries: bool) -> Result<Value> {
    let root = closure
        .root()
        .ok_or_else(|| Error::Usage(format!("{}: the closure is empty", closure.source)))?;
    let mut dependencies: Vec<Value> = closure
        .paths
        .iter()
        .map(|info| {
            let depends: BTreeSet<&str> = info
                .references
                .iter()
                .map(String::as_str)
                .filter(|r| closure.paths.iter().any(|p| p.path == *r))
                .collect();
            json!({"ref": info.path, "dependsOn": depends})
        })
        .collect();
    let mut inside: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    if binaries {
        let mut targets = Vec::new();
        for info in &closure.paths {
            let files = closure.files_of(&info.path);
            if std::fs::symlink_metadata(&files).is_err() {
                return Err(Error::input(
                    Path::new(&info.path),
                    "not on this machine, so its binaries cannot be read: run where the closure is, or pass --paths-only for an SBOM of the store paths alone",
                ));
            }
            targets.push(audit::binary::Target {
                files,
                shown_as: info.path.clone().into(),
                store_path: Some(info.path.clone()),
                nar_hash: info.nar_hash.clone(),
            });
        }
        let scan = audit::binary::scan(&targets);
        if let Some((file, message)) = scan.errors.first() {
            return Err(Error::input(file, message.clone()));
        }
        for audited in &scan.audited {
            let store_path = audited.artifact.store_path.clone().unwrap_or_default();
            let component = binary_component(audited, &mut dependencies);
            inside.entry(store_path).or_default().push(component);
        }
        for artifact in &scan.not_auditable {
            inside
                .entry(artifact.store_path.clone().unwrap_or_default())
                .or_default()
                .push(json!({
                    "type": "application",
                    "bom-ref": artifact.path,
                    "name": artifact.path.rsplit('/').next().unwrap_or(&artifact.path),
                    "properties": [{"name": "devsecops:embedded_dependencies", "value": "none (a Rust binary not built with cargo auditable)"}],
                }));
        }
    }
    let with_binaries = |info: &nix::PathInfo| {
        let mut c = store_component(info);
        if let Some(found) = inside.get(&info.path) {
            c["components"] = json!(found);
        }
        c
    };
    let components = closure
        .paths
        .iter()
        .filter(|p| p.path != root.path)
        .map(with_binaries)
        .collect();
    let mut root_component = with_binaries(root);
    root_component["type"] = json!("application");
    Ok(bom(root_component, components, dependencies))
}

/// CycloneDX for the closure `source` names (a store path or a link to one, path-info JSON, or a
/// binary cache directory); see [`nix`].
pub fn nix_source(source: &str, binaries: bool) -> Result<Value> {
    nix::with_closure(source, |closure| self::nix(closure, binaries))
}

/// CycloneDX for the build-time view of a derivation: every fixed-output derivation of its graph
/// (what a build downloads) as a component with its URL, its hash and a purl naming both.
pub fn nix_drv(drv_file: &Path) -> Result<Value> {
    let (root, root_name, sources) = nix::fixed_outputs(drv_file)?;
    let (name, version) = nix::store_name(&format!("x-{root_name}"));
    let mut root_component = json!({
        "type": "application",
        "bom-ref": root,
        "name": name,
        "properties": [{"name": "nix:drv_path", "value": root}],
    });
    if let Some(v) = version {
        root_component["version"] = json!(v);
    }
    let components = sources.iter().map(source_component).collect::<Vec<_>>();
    let dependencies = vec![json!({
        "ref": root,
        "dependsOn": sources.iter().map(|s| s.drv_path.as_str()).collect::<BTreeSet<_>>(),
    })];
    Ok(bom(root_component, components, dependencies))
}

/// CycloneDX's name for a Nix hash algorithm.
fn cyclonedx_algorithm(algorithm: &str) -> Option<&'static str> {
    Some(match algorithm {
        "md5" => "MD5",
        "sha1" => "SHA-1",
        "sha256" => "SHA-256",
        "sha512" => "SHA-512",
        "blake3" => "BLAKE3",
        _ => return None,
    })
}

/// Archive and compression suffixes of source file names, left out of their versions.
const ARCHIVE_SUFFIXES: &[&str] = &[
    ".tar.gz", ".tar.xz", ".tar.bz2", ".tar.zst", ".tar.lz", ".tgz", ".tbz2", ".txz", ".tar",
    ".zip", ".gz", ".xz", ".bz2", ".zst",
];

fn source_component(source: &nix::FixedOutput) -> Value {
    let (name, version) = nix::store_name(&format!("x-{}", source.name));
    let version = version.map(|v| {
        ARCHIVE_SUFFIXES
            .iter()
            .find_map(|suffix| v.strip_suffix(suffix))
            .map(str::to_string)
            .unwrap_or(v)
    });
    let mut properties = vec![
        json!({"name": "nix:drv_path", "value": source.drv_path}),
        json!({"name": "nix:output_hash", "value": source.hash}),
        // What the hash is of: the file (flat), its NAR serialization (nar), text or a git tree.
        json!({"name": "nix:output_hash_mode", "value": source.method}),
    ];
    if let Some(rev) = &source.rev {
        properties.push(json!({"name": "nix:rev", "value": rev}));
    }
    let mut c = json!({
        "type": "file",
        "bom-ref": source.drv_path,
        "name": name,
        "properties": properties,
    });
    if let Some(v) = &version {
        c["version"] = json!(v);
    }
    // Only a flat hash is the hash of the downloaded file itself.
    let file_hash = (source.method == "flat")
        .then(|| cyclonedx_algorithm(&source.algorithm))
        .flatten();
    if let Some(alg) = file_hash {
        c["hashes"] = json!([{"alg": alg, "content": source.hex}]);
    }
    let references: Vec<Value> = source
        .urls
        .iter()
        .map(|url| {
            let kind = if source.rev.is_some() {
                "vcs"
            } else {
                "distribution"
            };
            json!({"type": kind, "url": url})
        })
        .collect();
    if !references.is_empty() {
        c["externalReferences"] = json!(references);
    }
    // purl-spec's generic type: where it is downloaded from and the checksum it must have.
    let mut purl = crate::model::purl("generic", &name, version.as_deref().unwrap_or(""));
    if version.is_none() {
        purl.pop();
    }
    let mut qualifiers = Vec::new();
    if file_hash.is_some() {
        qualifiers.push(format!("checksum={}:{}", source.algorithm, source.hex));
    }
    match (source.urls.first(), &source.rev) {
        (Some(url), Some(rev)) => qualifiers.push(format!(
            "vcs_url={}",
            percent_encode(&format!("git+{url}@{rev}"))
        )),
        (Some(url), None) => qualifiers.push(format!("download_url={}", percent_encode(url))),
        (None, _) => {}
    }
    if !qualifiers.is_empty() {
        purl.push('?');
        purl.push_str(&qualifiers.join("&"));
    }
    c["purl"] = json!(purl);
    c
}

/// Percent-encodes a purl qualifier value (everything but unreserved characters and `:/`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'.'
            | b'-'
            | b'_'
            | b'~'
            | b':'
            | b'/'
            | b'@'
            | b'+' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
