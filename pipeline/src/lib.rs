//! `devsecops`: turns security scanners' outputs into one finding model, one decision and one
//! report. See pipeline/README.md.

pub mod cvss;
pub mod error;
pub mod ingest;
pub mod model;
