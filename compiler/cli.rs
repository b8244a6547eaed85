//! The `resin` command line: argument parsing and the commands. Each command is a thin layer over the
//! library; errors print as one line and exit with code 1.

use crate::onnx::{self, ImportOptions};
use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use resin_ir::Graph;
use resin_runtime::{npy, Model, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "resin",
    version,
    about = "A compiler and CPU runtime for skip-connection networks (ResNet, highway, DenseNet)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum Command {
    /// The whole path on a bundled model (a ResNet trained on handwritten digits): import, compile with the
    /// passes' report, accuracy, graph picture, standalone executable, and the time of each stage.
    #[command(
        after_help = "Example:\n  resin demo                # writes its files into ./resin-demo\n  resin demo --dir /tmp/d --threads 1"
    )]
    Demo {
        /// Where to write the demo's files.
        #[arg(long, default_value = "resin-demo")]
        dir: PathBuf,
        /// Threads for the kernels (default: all cores).
        #[arg(long, short = 't')]
        threads: Option<usize>,
    },
    /// Draw a model's graph with its skip connections (by kind), residual and dense blocks, and what the
    /// compiler fused: DOT, SVG (drawn by resin, no Graphviz needed), Mermaid, HTML (pan, zoom, details) or JSON.
    #[command(
        after_help = "Examples:\n  resin viz tests/models/resnet18_w8.onnx --format svg -o resnet18.svg\n  resin viz tests/models/densenet_small.onnx --after-passes --format html -o densenet.html\n  resin viz model.onnx --format dot -o model.dot && dot -Tpng model.dot -o model.png"
    )]
    Viz {
        /// An ONNX model.
        model: PathBuf,
        /// dot, svg, mermaid, html or json (default: from the output's extension, else svg).
        #[arg(long, short = 'f')]
        format: Option<String>,
        /// Where to write (default: standard output).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Draw the graph after the compiler's passes (fused nodes show what they absorbed).
        #[arg(long)]
        after_passes: bool,
    },
    /// Write a model back as ONNX (opset 17), optionally after the compiler's passes (BatchNorm folded,
    /// dense matrices merged); skips become Add/Concat again and weights stay bit-exact.
    #[command(
        after_help = "Examples:\n  resin export tests/models/resnet20.onnx -o resnet20.export.onnx\n  resin export model.onnx --after-passes -o model.folded.onnx"
    )]
    Export {
        /// An ONNX model.
        model: PathBuf,
        /// The ONNX file to write.
        #[arg(long, short = 'o')]
        output: PathBuf,
        /// Export the graph after the compiler's passes.
        #[arg(long)]
        after_passes: bool,
    },
    /// Compile an ONNX model into a .resin artifact: passes, lowering, memory planning, packed weights.
    #[command(
        after_help = "Examples:\n  resin compile tests/models/resnet20.onnx -o resnet20.resin --report\n  resin compile model.onnx -o model.resin --disable fuse_activation --report --verbose"
    )]
    Compile {
        /// An ONNX model.
        model: PathBuf,
        /// Where to write the artifact (default: the model's name with the .resin extension).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Switch off a compiler pass (repeatable): canonicalize, eliminate_dead, fold_constants, fold_batchnorm, pool_first,
        /// merge_dense_skips, identity_skip_inplace, fuse_activation, eliminate_dead; and `winograd` (lowering: 3x3 convolutions as Winograd F(4×4,3×3) or F(2×2,3×3)).
        #[arg(long, value_name = "PASS")]
        disable: Vec<String>,
        /// Print what each pass changed, the plan's steps by kind and its memory against a naive plan.
        #[arg(long)]
        report: bool,
        /// With --report: list every change.
        #[arg(long)]
        verbose: bool,
        /// Write a standalone executable instead of a .resin file: the resin-run stub with the compiled
        /// model inside (runs with no other file present; takes .npy inputs or PNG/JPEG images).
        #[arg(long)]
        exe: bool,
    },
    /// Build a standard architecture with seeded random weights (the model zoo) and write it as ONNX (.onnx)
    /// or compiled (.resin); without -o, describe it. `resin zoo --list` names every architecture.
    #[command(
        after_help = "Examples:\n  resin zoo --list\n  resin zoo resnet18 -o resnet18.onnx\n  resin zoo resnet50 --batch 1 --seed 7 -o resnet50.resin\n  resin zoo resnet20 --input 1x8x8 --classes 10 -o digits-resnet20.onnx\n  resin zoo dense-mlp --depth 6 --width 64 --input 64 -o dense-mlp.onnx"
    )]
    Zoo {
        /// The architecture (see --list).
        name: Option<String>,
        /// Where to write: NAME.onnx (ONNX, opset 17) or NAME.resin (compiled with every pass).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// A fixed batch size (default: a symbolic `batch` axis).
        #[arg(long)]
        batch: Option<usize>,
        /// Hidden layers (MLPs only; default 8).
        #[arg(long)]
        depth: Option<usize>,
        /// Features per MLP layer (128), channels of a ResNet's first stage (64, CIFAR 16) or DenseNet's
        /// growth rate (32).
        #[arg(long)]
        width: Option<usize>,
        /// The shape of one sample: FEATURES for an MLP (default 128), CxHxW otherwise (default 3x224x224,
        /// CIFAR 3x32x32).
        #[arg(long, value_name = "SHAPE")]
        input: Option<String>,
        /// Outputs of the classifier (default 1000 for the ImageNet models, 10 otherwise).
        #[arg(long)]
        classes: Option<usize>,
        /// Seed of the random weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Give BatchNorms random statistics (otherwise a fresh BatchNorm's: scale 1, shift 0, mean 0, var 1).
        #[arg(long)]
        random_bn: bool,
        /// List the architectures and exit.
        #[arg(long)]
        list: bool,
    },
    /// Describe a model: inputs, outputs, op histogram, parameters, MACs and skip connections.
    #[command(
        after_help = "Example:\n  resin info tests/models/resnet20.onnx\n  resin info model.onnx --graph   # also print the IR, skip edges marked"
    )]
    Info {
        /// An ONNX model.
        model: PathBuf,
        /// Print the IR listing, one node per line, skip edges marked with `~kind`.
        #[arg(long)]
        graph: bool,
    },
    /// Run a model on .npy inputs; write .npy outputs and print each output's shape and top classes.
    #[command(
        after_help = "Examples:\n  resin run tests/models/resnet20.onnx --input tests/models/resnet20_input.npy --output out.npy\n  resin run model.onnx --input input=x.npy --output output=y.npy --threads 2\n  resin run model.resin --input x.npy --profile 20 --steps 10   # time by step kind and the 10 slowest steps"
    )]
    Run {
        /// An ONNX model (compiled on the fly) or a compiled .resin file.
        model: PathBuf,
        /// One per model input, in the model's order, or as NAME=PATH (float32 .npy).
        #[arg(long = "input", short = 'i', value_name = "[NAME=]PATH")]
        inputs: Vec<String>,
        /// Where to write outputs (.npy), in the model's order or as NAME=PATH. Optional.
        #[arg(long = "output", short = 'o', value_name = "[NAME=]PATH")]
        outputs: Vec<String>,
        /// Threads for the kernels (default: all cores).
        #[arg(long, short = 't')]
        threads: Option<usize>,
        /// How many top classes to print per row of a 2-D output.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Run N times and print the median time and where it goes, by step kind.
        #[arg(long, value_name = "N")]
        profile: Option<usize>,
        /// With --profile: also list the K slowest steps (name, kind, output shape, MACs, ms, GFLOP/s).
        #[arg(long, value_name = "K", requires = "profile")]
        steps: Option<usize>,
        /// Switch off a compiler pass (repeatable): canonicalize, eliminate_dead, fold_constants, fold_batchnorm, pool_first,
        /// merge_dense_skips, identity_skip_inplace, fuse_activation, eliminate_dead; and `winograd` (lowering: 3x3 convolutions as Winograd F(4×4,3×3) or F(2×2,3×3)).
        #[arg(long, value_name = "PASS")]
        disable: Vec<String>,
    },
    /// Time a model: median latency, images/s, effective GFLOP/s against the measured FMA peak, peak RSS.
    #[command(
        after_help = "Examples:\n  resin bench tests/models/resnet20.onnx\n  resin bench ../shared/models/resnet50.onnx --batch 8 --threads 2 --runs 20\n  resin bench model.resin --json   # one JSON line, for benches/compare.py"
    )]
    Bench {
        /// An ONNX model (compiled first) or a compiled .resin file.
        model: PathBuf,
        /// Images per run.
        #[arg(long, short = 'b', default_value_t = 1)]
        batch: usize,
        /// Threads for the kernels (default: all cores).
        #[arg(long, short = 't')]
        threads: Option<usize>,
        /// Timed runs; the median is reported.
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Untimed runs first.
        #[arg(long, default_value_t = 3)]
        warmup: usize,
        /// Skip the FMA peak measurement (about half a second).
        #[arg(long)]
        no_peak: bool,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Train a network (an ONNX model's initializers, or a zoo architecture) on the bundled digits or an
    /// .npy pair; writes the trained model as OUT.onnx and OUT.resin. Or run the degradation experiment.
    #[command(
        after_help = "Examples:\n  resin train --arch dense-mlp --depth 4 --width 64 --epochs 30 -o digits-dense\n  resin train model.onnx --x x.npy --y labels.npy --optimizer momentum --lr 0.05 --schedule cosine\n  resin train --experiment degradation --depths 4,16,48 --plot docs/degradation.svg\n  resin train --arch resnet20 --epochs 2 --profile   # where the time goes, by step kind"
    )]
    Train(crate::train::cmd::TrainArgs),
}

/// Entry point: parses arguments, runs the command, prints errors as one line.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Loads a model file into the IR.
pub fn load_graph(path: &Path) -> Result<Graph> {
    onnx::load(path, &ImportOptions::default())
}

/// Is this file a compiled `.resin` artifact (by its first bytes, or by its extension, so that a damaged
/// artifact is reported as one rather than as a bad ONNX model)?
pub fn is_resin(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 5];
    path.extension().is_some_and(|e| e == "resin")
        || std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"RESIN"
}

/// Loads a model: a `.resin` artifact as it is, or an ONNX model compiled with every pass.
pub fn load_model(path: &Path) -> Result<Model> {
    load_model_with(path, &[])
}

/// [`load_model`] with some passes switched off by name (ONNX models only).
pub fn load_model_with(path: &Path, disabled: &[String]) -> Result<Model> {
    if is_resin(path) {
        if !disabled.is_empty() {
            bail!("'{}' is already compiled: --disable applies to ONNX models", path.display());
        }
        return Ok(Model::load(path)?);
    }
    let g = load_graph(path)?;
    let compiled = crate::compile::compile(g, disabled)?;
    Ok(Model::new(compiled.plan)?)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Viz { model, format, output, after_passes } => viz_cmd(&model, format, output, after_passes),
        Command::Export { model, output, after_passes } => {
            check_dir(&output)?;
            let mut g = load_graph(&model)?;
            if after_passes {
                crate::passes::run_pipeline(&mut g, &[])?;
            }
            crate::onnx::save(&g, &output)?;
            println!("wrote {} ({} nodes)", output.display(), g.len());
            Ok(())
        }
        Command::Info { model, graph } if is_resin(&model) => info_resin(&model, graph),
        Command::Info { model, graph } => info(&model, graph),
        Command::Compile { model, output, disable, report, verbose, exe } => {
            compile_cmd(&model, output, &disable, report, verbose, exe)
        }
        Command::Demo { dir, threads } => crate::demo::run(&dir, threads),
        Command::Train(args) => crate::train::cmd::run(&args),
        Command::Zoo { name, output, batch, depth, width, input, classes, seed, random_bn, list } => {
            let input = input.map(|s| parse_shape(&s)).transpose()?;
            let opts =
                crate::zoo::ZooOptions { batch, depth, width, input, classes, seed, random_batchnorm: random_bn };
            zoo_cmd(name.as_deref(), output.as_deref(), &opts, list)
        }
        Command::Run { model, inputs, outputs, threads, top, profile, steps, disable } => {
            run_model(&model, &inputs, &outputs, threads, top, profile.map(|n| (n, steps.unwrap_or(0))), &disable)
        }
        Command::Bench { model, batch, threads, runs, warmup, no_peak, json } => {
            anyhow::ensure!(batch >= 1, "--batch must be at least 1");
            let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let m = load_model(&model)?;
            let opts = crate::bench::BenchOptions { batch, threads, runs, warmup, peak: !no_peak };
            let r = crate::bench::bench(&m, &opts, !json)?;
            if json {
                println!("{}", r.to_json());
            } else {
                println!("{}\n{r}", model.display());
            }
            Ok(())
        }
    }
}

fn human(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.3} G", n / 1e9),
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.1} K", n / 1e3),
        n => format!("{n}"),
    }
}

fn info(path: &Path, print_graph: bool) -> Result<()> {
    let mut g = load_graph(path)?;
    let skips = g.recognize_skips();
    println!("model: {}", path.display());
    for &i in &g.inputs {
        let n = g.node(i);
        println!("input: {} {}", n.name, n.ty);
    }
    for o in &g.outputs {
        println!("output: {} {}", o.name, g.node(o.node).ty);
    }
    let hist: Vec<String> = g.op_histogram().iter().map(|(op, n)| format!("{op} {n}")).collect();
    println!("nodes: {}", g.len() - g.inputs.len());
    println!("ops: {}", hist.join(", "));
    let params = g.param_count();
    println!("parameters: {} ({})", params, human(params as f64));
    let macs = g.macs();
    println!("MACs per sample: {} ({})", macs, human(macs as f64));
    println!("skips: {skips}");
    if print_graph {
        print!("{g}");
    }
    Ok(())
}

/// Runs `n` more times with profiling on; prints the median run time, the time by step kind and the
/// `top` slowest steps.
fn print_profile(
    model: &Model,
    session: &mut resin_runtime::Session,
    inputs: &[&Tensor],
    n: usize,
    top: usize,
) -> Result<()> {
    session.enable_profiling();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        session.run(inputs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let prof = session.profile().unwrap_or_default();
    let total: f64 = prof.iter().map(|d| d.as_secs_f64()).sum::<f64>().max(1e-12);
    let mut by_kind: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for (s, d) in model.plan().steps.iter().zip(prof) {
        let e = by_kind.entry(crate::compile::step_label(&s.op)).or_default();
        e.0 += d.as_secs_f64();
        e.1 += 1;
    }
    let mut rows: Vec<_> = by_kind.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!("profile: median {:.2} ms over {n} runs (min {:.2}, max {:.2})", times[n / 2], times[0], times[n - 1]);
    for (kind, (t, count)) in rows {
        println!("  {kind:<18} {count:4} steps {:8.2} ms/run {:5.1}%", t * 1e3 / n as f64, 100.0 * t / total);
    }
    if top > 0 {
        let plan = model.plan();
        let batch = inputs.first().and_then(|t| t.shape.first().copied()).unwrap_or(1);
        let mut order: Vec<usize> = (0..plan.steps.len()).collect();
        order.sort_by(|&a, &b| prof[b].cmp(&prof[a]));
        println!("slowest steps (mean per run):");
        for &i in order.iter().take(top) {
            let s = &plan.steps[i];
            let ms = prof[i].as_secs_f64() * 1e3 / n as f64;
            let macs = plan.step_macs(i, batch);
            let shape: Vec<usize> = plan.buffers[s.output].shape.iter().map(|d| d.resolve(batch)).collect();
            let rate = if macs > 0 { format!("{:6.1} GFLOP/s", 2.0 * macs as f64 / ms / 1e6) } else { String::new() };
            println!(
                "  {:>3} {:<28} {:<22} {:<18} {:>11} {ms:8.3} ms {rate}",
                i,
                s.name.chars().take(28).collect::<String>(),
                crate::compile::step_label(&s.op),
                format!("{shape:?}"),
                crate::viz::human_macs(macs)
            );
        }
    }
    Ok(())
}

fn compile_cmd(
    path: &Path,
    output: Option<PathBuf>,
    disable: &[String],
    report: bool,
    verbose: bool,
    exe: bool,
) -> Result<()> {
    let t0 = Instant::now();
    let out = output.unwrap_or_else(|| if exe { path.with_extension("") } else { path.with_extension("resin") });
    if is_resin(path) {
        bail!("'{}' is already compiled", path.display());
    }
    check_dir(&out)?;
    let g = load_graph(path)?;
    let c = crate::compile::compile(g, disable)?;
    let mut meta = resin_runtime::format::Metadata::new(
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    );
    for p in &c.passes {
        meta.report.insert(format!("pass.{}", p.pass), p.changes.len().to_string());
    }
    let hist: Vec<String> = crate::compile::step_histogram(&c.plan).iter().map(|(k, n)| format!("{k} {n}")).collect();
    meta.report.insert("steps".into(), hist.join(", "));
    meta.report.insert("memory.peak_bytes".into(), c.memory.peak_bytes.to_string());
    meta.report.insert("memory.naive_bytes".into(), c.memory.naive_bytes.to_string());
    meta.report.insert("memory.scratch_bytes".into(), c.memory.scratch_bytes.to_string());
    meta.report.insert("memory.slots".into(), c.memory.slots.to_string());
    if exe {
        crate::exe::build_exe(&resin_runtime::format::to_bytes(&c.plan, &meta), &out)?;
    } else {
        resin_runtime::format::save(&c.plan, &meta, &out)?;
    }
    if report {
        print!("{}", c.report(verbose));
    }
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "compiled {} -> {} ({:.1} MiB, {} steps) in {:.2} s",
        path.display(),
        out.display(),
        size as f64 / (1 << 20) as f64,
        c.plan.steps.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn viz_cmd(path: &Path, format: Option<String>, output: Option<PathBuf>, after_passes: bool) -> Result<()> {
    let from_ext = output.as_ref().and_then(|o| o.extension()).map(|e| e.to_string_lossy().into_owned());
    let name = format.or(from_ext.filter(|e| e.parse::<crate::viz::Format>().is_ok())).unwrap_or_else(|| "svg".into());
    let fmt: crate::viz::Format =
        name.parse().map_err(|_| anyhow!("unknown format '{name}' (dot, svg, mermaid, html, json)"))?;
    if let Some(o) = &output {
        check_dir(o)?;
    }
    let mut g = load_graph(path)?;
    g.recognize_skips();
    if after_passes {
        crate::passes::run_pipeline(&mut g, &[])?;
    }
    let title = format!(
        "{}{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        if after_passes { " (after passes)" } else { "" }
    );
    let text = crate::viz::render(&g, fmt, &title);
    match output {
        Some(o) => {
            resin_runtime::npy::write_atomic(&o, text.as_bytes())?;
            println!("wrote {} ({name}, {} nodes)", o.display(), g.len());
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn info_resin(path: &Path, verbose: bool) -> Result<()> {
    let t0 = Instant::now();
    let model = Model::load(path)?;
    let load = t0.elapsed();
    let meta = model.metadata();
    let plan = model.plan();
    println!("compiled model: {} (produced by {}, from {})", path.display(), meta.producer, meta.source);
    for (name, shape) in model.inputs() {
        println!("input: {name} float32{}", resin_runtime::plan::fmt_dims(shape));
    }
    for (name, shape) in model.outputs() {
        println!("output: {name} float32{}", resin_runtime::plan::fmt_dims(shape));
    }
    let hist: Vec<String> = crate::compile::step_histogram(plan).iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!("plan: {} steps: {}", plan.steps.len(), hist.join(", "));
    println!(
        "buffers: {} in {} slots; weights {:.1} MiB",
        plan.buffers.len(),
        plan.slots,
        plan.weights.len() as f64 * 4.0 / 1048576.0
    );
    for (k, v) in &meta.report {
        println!("report.{k}: {v}");
    }
    println!("loaded and checked in {:.1} ms", load.as_secs_f64() * 1e3);
    if verbose {
        for (i, s) in plan.steps.iter().enumerate() {
            println!("  {i:4} {:<16} {:?} -> {}  # {}", crate::compile::step_label(&s.op), s.inputs, s.output, s.name);
        }
    }
    Ok(())
}

/// Refuses an output path whose directory does not exist, before any work is done for it.
fn check_dir(out: &Path) -> Result<()> {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        bail!("cannot write '{}': the directory '{}' does not exist", out.display(), dir.display());
    }
    Ok(())
}

fn read_input(name: &str, path: &str) -> Result<Tensor> {
    let a = npy::read(Path::new(path))?;
    let data = a.f32_data.ok_or_else(|| {
        anyhow!("input '{name}': expected dtype float32, got {} (in '{path}')", npy::dtype_name(&a.descr))
    })?;
    Ok(Tensor { shape: a.shape, data })
}

fn run_model(
    path: &Path,
    inputs: &[String],
    outputs: &[String],
    threads: Option<usize>,
    top: usize,
    profile: Option<(usize, usize)>,
    disable: &[String],
) -> Result<()> {
    let t0 = Instant::now();
    let model = load_model_with(path, disable)?;
    let t_load = t0.elapsed();
    let in_names: Vec<&str> = model.inputs().iter().map(|x| x.0).collect();
    let out_names: Vec<&str> = model.outputs().iter().map(|x| x.0).collect();
    let in_paths = resin_runtime::io_args::assign(inputs, &in_names, "input").map_err(|e| anyhow!(e))?;
    let mut tensors = Vec::new();
    for (name, p) in in_names.iter().zip(&in_paths) {
        let p = p.ok_or_else(|| anyhow!("missing --input for model input '{name}'"))?;
        tensors.push(read_input(name, p)?);
    }
    let out_paths = resin_runtime::io_args::assign(outputs, &out_names, "output").map_err(|e| anyhow!(e))?;
    for p in out_paths.iter().flatten() {
        check_dir(Path::new(p))?;
    }
    let mut session = match threads {
        Some(t) => model.session_with_threads(t)?,
        None => model.session()?,
    };
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let t1 = Instant::now();
    let results = session.run(&refs)?;
    let t_run = t1.elapsed();
    for ((name, t), p) in out_names.iter().zip(&results).zip(&out_paths) {
        println!("output '{name}': shape {:?}", t.shape);
        if t.shape.len() == 2 && top > 0 {
            let cols = t.shape[1];
            for (r, row) in t.data.chunks(cols.max(1)).enumerate() {
                let mut idx: Vec<usize> = (0..row.len()).collect();
                idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                let best: Vec<String> = idx.iter().take(top).map(|&i| format!("{i} ({:.4})", row[i])).collect();
                println!("  row {r}: top-{}: {}", top.min(cols), best.join(", "));
            }
        }
        if let Some(p) = p {
            npy::write_f32(Path::new(p), &t.shape, &t.data).with_context(|| format!("writing output '{name}'"))?;
            println!("  wrote {p}");
        }
    }
    if let Some((n, top)) = profile {
        print_profile(&model, &mut session, &refs, n.max(1), top)?;
    }
    println!(
        "load+compile {:.1} ms, run {:.1} ms ({} threads)",
        t_load.as_secs_f64() * 1e3,
        t_run.as_secs_f64() * 1e3,
        session.threads()
    );
    Ok(())
}

/// A sample shape written `3x32x32`, `3,32,32` or `64`.
fn parse_shape(s: &str) -> Result<Vec<usize>> {
    s.split(['x', ',', 'X'])
        .map(|p| p.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow!("--input '{s}': expected positive sizes like 3x32x32 or 64"))
}

fn zoo_cmd(name: Option<&str>, output: Option<&Path>, opts: &crate::zoo::ZooOptions, list: bool) -> Result<()> {
    if list {
        for a in crate::zoo::ARCHS {
            println!("{:<18} {}", a.name, a.about);
        }
        return Ok(());
    }
    let name = name
        .ok_or_else(|| anyhow!("which model? (resin zoo NAME -o FILE; models: {})", crate::zoo::names().join(", ")))?;
    let kind = match output.map(|o| o.extension().and_then(|e| e.to_str()).unwrap_or("")) {
        None => None,
        Some(e @ ("onnx" | "resin")) => Some(e),
        Some(_) => {
            bail!("cannot tell what to write from '{}': name it NAME.onnx or NAME.resin", output.unwrap().display())
        }
    };
    let t0 = Instant::now();
    let mut g = crate::zoo::build(name, opts)?;
    let skips = g.recognize_skips();
    let (params, macs) = (g.param_count(), g.macs());
    let ty = |id| g.node(id).ty.to_string();
    println!(
        "{name}: input {}, output {}, {} nodes, {} parameters, {} MACs per sample, skips: {skips}",
        ty(g.inputs[0]),
        ty(g.outputs[0].node),
        g.len(),
        human(params as f64),
        human(macs as f64)
    );
    match (output, kind) {
        (Some(out), Some("onnx")) => crate::onnx::save(&g, out)?,
        (Some(out), Some(_)) => {
            let c = crate::compile::compile(g, &[])?;
            let meta = resin_runtime::format::Metadata::new(format!("zoo:{name}"));
            resin_runtime::format::save(&c.plan, &meta, out)?;
        }
        _ => return Ok(()),
    }
    let out = output.unwrap();
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!("wrote {} ({:.1} MiB) in {:.2} s", out.display(), size as f64 / 1048576.0, t0.elapsed().as_secs_f64());
    Ok(())
}
