//! Prints docs/metrics.md from the metric catalog in the code.
fn main() {
    print!("{}", devsecops_app::metrics::catalog_markdown());
}
