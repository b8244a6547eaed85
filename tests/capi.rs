//! The C API: the header against the exports, the functions called in process, and the C example
//! (`examples/c/classify.c`) compiled with `cc` against `libresin_runtime.so` and run (under valgrind
//! when it is installed).

mod common;

use common::read_npy;
use resin_runtime::capi::*;
use resin_runtime::format::{self, Metadata};
use resin_runtime::Model;
use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("resin-capi-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh `.resin` of resnet20 in `dir`, compiled through the library.
fn compile_resnet20(dir: &Path) -> PathBuf {
    let onnx = common::models_dir().join("resnet20.onnx");
    let compiled = resin::compile::compile(resin::cli::load_graph(&onnx).unwrap(), &[]).unwrap();
    let path = dir.join("resnet20.resin");
    format::save(&compiled.plan, &Metadata::new("resnet20.onnx"), &path).unwrap();
    path
}

/// Top-level items of a C or Rust source with comments removed.
fn strip_comments(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
            out.push(' ');
        } else if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The number of parameters in a parenthesised list's inside (`void` counts as none).
fn arity(params: &str) -> usize {
    let p = params.trim();
    if p.is_empty() || p == "void" {
        0
    } else {
        p.split(',').filter(|s| !s.trim().is_empty()).count()
    }
}

/// Function name → parameter count for every `#[no_mangle] ... extern "C" fn` in capi.rs.
fn rust_exports() -> BTreeMap<String, usize> {
    let src = strip_comments(&std::fs::read_to_string(root().join("runtime/src/capi.rs")).unwrap());
    let mut found = BTreeMap::new();
    let mut pieces = src.split("#[no_mangle]");
    pieces.next();
    for piece in pieces {
        let at = piece.find("extern \"C\" fn ").expect("#[no_mangle] on an extern \"C\" fn");
        let sig = &piece[at + "extern \"C\" fn ".len()..];
        let open = sig.find('(').unwrap();
        let close = sig.find(')').unwrap();
        found.insert(sig[..open].trim().to_string(), arity(&sig[open + 1..close]));
    }
    // Every extern "C" fn is #[no_mangle] (and the other way round).
    assert_eq!(src.matches("extern \"C\" fn ").count(), found.len(), "an extern \"C\" fn without #[no_mangle]");
    found
}

/// Function name → parameter count for every function declared in resin.h.
fn header_declarations() -> BTreeMap<String, usize> {
    let src = strip_comments(&std::fs::read_to_string(root().join("runtime/include/resin.h")).unwrap());
    let code: String = src.lines().filter(|l| !l.trim_start().starts_with('#')).collect::<Vec<_>>().join("\n");
    let mut found = BTreeMap::new();
    for stmt in code.split(';') {
        let stmt = stmt.replace("extern \"C\" {", "").replace('}', "");
        let stmt = stmt.trim();
        if stmt.is_empty() || stmt.starts_with("typedef") {
            continue;
        }
        let open = stmt.find('(').unwrap_or_else(|| panic!("not a function declaration: {stmt}"));
        let close = stmt.rfind(')').unwrap();
        let name = stmt[..open].trim_end().rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap();
        assert!(name.starts_with("resin_"), "unprefixed declaration {name}");
        assert!(found.insert(name.to_string(), arity(&stmt[open + 1..close])).is_none(), "{name} declared twice");
    }
    found
}

#[test]
fn header_declares_exactly_the_exported_functions() {
    let rust = rust_exports();
    let header = header_declarations();
    assert!(rust.len() >= 15, "too few exports found: {rust:?}");
    assert_eq!(header, rust, "resin.h (left) and capi.rs (right) disagree on names or parameter counts");
    // The shared library exports them too (when it has been built and `nm` is available).
    let so = lib_dir().map(|d| d.join("libresin_runtime.so"));
    if let Some(out) = so.and_then(|so| Command::new("nm").args(["-D", "--defined-only"]).arg(so).output().ok()) {
        let symbols = String::from_utf8_lossy(&out.stdout);
        let exported: Vec<&str> =
            symbols.lines().filter_map(|l| l.split_whitespace().last()).filter(|s| s.starts_with("resin_")).collect();
        let mut exported = exported.into_iter().map(String::from).collect::<Vec<_>>();
        exported.sort();
        assert_eq!(exported, header.keys().cloned().collect::<Vec<_>>(), "libresin_runtime.so exports");
    }
}

fn last_error() -> String {
    let p = resin_last_error();
    assert!(!p.is_null(), "no error message");
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn c_functions_in_process() {
    let dir = temp_dir("inproc");
    let path = compile_resnet20(&dir);
    let x = read_npy(&common::models_dir().join("resnet20_input.npy"));
    let want = Model::load(&path).unwrap().session_with_threads(1).unwrap().run(&[&x]).unwrap().remove(0);

    unsafe {
        // NULLs and bad files are errors with messages, never crashes.
        assert!(resin_model_load(ptr::null()).is_null());
        assert!(last_error().contains("NULL"));
        let missing = CString::new(dir.join("missing.resin").to_str().unwrap()).unwrap();
        assert!(resin_model_load(missing.as_ptr()).is_null());
        assert!(last_error().contains("missing.resin"), "{}", last_error());
        assert_eq!(resin_model_num_inputs(ptr::null()), 0);
        assert!(resin_session_new(ptr::null(), 1).is_null());
        assert!(resin_tensor_data(ptr::null()).is_null());
        assert!(resin_tensor_shape(ptr::null()).is_null());
        assert_eq!(resin_tensor_rank(ptr::null()), 0);
        resin_model_free(ptr::null_mut());
        resin_session_free(ptr::null_mut());
        resin_tensor_free(ptr::null_mut());

        let cpath = CString::new(path.to_str().unwrap()).unwrap();
        let model = resin_model_load(cpath.as_ptr());
        assert!(!model.is_null(), "{}", last_error());
        assert_eq!(resin_model_num_inputs(model), 1);
        assert_eq!(resin_model_num_outputs(model), 1);
        assert_eq!(CStr::from_ptr(resin_model_input_name(model, 0)).to_str().unwrap(), "input");
        assert!(!resin_model_output_name(model, 0).is_null());
        assert!(resin_model_input_name(model, 1).is_null());
        assert!(last_error().contains("out of range"));
        assert_eq!(resin_model_input_rank(model, 0), 4);
        assert_eq!(std::slice::from_raw_parts(resin_model_input_shape(model, 0), 4), &[0, 3, 32, 32]);

        let session = resin_session_new(model, 1);
        assert!(!session.is_null());
        resin_model_free(model); // the session keeps what it needs

        let inputs = [x.data.as_ptr()];
        let shape = x.shape.clone();
        let shapes = [shape.as_ptr()];
        let ranks = [shape.len()];
        let mut outputs = [ptr::null_mut(); 2];
        let mut n = 2usize;
        let rc = resin_session_run(
            session,
            inputs.as_ptr(),
            shapes.as_ptr(),
            ranks.as_ptr(),
            1,
            outputs.as_mut_ptr(),
            &mut n,
        );
        assert_eq!(rc, RESIN_OK, "{}", last_error());
        assert_eq!(n, 1);
        let t = outputs[0];
        assert_eq!(std::slice::from_raw_parts(resin_tensor_shape(t), resin_tensor_rank(t)), &[1, 10]);
        let got = std::slice::from_raw_parts(resin_tensor_data(t), resin_tensor_len(t));
        assert_eq!(
            got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            want.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        resin_tensor_free(t);

        // Too small an output array: says how many are needed, allocates nothing.
        let mut n = 0usize;
        let rc = resin_session_run(
            session,
            inputs.as_ptr(),
            shapes.as_ptr(),
            ranks.as_ptr(),
            1,
            outputs.as_mut_ptr(),
            &mut n,
        );
        assert_eq!(rc, RESIN_ERR_ARGUMENT);
        assert_eq!(n, 1);
        // A wrong shape: the runtime's message.
        let bad = [1usize, 3, 16, 16];
        let bad_shapes = [bad.as_ptr()];
        let mut n = 1usize;
        let rc = resin_session_run(
            session,
            inputs.as_ptr(),
            bad_shapes.as_ptr(),
            ranks.as_ptr(),
            1,
            outputs.as_mut_ptr(),
            &mut n,
        );
        assert_eq!(rc, RESIN_ERR_RUN);
        assert!(last_error().contains("expected shape [N,3,32,32]"), "{}", last_error());
        // Wrong input count, NULL arrays.
        let rc = resin_session_run(session, ptr::null(), ptr::null(), ptr::null(), 0, outputs.as_mut_ptr(), &mut n);
        assert_eq!(rc, RESIN_ERR_RUN);
        assert!(last_error().contains("expected 1 input(s), got 0"), "{}", last_error());
        let rc =
            resin_session_run(session, ptr::null(), shapes.as_ptr(), ranks.as_ptr(), 1, outputs.as_mut_ptr(), &mut n);
        assert_eq!(rc, RESIN_ERR_ARGUMENT);
        let rc = resin_session_run(
            ptr::null_mut(),
            inputs.as_ptr(),
            shapes.as_ptr(),
            ranks.as_ptr(),
            1,
            outputs.as_mut_ptr(),
            &mut n,
        );
        assert_eq!(rc, RESIN_ERR_ARGUMENT);
        let null_data = [ptr::null::<f32>()];
        let rc = resin_session_run(
            session,
            null_data.as_ptr(),
            shapes.as_ptr(),
            ranks.as_ptr(),
            1,
            outputs.as_mut_ptr(),
            &mut n,
        );
        assert_eq!(rc, RESIN_ERR_ARGUMENT);
        assert!(last_error().contains("inputs[0] is NULL"));
        let huge = [usize::MAX, 2, 1, 1];
        let huge_shapes = [huge.as_ptr()];
        let rc = resin_session_run(
            session,
            inputs.as_ptr(),
            huge_shapes.as_ptr(),
            ranks.as_ptr(),
            1,
            outputs.as_mut_ptr(),
            &mut n,
        );
        assert_eq!(rc, RESIN_ERR_ARGUMENT);
        assert!(last_error().contains("too large"));
        resin_session_free(session);
    }

    // Errors are per thread.
    std::thread::spawn(|| assert!(resin_last_error().is_null())).join().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// The directory holding a fresh `libresin_runtime.so`. A workspace `cargo test` does not always rebuild
/// the runtime's cdylib (a stale one once made this test load plans with an older checker), so the test
/// builds it itself — `cargo build --release -p resin-runtime --lib`, a no-op when it is up to date —
/// into this test binary's target directory, and takes it from the profile directory.
fn lib_dir() -> Option<PathBuf> {
    static BUILT: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let profile = std::env::current_exe().ok()?.parent()?.parent()?.to_path_buf();
            let target = profile.parent()?.to_path_buf();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let out = Command::new(cargo)
                .args(["build", "--release", "-p", "resin-runtime", "--lib"])
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(root())
                .output()
                .ok()?;
            assert!(
                out.status.success(),
                "building libresin_runtime.so failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            profile.join("libresin_runtime.so").is_file().then_some(profile)
        })
        .clone()
}

fn top1(stdout: &str) -> usize {
    let line = stdout.lines().find(|l| l.trim_start().starts_with("1. class")).expect("a top-1 line");
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[test]
fn c_example_classifies_and_reports_errors() {
    let lib =
        lib_dir().expect("libresin_runtime.so not found: run `cargo build --release` (or `cargo test --release`)");
    let dir = temp_dir("c");
    let exe = dir.join("classify");
    let cc = Command::new("cc")
        .arg(root().join("examples/c/classify.c"))
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-g", "-I"])
        .arg(root().join("runtime/include"))
        .arg("-L")
        .arg(&lib)
        .arg("-lresin_runtime")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cannot run cc");
    assert!(
        cc.status.success(),
        "cc failed (undefined references mean {} was built without the `capi` feature: `cargo build --release`):\n{}",
        lib.display(),
        String::from_utf8_lossy(&cc.stderr)
    );

    let model = compile_resnet20(&dir);
    let x = read_npy(&common::models_dir().join("resnet20_input.npy"));
    let reference = read_npy(&common::models_dir().join("resnet20_output.npy"));
    let raw = dir.join("input.f32");
    std::fs::write(&raw, x.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();

    let out = Command::new(&exe).arg(&model).arg(&raw).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "classify failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(top1(&stdout), reference.argmax_rows()[0], "classify's top-1 vs the reference's argmax");
    assert_eq!(stdout.matches(". class").count(), 5);

    // Synthetic input at batch 1 runs too.
    let out = Command::new(&exe).arg(&model).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // An invalid path: non-zero exit and resin_last_error's message.
    let missing = dir.join("no-such-model.resin");
    let out = Command::new(&exe).arg(&missing).arg(&raw).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot load the model")
            && stderr.contains("no-such-model.resin")
            && stderr.contains("cannot open"),
        "stderr: {stderr}"
    );
    // Not a .resin file.
    let out = Command::new(&exe).arg(&raw).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("input.f32"));

    let have_valgrind = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have_valgrind {
        println!("SKIPPED: valgrind not installed");
    } else {
        let out = Command::new("valgrind")
            .args(["--leak-check=full", "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99"])
            .arg(&exe)
            .arg(&model)
            .arg(&raw)
            .arg("2")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                [
                    "definitely lost",
                    "indirectly lost",
                    "possibly lost",
                    "still reachable",
                    "ERROR SUMMARY",
                    "All heap blocks",
                ]
                .iter()
                .any(|k| l.contains(k))
            })
            .collect();
        println!("valgrind:\n{}", summary.join("\n"));
        assert_eq!(out.status.code(), Some(0), "valgrind:\n{stderr}");
        assert_eq!(top1(&String::from_utf8_lossy(&out.stdout)), reference.argmax_rows()[0]);
        // Failing paths free what they allocated too.
        let out = Command::new("valgrind")
            .args(["--leak-check=full", "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99"])
            .arg(&exe)
            .arg(&missing)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "valgrind (invalid path):\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(dir);
}
