//! `devsecops`: turns security scanners' outputs into one finding model, one decision and one
//! report. See pipeline/README.md.

pub mod approval;
pub mod assess;
pub mod audit;
pub mod baseline;
pub mod codeowners;
pub mod config;
pub mod error;
pub mod git;
pub mod history;
pub mod ingest;
pub mod locate;
pub mod model;
pub mod nix;
pub mod policy_diff;
pub mod report;
pub mod sbom;
pub mod scan;
pub mod store;
pub mod suppress;
pub mod vex;
