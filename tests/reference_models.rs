//! Full-size torchvision exports from the folder named by RESIN_MODELS (.ci/run sets it to
//! ../shared/models): every `NAME.onnx` with `NAME_input.npy` and `NAME_output.npy` is compiled, run at
//! batch 1 and at batch 3 (the same input stacked: every row must match), and compared with ONNX
//! Runtime's output. The skip counts the shared README states are checked too.

mod common;

use resin::onnx::{self, ImportOptions};
use std::path::PathBuf;

fn reference_dir() -> Option<PathBuf> {
    match std::env::var_os("RESIN_MODELS") {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            println!("SKIPPED: RESIN_MODELS is not set (point it at a folder of NAME.onnx + NAME_input.npy + NAME_output.npy, e.g. ../shared/models)");
            None
        }
    }
}

#[test]
fn reference_models_match_onnx_runtime() {
    let Some(dir) = reference_dir() else { return };
    assert!(dir.is_dir(), "RESIN_MODELS={} is not a folder", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".onnx").map(String::from))
        .filter(|n| dir.join(format!("{n}_input.npy")).exists() && dir.join(format!("{n}_output.npy")).exists())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no NAME.onnx with NAME_input.npy and NAME_output.npy in {}", dir.display());
    for name in &names {
        let t = std::time::Instant::now();
        let max = common::check_model(&dir, name);
        println!("{name}: max abs diff {max:.2e} ({:.1} s)", t.elapsed().as_secs_f64());
    }
}

#[test]
fn reference_skip_counts() {
    let Some(dir) = reference_dir() else { return };
    let expect = [
        ("resnet18", "5 identity + 3 weighted"),
        ("resnet50", "12 identity + 4 weighted"),
        ("resnet20", "7 identity + 2 weighted"),
        ("densenet121", "4 dense blocks of 6, 12, 24, 16 layers"),
        ("mlp_res", "7 identity"),
        ("mlp_highway", "7 weighted"),
        ("mlp_dense", "28 dense"),
    ];
    for (name, want) in expect {
        let path = dir.join(format!("{name}.onnx"));
        if !path.exists() {
            println!("SKIPPED: {} is missing", path.display());
            continue;
        }
        let mut g = onnx::load(&path, &ImportOptions::default()).unwrap();
        let s = g.recognize_skips().to_string();
        assert!(s.contains(want), "{name}: got '{s}', expected '{want}'");
    }
}
