//! `devsecops`: turns security scanners' outputs into one finding model, one decision and one
//! report. See pipeline/README.md.

pub mod assess;
pub mod audit;
pub mod baseline;
pub mod config;
pub mod error;
pub mod history;
pub mod ingest;
pub mod locate;
pub mod model;
pub mod nix;
pub mod report;
pub mod sbom;
pub mod scan;
pub mod store;
pub mod suppress;
pub mod vex;
