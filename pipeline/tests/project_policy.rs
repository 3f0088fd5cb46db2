//! The project's own gate as `gate --base` reads it: CODEOWNERS is one GitHub would use, and it
//! gives every file that decides the gate (the policy, suppressions, baseline, approval keys, each
//! scanner's rule files, the CI definitions and the gate's code) to the security team.

use std::path::Path;

use devsecops::codeowners::CodeOwners;
use devsecops::config::Config;

#[test]
fn the_projects_owners_cover_what_decides_the_gate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join(".github/CODEOWNERS")).expect("CODEOWNERS");
    let owners = CodeOwners::parse(".github/CODEOWNERS", &text).expect("GitHub would use it");
    let config = Config::load(&root.join("devsecops.toml")).expect("policy");
    let mut policy_files: Vec<String> = [
        "devsecops.toml",
        ".devsecops/suppressions.toml",
        ".devsecops/baseline.json",
        ".devsecops/allowed_signers",
        ".devsecops/approvals/alice.sig",
        ".github/CODEOWNERS",
        ".github/workflows/ci.yml",
        "jenkins/Jenkinsfile",
        "scripts/test.sh",
        ".ci/run",
        "pipeline/src/policy_diff.rs",
    ]
    .map(String::from)
    .to_vec();
    for scanner in &config.scanners {
        assert!(
            !scanner.rules.is_empty(),
            "scanner {} lists the files it takes rules from",
            scanner.name
        );
        for rule in &scanner.rules {
            let file = rule.split('#').next().unwrap_or(rule);
            // A directory stands for the files in it.
            policy_files.push(if root.join(file).is_dir() {
                format!("{file}/rules.yml")
            } else {
                file.to_string()
            });
        }
    }
    for file in policy_files {
        assert_eq!(
            owners.owners(&file),
            ["@devsecops-platform/security"],
            "{file} is owned by the security team"
        );
    }
    // What the scanners and cargo read on their own, in any directory, and the inputs that
    // decide which binary gates.
    for file in [
        ".cargo/config.toml",
        "app/.cargo/config.toml",
        "app/.cargo/config",
        ".cargo/audit.toml",
        "rust-toolchain",
        "app/rust-toolchain.toml",
        "scripts/.shellcheckrc",
        "app/.semgrepignore",
        "k8s/.gitleaksignore",
        "k8s/.trivyignore",
        "Cargo.lock",
        "pipeline/fuzz/Cargo.lock",
        "flake.lock",
        "scripts/fetch-shared.sh",
        "scripts/requirements-scanners.txt",
        // The gates that read their policy from the tree they check, not from a base.
        "scripts/scan-image.sh",
        ".devsecops/image-suppressions.toml",
        "nix/checks.nix",
        "nix/devsecops-gate.toml",
        ".devsecops/appliance-suppressions.toml",
    ] {
        assert_eq!(
            owners.owners(file),
            ["@devsecops-platform/security"],
            "{file} is owned by the security team"
        );
    }
    assert!(
        owners.owners("app/src/main.rs").is_empty(),
        "the service's code needs no security review"
    );
}
