//! The `sandpit` command line.
fn main() {}
