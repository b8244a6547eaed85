//! Standalone executables: ResNet-20 compiled and appended to the `resin-run` stub, copied alone into an
//! empty directory and run there on a `.npy` input (checked against ONNX Runtime) and on PNG and JPEG
//! images; damaged copies fail with a one-line error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/models")
}

/// A fresh empty directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("resin-standalone-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Brings the stub up to date: `cargo test` builds it only when the whole workspace is tested (the stub is
/// a binary of `resin-runtime`), so `cargo test --test standalone` would otherwise run a stale or missing
/// stub. Built from the workspace root so that features unify as in `cargo build`, which makes this a
/// no-op after a workspace build.
fn ensure_stub() {
    let Ok(cargo) = std::env::var("CARGO") else {
        resin::exe::find_stub().expect("the resin-run stub (run the tests with cargo, or build it first)");
        return;
    };
    let release = std::env::current_exe().unwrap().components().any(|c| c.as_os_str() == "release");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--bin", "resin-run"]);
    if release {
        cmd.arg("--release");
    }
    let out = cmd.current_dir(env!("CARGO_MANIFEST_DIR")).output().expect("running cargo");
    assert!(out.status.success(), "cargo build of the resin-run stub failed:\n{}", text(&out.stderr));
    resin::exe::find_stub().expect("the stub after building it");
}

/// ResNet-20 as a standalone executable (built once per test process), and its size.
fn resnet20_exe() -> &'static (PathBuf, u64) {
    static EXE: OnceLock<(PathBuf, u64)> = OnceLock::new();
    EXE.get_or_init(|| {
        ensure_stub();
        let g = resin::cli::load_graph(&models().join("resnet20.onnx")).unwrap();
        let c = resin::compile::compile(g, &[]).unwrap();
        let bytes = resin_runtime::format::to_bytes(&c.plan, &resin_runtime::format::Metadata::new("resnet20.onnx"));
        // In cargo's scratch directory for integration tests (target/tmp): one file, rebuilt by each run
        // (atomically: concurrent runs each rename an identical file into place).
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("resnet20-standalone");
        let size = resin::exe::build_exe(&bytes, &out).unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len());
        (out, size)
    })
}

/// A copy of the executable, alone in a new empty directory.
fn alone(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    let exe = dir.0.join("resnet20");
    std::fs::copy(&resnet20_exe().0, &exe).unwrap();
    (dir, exe)
}

/// Runs a freshly written executable (retrying ETXTBSY: see [`common::run_fresh_exe`]).
fn run(exe: &Path, dir: &Path, args: &[&str]) -> Output {
    common::run_fresh_exe(exe, dir, args)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_one_line_error(out: &Output, want: &str) {
    assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: ") && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains(want), "expected '{want}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn runs_npy_alone_and_matches_onnx_runtime() {
    let (dir, exe) = alone("npy");
    std::fs::copy(models().join("resnet20_input.npy"), dir.0.join("x.npy")).unwrap();
    let out = run(&exe, &dir.0, &["--input", "x.npy", "--output", "y.npy", "--threads", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("top-5:") && stdout.contains("wrote y.npy"), "{stdout}");
    assert_eq!(dir.files(), ["resnet20", "x.npy", "y.npy"]);
    let got = resin_runtime::npy::read(&dir.0.join("y.npy")).unwrap();
    let want = resin_runtime::npy::read(&models().join("resnet20_output.npy")).unwrap();
    assert_eq!(got.shape, want.shape);
    let (got, want) = (got.f32_data.unwrap(), want.f32_data.unwrap());
    for (i, (g, r)) in got.iter().zip(&want).enumerate() {
        assert!((g - r).abs() <= 1e-4 + 1e-3 * r.abs(), "element {i}: {g} vs {r}");
    }
    // By name, and the errors of `resin run`.
    let out = run(&exe, &dir.0, &["--input", "input=x.npy", "--top", "2"]);
    assert!(out.status.success() && text(&out.stdout).contains("top-2:"), "{}", text(&out.stderr));
    assert_one_line_error(&run(&exe, &dir.0, &["--input", "missing.npy"]), "missing.npy");
    assert_one_line_error(&run(&exe, &dir.0, &["--input", "x.npy", "--input", "x.npy"]), "too many --input");
    assert_one_line_error(&run(&exe, &dir.0, &["--input", "x.npy", "--output", "no/y.npy"]), "does not exist");
    assert_one_line_error(&run(&exe, &dir.0, &["--threads", "0", "--input", "x.npy"]), "at least 1");
    assert_one_line_error(&run(&exe, &dir.0, &[]), "nothing to run");
}

#[test]
fn runs_on_png_and_jpeg_images() {
    let (dir, exe) = alone("images");
    // A 48x40 picture: a red disc on a blue-green gradient.
    let img = image::RgbImage::from_fn(48, 40, |x, y| {
        let (dx, dy) = (x as i32 - 24, y as i32 - 20);
        if dx * dx + dy * dy < 144 {
            image::Rgb([230, 20, 20])
        } else {
            image::Rgb([0, (x * 5) as u8, (y * 6) as u8])
        }
    });
    img.save(dir.0.join("disc.png")).unwrap();
    image::DynamicImage::ImageRgb8(img.clone()).save(dir.0.join("disc.jpg")).unwrap();
    let labels: String = (0..10).map(|i| format!("class {i}\n")).collect();
    std::fs::write(dir.0.join("labels.txt"), labels).unwrap();

    let out = run(&exe, &dir.0, &["disc.png", "disc.jpg", "--top", "3", "--labels", "labels.txt", "-t", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("top-3: ")).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("disc.png: ") && lines[1].starts_with("disc.jpg: "), "{stdout}");
    assert!(lines[0].contains("\"class "), "{stdout}");

    // The same preprocessing through the library gives the same top class.
    let model = resin_runtime::standalone::load_exe(&exe).unwrap();
    let (mean, std) = resin_runtime::standalone::default_mean_std(3);
    let x = resin_runtime::standalone::preprocess(&image::DynamicImage::ImageRgb8(img), 3, 32, 32, 37, &mean, &std)
        .unwrap();
    let y = model.session_with_threads(1).unwrap().run(&[&resin_runtime::Tensor::new(vec![1, 3, 32, 32], x).unwrap()]);
    let best = y.unwrap()[0].argmax_rows()[0];
    assert!(lines[0].starts_with(&format!("disc.png: top-3: {best} \"class {best}\"")), "{best}: {stdout}");

    // Preprocessing options, and what is refused.
    let out = run(&exe, &dir.0, &["disc.png", "--resize", "32", "--mean", "0.5,0.5,0.5", "--std=0.5,0.5,0.5"]);
    assert!(out.status.success() && text(&out.stdout).contains("top-5:"), "{}", text(&out.stderr));
    assert_one_line_error(&run(&exe, &dir.0, &["disc.png", "--mean", "0.5"]), "--mean and --std need 3");
    assert_one_line_error(&run(&exe, &dir.0, &["labels.txt"]), "not a PNG or JPEG");
    assert_one_line_error(&run(&exe, &dir.0, &["nope.png"]), "nope.png");
    assert_one_line_error(&run(&exe, &dir.0, &["disc.png", "--input", "x.npy"]), "not both");
    assert_one_line_error(&run(&exe, &dir.0, &["disc.png", "--frobnicate"]), "unknown option '--frobnicate'");
}

#[test]
fn help_info_and_zero_copy() {
    let (dir, exe) = alone("info");
    let out = run(&exe, &dir.0, &["--help"]);
    let help = text(&out.stdout);
    assert!(out.status.success() && help.contains("Examples:") && help.contains("resnet20 --input"), "{help}");
    assert!(help.contains("Embedded model: resnet20.onnx: inputs input float32[N,3,32,32]"), "{help}");
    let out = run(&exe, &dir.0, &["--info"]);
    let info = text(&out.stdout);
    assert!(out.status.success() && info.contains("input: input float32[N,3,32,32]"), "{info}");
    assert!(info.contains("output: ") && info.contains("model: resnet20.onnx"), "{info}");
    // The stub maps the file and runs on the weights in the map.
    let model = resin_runtime::standalone::load_exe(&exe).unwrap();
    assert!(model.plan().weights.is_shared());
    let (_, size) = resnet20_exe();
    println!("resnet20 standalone executable: {size} bytes");
}

#[test]
fn damaged_executables_fail_with_one_line() {
    let (dir, exe) = alone("damaged");
    std::fs::copy(models().join("resnet20_input.npy"), dir.0.join("x.npy")).unwrap();
    let bytes = std::fs::read(&exe).unwrap();
    let write = |name: &str, b: &[u8]| {
        let p = dir.0.join(name);
        std::fs::write(&p, b).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        p
    };
    let truncated = write("truncated", &bytes[..bytes.len() - 1000]);
    assert_one_line_error(&run(&truncated, &dir.0, &["--input", "x.npy"]), "no embedded model");
    let mut corrupt = bytes.clone();
    let n = corrupt.len();
    corrupt[n - 5000] ^= 0x40;
    let corrupt = write("corrupt", &corrupt);
    assert_one_line_error(&run(&corrupt, &dir.0, &["--input", "x.npy"]), "checksum mismatch");
    // The library refuses a stub that already carries a model.
    let payload = resin_runtime::standalone::find_payload(&bytes).unwrap();
    let e = resin::exe::build_exe_with(&exe, payload, &dir.0.join("twice")).unwrap_err();
    assert!(e.to_string().contains("already carries a model"), "{e}");
    let e = resin::exe::build_exe_with(&exe, &payload[..100], &dir.0.join("bad")).unwrap_err();
    assert!(format!("{e:#}").contains("truncated"), "{e:#}");
}
