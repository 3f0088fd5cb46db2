//! Tests only: see tests/image.rs.
