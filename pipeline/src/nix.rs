//! Nix closures and derivations as `audit` and `sbom` read them: the path info of a closure (from
//! `nix path-info --json --recursive` in every shape Nix has printed, from `exportReferencesGraph`,
//! from a store path through the installed `nix`, or from a binary cache directory's `.narinfo`
//! files), NAR hashes recomputed from the files (`nix-nar`), and the fixed-output sources of a
//! derivation graph (`nix-derivation`).
//!
//! The JSON shapes, from NixOS/nix `doc/manual/source/protocols/json/schema/store-object-info-v3.yaml`
//! (commit 4753ba3c) and earlier releases: an array of objects with an absolute `path` (Nix up to
//! 2.18, and `exportReferencesGraph`), or an object keyed by store path (later); since format
//! version 2 paths may be base names (`<hash>-<name>`) beside a `storeDir`; `narHash` is SRI
//! (`sha256-...`), or `sha256:<nix32 or base16>` in older output.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const DEFAULT_STORE_DIR: &str = "/nix/store";

/// One store object of a closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// Absolute store path.
    pub path: String,
    /// NAR hash in SRI form (`sha256-<base64>`).
    pub nar_hash: Option<String>,
    pub nar_size: Option<u64>,
    /// Absolute store paths it refers to (itself excluded).
    pub references: Vec<String>,
    pub deriver: Option<String>,
}

/// A closure: its store objects (sorted by path) and where they were read from.
#[derive(Debug, Clone)]
pub struct Closure {
    pub source: String,
    pub paths: Vec<PathInfo>,
    /// Where each store path's files are, when they are not at the store path itself (a NAR
    /// unpacked from a binary cache).
    pub files: BTreeMap<String, PathBuf>,
}

impl Closure {
    /// The directory holding `path`'s files on this machine.
    pub fn files_of(&self, path: &str) -> PathBuf {
        self.files
            .get(path)
            .cloned()
            .unwrap_or_else(|| PathBuf::from(path))
    }

    /// The store path no other path of the closure refers to (the closure's root); the first one
    /// when there are several.
    pub fn root(&self) -> Option<&PathInfo> {
        let referenced: BTreeSet<&str> = self
            .paths
            .iter()
            .flat_map(|p| p.references.iter().map(String::as_str))
            .collect();
        self.paths
            .iter()
            .find(|p| !referenced.contains(p.path.as_str()))
            .or_else(|| self.paths.first())
    }
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

/// The 32-character hash part of a store path.
pub fn store_hash(path: &str) -> Option<&str> {
    let base = path.rsplit('/').next()?;
    let (hash, _) = base.split_once('-')?;
    (hash.len() == 32).then_some(hash)
}

/// A package URL for a store path, as syft writes them for Nix store paths (anchore/syft
/// `syft/pkg/cataloger/nix/package.go`, commit 541c8d33): type `nix`, the store name and version,
/// and the store hash as the `outputhash` qualifier. There is no registered purl type for Nix yet;
/// scanners that read syft's SBOMs (grype) match on this form.
pub fn store_purl(path: &str) -> String {
    let (name, version) = store_name(path);
    let mut purl = crate::model::purl("nix", &name, version.as_deref().unwrap_or(""));
    if version.is_none() {
        purl.pop(); // the `@` of an empty version
    }
    if let Some(hash) = store_hash(path) {
        purl.push_str("?outputhash=");
        purl.push_str(hash);
    }
    purl
}

/// A NAR hash in any form Nix prints, as SRI; `None` for a form that is not a hash.
pub fn sri(hash: &Value) -> Option<String> {
    match hash {
        Value::String(text) => nix_derivation::NixHash::parse(text)
            .ok()
            .map(|h| h.to_sri_string()),
        // The structured form some versions printed: {"algorithm": "sha256", "hash": "..."}.
        Value::Object(map) => {
            let algorithm = map.get("algorithm")?.as_str()?;
            let digest = map.get("hash")?.as_str()?;
            let text = if digest.contains('-') || digest.contains(':') {
                digest.to_string()
            } else {
                format!("{algorithm}:{digest}")
            };
            nix_derivation::NixHash::parse(&text)
                .ok()
                .map(|h| h.to_sri_string())
        }
        _ => None,
    }
}

fn absolute(store_dir: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{path}", store_dir.trim_end_matches('/'))
    }
}

fn path_info(file: &Path, key: Option<&str>, value: &Value) -> Result<PathInfo> {
    let bad = |m: String| Error::input(file, m);
    let object = value.as_object().ok_or_else(|| {
        bad(format!(
            "{}: not a path info object",
            key.unwrap_or("entry")
        ))
    })?;
    let store_dir = object
        .get("storeDir")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_STORE_DIR);
    let path = object
        .get("path")
        .and_then(Value::as_str)
        .or(key)
        .ok_or_else(|| bad("path info without a path".into()))?;
    let path = absolute(store_dir, path);
    if store_hash(&path).is_none() {
        return Err(bad(format!(
            "{path}: not a store path (<store>/<hash>-<name>)"
        )));
    }
    let nar_hash = match object.get("narHash") {
        None | Some(Value::Null) => None,
        Some(hash) => Some(
            sri(hash).ok_or_else(|| bad(format!("{path}: narHash {hash} is not a Nix hash")))?,
        ),
    };
    let references = match object.get("references") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| {
                r.as_str()
                    .map(|r| absolute(store_dir, r))
                    .ok_or_else(|| bad(format!("{path}: a reference is not a string")))
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .filter(|r| *r != path)
            .collect(),
        Some(_) => return Err(bad(format!("{path}: references is not an array"))),
    };
    Ok(PathInfo {
        nar_size: object.get("narSize").and_then(Value::as_u64),
        deriver: object
            .get("deriver")
            .and_then(Value::as_str)
            .map(|d| absolute(store_dir, d)),
        path,
        nar_hash,
        references,
    })
}

/// The closure in `bytes`: the JSON of `nix path-info --json --recursive` (array or object form,
/// absolute or base-name paths), or of `exportReferencesGraph` under structured attributes.
pub fn closure_from_json(file: &Path, bytes: &[u8]) -> Result<Closure> {
    let value: Value = crate::ingest::json(file, bytes)?;
    let mut paths = match &value {
        Value::Array(items) => items
            .iter()
            .map(|v| path_info(file, None, v))
            .collect::<Result<Vec<_>>>()?,
        // Nix prints `null` for a path that is not valid in the store.
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| path_info(file, Some(k), v))
            .collect::<Result<Vec<_>>>()?,
        _ => {
            return Err(Error::input(
                file,
                "expected the JSON of `nix path-info --json --recursive`",
            ))
        }
    };
    if paths.is_empty() {
        return Err(Error::input(file, "the closure is empty"));
    }
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    paths.dedup_by(|a, b| a.path == b.path);
    let closure = Closure {
        source: file.display().to_string(),
        paths,
        files: BTreeMap::new(),
    };
    complete(file, &closure)?;
    Ok(closure)
}

/// Refuses a closure that is not closed: a path referring to a store path the input does not
/// list. That is what `nix path-info --json` prints without `--recursive` (the named paths
/// only), or a cache missing an object; auditing it would pass over every path it leaves out.
fn complete(file: &Path, closure: &Closure) -> Result<()> {
    let listed: BTreeSet<&str> = closure.paths.iter().map(|p| p.path.as_str()).collect();
    let mut missing = closure.paths.iter().flat_map(|p| {
        p.references
            .iter()
            .filter(|r| !listed.contains(r.as_str()))
            .map(move |r| (p.path.as_str(), r.as_str()))
    });
    if let Some((path, reference)) = missing.next() {
        let more = missing.count();
        return Err(Error::input(
            file,
            format!(
                "not a complete closure: {path} refers to {reference}, which it does not list{}; \
                 give the JSON of `nix path-info --json --recursive` (without --recursive it lists \
                 only the paths named)",
                if more > 0 {
                    format!(" ({more} more reference(s) missing)")
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok(())
}

/// The store path `source` is or links to (`./result`, `/run/current-system`), if any.
pub fn store_path_of(source: &str) -> Option<String> {
    let prefix = format!("{DEFAULT_STORE_DIR}/");
    if source.starts_with(&prefix) {
        return Some(source.to_string());
    }
    let resolved = std::fs::canonicalize(source).ok()?;
    let resolved = resolved.to_str()?;
    resolved.starts_with(&prefix).then(|| resolved.to_string())
}

/// The closure of a store path, from the installed `nix`.
pub fn closure_of_store_path(store_path: &str) -> Result<Closure> {
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
    let mut closure = closure_from_json(Path::new(store_path), &output.stdout)?;
    closure.source = store_path.to_string();
    Ok(closure)
}

/// A closure from what the user named: a store path or a link to one, a binary cache directory
/// (with `nix-cache-info`), or a JSON file of path info.
pub fn closure(source: &str, unpack_into: &Path) -> Result<Closure> {
    if let Some(store_path) = store_path_of(source) {
        return closure_of_store_path(&store_path);
    }
    let path = PathBuf::from(source);
    if path.join("nix-cache-info").is_file() {
        return closure_from_binary_cache(&path, unpack_into);
    }
    let bytes = crate::ingest::read_limited(&path)?;
    closure_from_json(&path, &bytes)
}

/// Reads the closure `source` names (see [`closure`]) and hands it to `use_it`; a binary cache's
/// NARs are unpacked into a temporary directory that is removed afterwards.
pub fn with_closure<T>(source: &str, use_it: impl FnOnce(&Closure) -> Result<T>) -> Result<T> {
    let unpacked = std::env::temp_dir().join(format!(
        "devsecops-closure-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let result = closure(source, &unpacked).and_then(|c| use_it(&c));
    let _ = std::fs::remove_dir_all(&unpacked);
    result
}

/// Every store object of a binary cache directory (`nix copy --to file://DIR`): path info from its
/// `.narinfo` files (`nix-narinfo`), files unpacked from its NARs (`nix-nar`) into `unpack_into`.
/// Compressed NARs are refused with the way to write uncompressed ones.
pub fn closure_from_binary_cache(dir: &Path, unpack_into: &Path) -> Result<Closure> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::input(dir, e.to_string()))?;
    let mut infos = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::input(dir, e.to_string()))?;
        let file = entry.path();
        if file.extension().and_then(|e| e.to_str()) != Some("narinfo") {
            continue;
        }
        let bytes = crate::ingest::read_limited(&file)?;
        let info = nix_narinfo::NarInfo::parse_in(&nix_derivation::StoreDir::default(), &bytes)
            .map_err(|e| Error::input(&file, e.to_string()))?;
        infos.push((file, info));
    }
    if infos.is_empty() {
        return Err(Error::input(dir, "the binary cache holds no .narinfo file"));
    }
    std::fs::create_dir_all(unpack_into).map_err(|e| Error::input(unpack_into, e.to_string()))?;
    let mut closure = Closure {
        source: dir.display().to_string(),
        paths: Vec::new(),
        files: BTreeMap::new(),
    };
    for (file, info) in infos {
        let path = info.store_path().to_absolute_path();
        if *info.compression() != nix_narinfo::Compression::None {
            return Err(Error::input(
                &file,
                format!(
                    "{path}: the NAR is {}-compressed; audit a cache written uncompressed (nix copy --to 'file://DIR?compression=none')",
                    info.compression()
                ),
            ));
        }
        let nar = dir.join(info.url());
        let nar = nar
            .canonicalize()
            .ok()
            .filter(|n| n.starts_with(dir.canonicalize().unwrap_or_default()))
            .ok_or_else(|| {
                Error::input(
                    &file,
                    format!("URL {} is not a file of the cache", info.url()),
                )
            })?;
        let expected = info.nar_hash().to_sri_string();
        let actual = sri_of_reader(
            std::fs::File::open(&nar).map_err(|e| Error::input(&nar, e.to_string()))?,
            &nar,
        )?;
        if actual != expected {
            return Err(Error::input(
                &nar,
                format!(
                    "NAR hash {actual} is not the {expected} of {}",
                    file.display()
                ),
            ));
        }
        let target = unpack_into.join(store_hash(&path).unwrap_or("path"));
        let reader = std::fs::File::open(&nar).map_err(|e| Error::input(&nar, e.to_string()))?;
        let decoder = nix_nar::Decoder::new(std::io::BufReader::new(reader))
            .map_err(|e| Error::input(&nar, e.to_string()))?;
        decoder
            .unpack(&target)
            .map_err(|e| Error::input(&nar, format!("cannot unpack: {e}")))?;
        closure.files.insert(path.clone(), target);
        closure.paths.push(PathInfo {
            references: info
                .references()
                .iter()
                .map(|r| r.to_absolute_path())
                .filter(|r| *r != path)
                .collect(),
            deriver: info.deriver().map(|d| d.to_absolute_path()),
            nar_hash: Some(expected),
            nar_size: Some(info.nar_size()),
            path,
        });
    }
    closure.paths.sort_by(|a, b| a.path.cmp(&b.path));
    complete(dir, &closure)?;
    Ok(closure)
}

fn sri_of_reader(mut reader: impl Read, file: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| Error::input(file, e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let digest: [u8; 32] = hasher.finalize().into();
    Ok(nix_derivation::NixHash::Sha256(digest).to_sri_string())
}

/// The SRI SHA-256 NAR hash of the files at `dir` (a store path or its unpacked copy), computed
/// from their NAR serialization (`nix-nar`) as Nix computes `narHash`.
pub fn nar_hash(dir: &Path) -> Result<String> {
    let encoder = nix_nar::Encoder::new(dir).map_err(|e| Error::input(dir, e.to_string()))?;
    sri_of_reader(encoder, dir)
}

/// A fixed-output derivation of a derivation graph: a source a build fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedOutput {
    pub drv_path: String,
    pub name: String,
    /// `flat`, `nar` (recursive), `text` or `git`: what the hash is of.
    pub method: String,
    /// The hash as Nix states it (SRI).
    pub hash: String,
    /// Lower-case hex of the digest.
    pub hex: String,
    /// `sha256`, `sha512`, `sha1`, `md5`, `blake3`.
    pub algorithm: String,
    pub urls: Vec<String>,
    /// A git revision, for sources fetched from version control.
    pub rev: Option<String>,
}

/// The derivation graph of `drv_file`: its root's path and name, and every fixed-output derivation
/// reachable through its input derivations, each read from the store (`nix-derivation`).
pub fn fixed_outputs(drv_file: &Path) -> Result<(String, String, Vec<FixedOutput>)> {
    let root = std::fs::canonicalize(drv_file)
        .map_err(|e| Error::input(drv_file, e.to_string()))?
        .display()
        .to_string();
    let mut seen = BTreeSet::new();
    let mut queue = vec![root.clone()];
    let mut found = Vec::new();
    let mut root_name = String::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let file = Path::new(&path);
        let bytes = crate::ingest::read_limited(file)?;
        let base = path.rsplit('/').next().unwrap_or(&path);
        let name = base
            .split_once('-')
            .map(|(_, n)| n)
            .unwrap_or(base)
            .trim_end_matches(".drv")
            .to_string();
        let drv = nix_derivation::Derivation::from_aterm_bytes(&bytes, &name)
            .map_err(|e| Error::input(file, format!("not a derivation: {e}")))?;
        if path == root {
            root_name = name.clone();
        }
        for input in drv.input_derivations().keys() {
            queue.push(input.to_absolute_path());
        }
        for output in drv.outputs().values() {
            if let nix_derivation::Output::Fixed { ca } = output {
                let hash = ca.hash();
                let env = |key: &str| {
                    drv.environment()
                        .get(key)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .or_else(|| structured(&drv, key))
                };
                let mut urls: Vec<String> = env("urls")
                    .map(|u| u.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default();
                if let Some(url) = env("url") {
                    if !urls.contains(&url) {
                        urls.insert(0, url);
                    }
                }
                found.push(FixedOutput {
                    drv_path: path.clone(),
                    name: name.clone(),
                    method: ca.method().to_string(),
                    hash: hash.to_sri_string(),
                    hex: hash
                        .digest_as_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                    algorithm: hash.algorithm().to_string(),
                    urls,
                    rev: env("rev").filter(|r| !r.is_empty()),
                });
            }
        }
    }
    found.sort_by(|a, b| a.drv_path.cmp(&b.drv_path));
    Ok((root, root_name, found))
}

/// A value of a derivation's structured attributes (`__structuredAttrs`) as text: a string, or a
/// list of strings joined by spaces (as the environment would hold it).
fn structured(drv: &nix_derivation::Derivation, key: &str) -> Option<String> {
    let value = drv.structured_attrs()?.get(key)?;
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
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

    #[test]
    fn store_paths_get_the_purls_syft_gives_them() {
        assert_eq!(
            store_purl("/nix/store/h0cnbmfcn93xm5dg2x27ixhag1cwndga-glibc-2.34-210"),
            "pkg:nix/glibc@2.34-210?outputhash=h0cnbmfcn93xm5dg2x27ixhag1cwndga"
        );
        assert_eq!(
            store_purl("/nix/store/h0cnbmfcn93xm5dg2x27ixhag1cwndga-source"),
            "pkg:nix/source?outputhash=h0cnbmfcn93xm5dg2x27ixhag1cwndga"
        );
    }

    #[test]
    fn every_json_shape_nix_prints_gives_the_same_closure() {
        let lib = "/nix/store/i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0";
        let app = "/nix/store/wvbjdqdc3ai65sqqzihgz53yf23df7mk-greeter-0.3.1";
        let sri = "sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=";
        let shapes = [
            // Nix 2.18 and earlier, and exportReferencesGraph: an array with absolute paths.
            format!(
                r#"[{{"path":"{lib}","narHash":"{sri}","narSize":1,"references":[]}},{{"path":"{app}","narHash":"{sri}","references":["{lib}"]}}]"#
            ),
            // Later: keyed by path, null for an invalid path.
            format!(
                r#"{{"{lib}":{{"narHash":"{sri}","references":[]}},"{app}":{{"narHash":"{sri}","references":["{lib}","{app}"]}},"/nix/store/00000000000000000000000000000000-gone":null}}"#
            ),
            // Format 2 and 3: base names beside storeDir; the old nix32 hash form.
            format!(
                r#"{{"i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0":{{"version":3,"storeDir":"/nix/store","narHash":"sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw","references":[]}},"wvbjdqdc3ai65sqqzihgz53yf23df7mk-greeter-0.3.1":{{"version":3,"storeDir":"/nix/store","narHash":{{"algorithm":"sha256","hash":"{sri}"}},"references":["i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0"]}}}}"#
            ),
        ];
        for shape in shapes {
            let closure = closure_from_json(Path::new("c.json"), shape.as_bytes()).expect(&shape);
            let paths: Vec<&str> = closure.paths.iter().map(|p| p.path.as_str()).collect();
            assert_eq!(paths, [lib, app], "{shape}");
            assert_eq!(closure.paths[1].references, [lib], "{shape}");
            assert_eq!(closure.root().map(|r| r.path.as_str()), Some(app));
            assert!(closure.paths[1].nar_hash.as_deref() == Some(sri), "{shape}");
        }
    }

    #[test]
    fn malformed_closures_are_errors_naming_what_is_wrong() {
        for (text, expect) in [
            ("[]", "empty"),
            ("3", "expected the JSON"),
            (r#"[{"narHash":"sha256-x"}]"#, "without a path"),
            (r#"[{"path":"/tmp/x"}]"#, "not a store path"),
            (
                r#"[{"path":"/nix/store/00000000000000000000000000000000-x","narHash":"md9-zz"}]"#,
                "not a Nix hash",
            ),
            (
                r#"[{"path":"/nix/store/00000000000000000000000000000000-x","references":"a"}]"#,
                "not an array",
            ),
            // `nix path-info --json` without --recursive: the path, not what it refers to.
            (
                r#"[{"path":"/nix/store/wvbjdqdc3ai65sqqzihgz53yf23df7mk-greeter-0.3.1","narHash":"sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=","references":["/nix/store/i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0","/nix/store/wvbjdqdc3ai65sqqzihgz53yf23df7mk-greeter-0.3.1"]}]"#,
                "not a complete closure: /nix/store/wvbjdqdc3ai65sqqzihgz53yf23df7mk-greeter-0.3.1 refers to /nix/store/i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0, which it does not list",
            ),
            // A referenced path Nix printed as null (not valid in the store) is missing too.
            (
                r#"{"/nix/store/wvbjdqdc3ai65sqqzihgz53yf23df7mk-greeter-0.3.1":{"references":["/nix/store/i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0"]},"/nix/store/i6manzpcd93f6q6bgz48c7j4qjdaq8w4-libgreet-1.2.0":null}"#,
                "not a complete closure",
            ),
        ] {
            let err = closure_from_json(Path::new("c.json"), text.as_bytes()).expect_err(text);
            assert!(err.to_string().contains(expect), "{text}: {err}");
        }
    }

    #[test]
    fn nar_hashes_are_computed_as_nix_computes_them() {
        // A single regular file "hello\n" (not executable): Nix's own narHash for it, from
        // tests/fixtures/real/nix-path-info.json (libgreet-1.2.0, built by `echo hello > $out`).
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("out");
        std::fs::write(&file, "hello\n").expect("write");
        assert_eq!(
            nar_hash(&file).expect("hash"),
            "sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM="
        );
    }
}
