//! `resin demo`: the whole path on the bundled model, a small ResNet trained on the UCI handwritten digits
//! (examples/demo, made by `make_demo.py`): import and skip recognition, compile with the passes' report,
//! accuracy on the 297 held-out digits, the graph picture, a standalone executable built and run once on
//! the bundled images, and the time of each stage. The model and data are embedded in the binary, so the
//! demo runs from any directory.

use anyhow::{anyhow, bail, Context, Result};
use resin_runtime::{npy, Model, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

const MODEL: &[u8] = include_bytes!("../examples/demo/digits_resnet.onnx");
const TEST_INPUT: &[u8] = include_bytes!("../examples/demo/test_input.npy");
const TEST_LABELS: &[u8] = include_bytes!("../examples/demo/test_labels.npy");
const IMAGES: &[(&str, &[u8])] = &[
    ("digit_0_16.png", include_bytes!("../examples/demo/images/digit_0_16.png")),
    ("digit_1_0.png", include_bytes!("../examples/demo/images/digit_1_0.png")),
    ("digit_2_28.png", include_bytes!("../examples/demo/images/digit_2_28.png")),
    ("digit_3_4.png", include_bytes!("../examples/demo/images/digit_3_4.png")),
    ("digit_4_2.png", include_bytes!("../examples/demo/images/digit_4_2.png")),
    ("digit_5_17.png", include_bytes!("../examples/demo/images/digit_5_17.png")),
    ("digit_6_3.png", include_bytes!("../examples/demo/images/digit_6_3.png")),
    ("digit_7_1.png", include_bytes!("../examples/demo/images/digit_7_1.png")),
    ("digit_8_11.png", include_bytes!("../examples/demo/images/digit_8_11.png")),
    ("digit_9_7.png", include_bytes!("../examples/demo/images/digit_9_7.png")),
];
const LABELS: &str = "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n";

/// The int64 elements of a `.npy` file's bytes (little-endian, C order).
fn npy_i64(bytes: &[u8]) -> Result<Vec<i64>> {
    let a = npy::parse(bytes, Path::new("test_labels.npy"))?;
    if a.descr != "<i8" {
        bail!("test_labels.npy: expected int64, got {}", npy::dtype_name(&a.descr));
    }
    let n: usize = a.shape.iter().product();
    let body = &bytes[bytes.len() - n * 8..];
    Ok(body.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
}

struct Stages(Vec<(&'static str, f64)>, Instant);

impl Stages {
    fn done(&mut self, name: &'static str) {
        self.0.push((name, self.1.elapsed().as_secs_f64() * 1e3));
        self.1 = Instant::now();
    }
}

/// Runs the demo, writing its files into `dir`.
pub fn run(dir: &Path, threads: Option<usize>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let mut t = Stages(Vec::new(), Instant::now());
    let onnx_path = dir.join("digits_resnet.onnx");
    npy::write_atomic(&onnx_path, MODEL)?;
    let img_dir = dir.join("images");
    std::fs::create_dir_all(&img_dir)?;
    for (name, bytes) in IMAGES {
        npy::write_atomic(&img_dir.join(name), bytes)?;
    }
    npy::write_atomic(&img_dir.join("labels.txt"), LABELS.as_bytes())?;
    println!("== resin demo: a ResNet trained on 8x8 handwritten digits (files in {})", dir.display());

    // 1. Import: the IR and its skips.
    let mut g = crate::onnx::load(&onnx_path, &Default::default())?;
    let skips = g.recognize_skips();
    println!(
        "\n[1] imported {}: {} nodes, {} parameters, {} MACs per image; skips: {skips}",
        onnx_path.display(),
        g.len(),
        g.param_count(),
        g.macs()
    );
    t.done("import");

    // 2. Compile.
    let compiled = crate::compile::compile(g.clone(), &[])?;
    let meta = resin_runtime::format::Metadata::new("digits_resnet.onnx");
    let resin_path = dir.join("digits.resin");
    resin_runtime::format::save(&compiled.plan, &meta, &resin_path)?;
    println!("\n[2] compiled to {}:", resin_path.display());
    print!("{}", compiled.report(false));
    t.done("compile");

    // 3. Accuracy on the held-out digits, from the artifact.
    let model = Model::load(&resin_path)?;
    let x = npy::parse(TEST_INPUT, Path::new("test_input.npy"))?;
    let input = Tensor { shape: x.shape, data: x.f32_data.ok_or_else(|| anyhow!("test_input.npy is not float32"))? };
    let labels = npy_i64(TEST_LABELS)?;
    let mut session = match threads {
        Some(n) => model.session_with_threads(n)?,
        None => model.session()?,
    };
    let out = session.run(&[&input])?;
    let pred = out[0].argmax_rows();
    let correct = pred.iter().zip(&labels).filter(|(p, l)| **p as i64 == **l).count();
    println!(
        "\n[3] accuracy on {} held-out digits: {:.2}% ({correct} correct), one batch of {}",
        labels.len(),
        100.0 * correct as f64 / labels.len() as f64,
        labels.len()
    );
    t.done("classify 297 digits");

    // 4. The graph, after passes.
    let mut after = g.clone();
    crate::passes::run_pipeline(&mut after, &[])?;
    for (fmt, file) in [(crate::viz::Format::Svg, "digits.svg"), (crate::viz::Format::Html, "digits.html")] {
        let text = crate::viz::render(&after, fmt, "digits ResNet (after passes)");
        npy::write_atomic(&dir.join(file), text.as_bytes())?;
    }
    println!(
        "\n[4] graph: {} and {} (open the HTML in a browser: pan, zoom, click a node)",
        dir.join("digits.svg").display(),
        dir.join("digits.html").display()
    );
    t.done("visualize");

    // 5. A standalone executable, run once on the bundled images.
    let exe = dir.join("digits-classifier");
    let bytes = resin_runtime::format::to_bytes(&compiled.plan, &meta);
    let size = crate::exe::build_exe(&bytes, &exe)?;
    t.done("build executable");
    let images: Vec<PathBuf> = IMAGES.iter().map(|(n, _)| img_dir.join(n)).collect();
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(["--resize", "8", "--mean", "0", "--std", "1", "--top", "1", "--labels"]).arg(img_dir.join("labels.txt"));
    cmd.args(&images);
    let o = cmd.output().with_context(|| format!("cannot run {}", exe.display()))?;
    if !o.status.success() {
        bail!("{} failed: {}", exe.display(), String::from_utf8_lossy(&o.stderr).trim());
    }
    let text = String::from_utf8_lossy(&o.stdout);
    println!(
        "\n[5] standalone executable {} ({:.1} MiB, needs no other file):",
        exe.display(),
        size as f64 / 1048576.0
    );
    println!("    $ {} --resize 8 --mean 0 --std 1 --top 1 --labels labels.txt images/*.png", exe.display());
    let mut right = 0;
    for line in text.lines().filter(|l| l.contains("top-")) {
        println!("    {line}");
        // `…/digit_<label>_<i>.png: top-1: <class> …`: the file name carries the true label.
        let label = line.split("digit_").nth(1).and_then(|s| s.split('_').next());
        let guess = line.split("top-1:").nth(1).map(str::trim).and_then(|s| s.split([' ', '(']).next());
        if label.is_some() && label == guess {
            right += 1;
        }
    }
    println!("    {right} of {} images classified as the digit they show", images.len());
    t.done("run executable");

    println!("\n[6] time of each stage:");
    for (name, ms) in &t.0 {
        println!("    {name:<22} {ms:8.1} ms");
    }
    Ok(())
}
