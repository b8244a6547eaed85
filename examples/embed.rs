//! Embedding resin in an application: compile a model once (as `resin compile` does), then load the
//! compiled `.resin` file with the runtime alone and classify an image.
//!
//! ```sh
//! cargo run --release --example embed [-- MODEL.onnx INPUT.npy]
//! ```

use resin_runtime::format::{self, Metadata};
use resin_runtime::{npy, Model, Tensor};
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let onnx = args.first().map_or_else(|| root.join("tests/models/resnet20.onnx"), PathBuf::from);
    let input_path = args.get(1).map_or_else(|| root.join("tests/models/resnet20_input.npy"), PathBuf::from);

    // Build time (what `resin compile model.onnx -o model.resin` does): ONNX -> passes -> plan -> file.
    let dir = std::env::temp_dir().join(format!("resin-embed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let artifact = dir.join("model.resin");
    let compiled = resin::compile::compile(resin::cli::load_graph(&onnx)?, &[])?;
    let source = onnx.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format::save(&compiled.plan, &Metadata::new(source), &artifact)?;
    println!("compiled {} -> {}", onnx.display(), artifact.display());

    // Run time: the application needs only resin-runtime and the .resin file.
    let model = Model::load(&artifact)?;
    println!("model: {} (from {}, by {})", artifact.display(), model.metadata().source, model.metadata().producer);
    for (name, shape) in model.inputs() {
        println!("  input  {name} {}", resin_runtime::plan::fmt_dims(shape));
    }
    for (name, shape) in model.outputs() {
        println!("  output {name} {}", resin_runtime::plan::fmt_dims(shape));
    }
    let mut session = model.session()?;

    let a = npy::read(&input_path)?;
    let data = a.f32_data.ok_or_else(|| anyhow::anyhow!("{}: expected float32 data", input_path.display()))?;
    let input = Tensor::new(a.shape, data).expect("an .npy's shape matches its data");
    let outputs = session.run(&[&input])?;
    let logits = &outputs[0];

    let classes = logits.shape.last().copied().unwrap_or(1).max(1);
    for (row, scores) in logits.data.chunks(classes).enumerate() {
        // Softmax for readable probabilities.
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = scores.iter().map(|&s| (s - max).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&i, &j| scores[j].total_cmp(&scores[i]));
        println!("{} row {row}: top-5", input_path.display());
        for (rank, &c) in order.iter().take(5).enumerate() {
            println!("  {}. class {c:3}  logit {:8.4}  p {:.4}", rank + 1, scores[c], exp[c] / sum);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
