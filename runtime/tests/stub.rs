//! The bare `resin-run` stub (no model appended): `--help` works, anything else is a one-line error.
//! (Also what makes `cargo test` build the stub, which the root package's `tests/standalone.rs` uses.)

use std::process::Command;

#[test]
fn bare_stub_helps_and_refuses_cleanly() {
    let stub = env!("CARGO_BIN_EXE_resin-run");
    let out = Command::new(stub).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:") && text.contains("--input"), "{text}");

    for args in [&["--info"][..], &["x.png"], &["--input", "x.npy"], &["--bogus"], &["--threads", "zero"]] {
        let out = Command::new(stub).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("error: ") && err.trim_end().lines().count() == 1, "{args:?}: {err}");
    }
    let out = Command::new(stub).arg("--info").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no embedded model"));
}
