//! Finding the server programs.

use std::path::Path;

use sandpit_database::{DatabaseError, PgBinaries};

#[test]
fn locates_the_installed_binaries() {
    let binaries = PgBinaries::locate(Some("/nonexistent")).unwrap();
    assert!(binaries.initdb.ends_with("initdb"), "{binaries:?}");
    assert!(binaries.postgres.ends_with("postgres"), "{binaries:?}");
    assert!(binaries.postgres.is_file());
}

#[test]
fn missing_binaries_name_what_to_install() {
    let empty = tempfile::tempdir().unwrap();
    let error =
        PgBinaries::locate_in(None, &[empty.path(), Path::new("/nonexistent")]).unwrap_err();
    assert!(matches!(error, DatabaseError::BinariesMissing));
    let message = error.to_string();
    assert!(message.contains("initdb, postgres"), "{message}");
    assert!(
        message.contains("apt-get install -y postgresql"),
        "{message}"
    );
}
