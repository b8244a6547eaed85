//! The ONNX backend node tests (onnx 1.22.0's `onnx/backend/test/data/node/`) that use only ops resin
//! claims, run through `resin run` by `conformance/run.py` (see conformance/README.md). The test passes when
//! every failure is listed in `conformance/expected_failures.txt`.
//!
//! Needs `python3` with `onnx` and `numpy`, and the data (fetched once with `pip download onnx==1.22.0` into
//! `~/.cache/resin-conformance/1.22.0` or `$RESIN_CONFORMANCE_DATA`); without them it prints "SKIPPED: ..."
//! and passes.

use std::path::Path;
use std::process::Command;

/// conformance/run.py's exit status when python's onnx or the data are not available.
const SKIP_EXIT: i32 = 77;

#[test]
fn onnx_node_tests_pass_or_fail_as_expected() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = Command::new("python3").args(["-c", "import onnx, numpy"]).output();
    if !python.map(|o| o.status.success()).unwrap_or(false) {
        println!("SKIPPED: python3 with onnx and numpy is not installed");
        return;
    }
    let out = Command::new("python3")
        .arg(root.join("conformance/run.py"))
        .arg("--resin")
        .arg(env!("CARGO_BIN_EXE_resin"))
        .current_dir(root)
        .output()
        .expect("run conformance/run.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(SKIP_EXIT) {
        let why = stdout.lines().find(|l| l.starts_with("SKIPPED")).unwrap_or("SKIPPED: no ONNX node-test data");
        println!("{why}");
        return;
    }
    let summary = stdout.lines().rev().find(|l| l.starts_with("conformance: "));
    println!("{}", summary.unwrap_or("conformance: run.py printed no summary line"));
    assert!(
        out.status.success(),
        "conformance/run.py failed (a failure not in conformance/expected_failures.txt):\n{stdout}\n{stderr}"
    );
    assert!(summary.is_some(), "run.py printed no summary line:\n{stdout}");
}
