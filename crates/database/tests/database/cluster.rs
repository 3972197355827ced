//! Preparing the embedded cluster: idempotent, private, and clean when initdb fails.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use sandpit_database::{DatabaseError, EmbeddedCluster, PgBinaries};

use crate::fixture::shared;

#[test]
fn prepare_again_reuses_the_cluster_and_keeps_secrets_private() {
    let server = shared();
    let first = &server.cluster;
    let again = EmbeddedCluster::prepare(&first.state_dir, &first.binaries).unwrap();
    assert_eq!(again.port, first.port);
    assert_eq!(again.admin_password, first.admin_password);
    assert_eq!(again.data_dir, first.data_dir);

    let password_file = std::fs::metadata(first.state_dir.join("admin-password")).unwrap();
    assert_eq!(password_file.permissions().mode() & 0o777, 0o600);
    assert_eq!(password_file.uid(), nix::unistd::geteuid().as_raw());
    let socket_dir = std::fs::metadata(&first.socket_dir).unwrap();
    assert_eq!(socket_dir.permissions().mode() & 0o777, 0o700);
    assert!(!first.state_dir.join("initdb-password").exists());

    match &first.run_as {
        Some(user) => {
            assert_eq!(socket_dir.uid(), user.uid);
            let notice = first.notice.as_deref().unwrap();
            assert!(notice.contains("`postgres` system user"), "{notice}");
            assert_eq!(first.launch().uid, Some(user.uid));
        }
        None => assert!(first.notice.is_none()),
    }

    let password = first.admin_password.expose();
    let debug = format!("{first:?}");
    assert!(!debug.contains(password), "{debug}");
    assert!(!first.admin_url_redacted().contains(password));
    assert!(first.admin_url().contains(password));

    let launch = first.launch();
    assert_eq!(launch.program, first.binaries.postgres);
    for expected in [
        "-D",
        "-p",
        "-k",
        "listen_addresses=127.0.0.1",
        "max_connections=200",
    ] {
        assert!(launch.args.iter().any(|arg| arg == expected), "{launch:?}");
    }
}

#[test]
fn failed_initdb_reports_its_output_and_leaves_no_data_directory() {
    let dir = tempfile::Builder::new()
        .prefix("sandpit-db-initdb-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for (program, script) in [
        (
            "initdb",
            "#!/bin/sh\necho 'initdb: error: disk on fire' >&2\nexit 1\n",
        ),
        ("postgres", "#!/bin/sh\nexit 0\n"),
    ] {
        let path = bin.join(program);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let binaries = PgBinaries::locate_in(bin.to_str(), &[]).unwrap();
    let state = dir.path().join("state");
    let error = EmbeddedCluster::prepare(&state, &binaries).unwrap_err();
    match &error {
        DatabaseError::InitFailed { log_tail, .. } => {
            assert!(log_tail.contains("disk on fire"), "{log_tail}")
        }
        other => panic!("expected InitFailed, got {other:?}"),
    }
    assert!(!state.join("data").exists());
    assert!(!state.join("data.initdb").exists());
    assert!(!state.join("initdb-password").exists());
}
