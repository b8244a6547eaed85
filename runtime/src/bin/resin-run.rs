//! `resin-run`: the stub of standalone executables. `resin compile MODEL --exe OUT` appends a compiled
//! model to a copy of this program (see `resin_runtime::standalone`); the copy runs that model on `.npy`
//! inputs or on PNG/JPEG images. Hand-written argument parsing: the runtime stays lean.

use resin_runtime::plan::{fmt_dims, Dim};
use resin_runtime::standalone::{self, image::DynamicImage};
use resin_runtime::{npy, Model, Tensor};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = std::result::Result<T, String>;

fn main() {
    let t0 = Instant::now();
    let args: Vec<String> = std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect();
    let code = match run(&args, t0) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", e.replace('\n', " "));
            1
        }
    };
    std::process::exit(code);
}

/// The name this program was called by (a standalone executable is usually renamed after its model).
fn program() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "resin-run".into())
}

fn help(model: Option<&Model>) -> String {
    let p = program();
    let mut h = format!(
        "{p}: a model compiled by resin, with its runtime, in one file.

Usage:
  {p} IMAGE [IMAGE...] [--top K] [--labels FILE] [--resize S] [--mean M,..] [--std S,..] [--threads N]
      decode PNG or JPEG images, preprocess them as torchvision's ImageNet evaluation does (convert to the
      model's channels, resize the shorter side to S with bilinear filtering, center-crop to the model's
      height x width, scale to [0,1], normalize with the mean and std) and print each image's top-K classes
  {p} --input [NAME=]x.npy ... [--output [NAME=]y.npy ...] [--threads N] [--top K] [--labels FILE]
      run the model on float32 .npy inputs (one per model input, in order or by name), write .npy outputs
      and print each output's shape and top-K classes per row (as `resin run`)
  {p} --info      the embedded model's inputs and outputs
  {p} --help      this help

Options:
  -i, --input [NAME=]PATH   a float32 .npy input (repeat for each model input)
  -o, --output [NAME=]PATH  where to write an output (.npy, written atomically)
  -t, --threads N           threads for the kernels (default: all cores)
      --top K               classes to print per row (default 5; 0: none)
      --labels FILE         class names, one per line (line i names class i)
      --resize S            shorter side before the crop (default: 256/224 x the model's height)
      --mean M1,M2,M3       per-channel mean (default: ImageNet's 0.485,0.456,0.406; 0 for 1 channel)
      --std S1,S2,S3        per-channel std (default: ImageNet's 0.229,0.224,0.225; 1 for 1 channel)

Examples:
  {p} cat.jpg dog.png --labels imagenet_classes.txt --top 3
  {p} --input x.npy --output y.npy --threads 2
"
    );
    if let Some(m) = model {
        h.push_str(&format!("\nEmbedded model: {}\n", describe(m)));
    }
    h
}

fn describe(m: &Model) -> String {
    let io = |v: Vec<(&str, &[Dim])>| v.iter().map(|(n, s)| format!("{n} float32{}", fmt_dims(s))).collect::<Vec<_>>();
    let src = &m.metadata().source;
    format!(
        "{}inputs {}; outputs {}",
        if src.is_empty() { String::new() } else { format!("{src}: ") },
        io(m.inputs()).join(", "),
        io(m.outputs()).join(", ")
    )
}

#[derive(Default)]
struct Args {
    help: bool,
    info: bool,
    inputs: Vec<String>,
    outputs: Vec<String>,
    threads: Option<usize>,
    top: Option<usize>,
    labels: Option<PathBuf>,
    resize: Option<usize>,
    mean: Option<Vec<f32>>,
    std: Option<Vec<f32>>,
    images: Vec<String>,
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Res<T> {
    v.trim().parse().map_err(|_| format!("{flag}: '{v}' is not a valid number"))
}

fn list(flag: &str, v: &str) -> Res<Vec<f32>> {
    v.split(',')
        .map(|x| {
            let f: f32 = number(flag, x)?;
            if f.is_finite() {
                Ok(f)
            } else {
                Err(format!("{flag}: '{x}' is not a finite number"))
            }
        })
        .collect()
}

fn parse(args: &[String]) -> Res<Args> {
    let mut a = Args::default();
    let mut it = args.iter();
    let mut only_files = false;
    while let Some(arg) = it.next() {
        if only_files || !arg.starts_with('-') || arg == "-" {
            a.images.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_files = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        const VALUED: &[&str] =
            &["-i", "--input", "-o", "--output", "-t", "--threads", "--top", "--labels", "--resize", "--mean", "--std"];
        let takes_value = match flag {
            "-h" | "--help" | "--info" => false,
            f if VALUED.contains(&f) => true,
            _ => return Err(format!("unknown option '{flag}' (see --help)")),
        };
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it.next().cloned().ok_or_else(|| format!("{flag} needs a value (see --help)"))?,
            }
        } else if inline.is_some() {
            return Err(format!("{flag} takes no value"));
        } else {
            String::new()
        };
        match flag {
            "-h" | "--help" => a.help = true,
            "--info" => a.info = true,
            "-i" | "--input" => a.inputs.push(value),
            "-o" | "--output" => a.outputs.push(value),
            "-t" | "--threads" => match number::<usize>(flag, &value)? {
                0 => return Err(format!("{flag} must be at least 1")),
                n => a.threads = Some(n),
            },
            "--top" => a.top = Some(number(flag, &value)?),
            "--labels" => a.labels = Some(PathBuf::from(value)),
            "--resize" => match number::<usize>(flag, &value)? {
                0 => return Err(format!("{flag} must be at least 1")),
                n => a.resize = Some(n),
            },
            "--mean" => a.mean = Some(list(flag, &value)?),
            "--std" => match list(flag, &value)? {
                s if s.contains(&0.0) => return Err(format!("{flag}: a standard deviation cannot be 0")),
                s => a.std = Some(s),
            },
            _ => return Err(format!("unknown option '{flag}' (see --help)")),
        }
    }
    Ok(a)
}

fn run(args: &[String], t0: Instant) -> Res<()> {
    let a = parse(args)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable's file: {e}"))?;
    let loaded = standalone::load_exe(&exe);
    if a.help {
        print!("{}", help(loaded.as_ref().ok()));
        return Ok(());
    }
    let model = loaded.map_err(|e| {
        let e = e.to_string();
        if e.contains("no embedded model") {
            format!("{e}; make a standalone executable with `resin compile MODEL.onnx --exe OUT`")
        } else {
            e
        }
    })?;
    let t_load = t0.elapsed();
    if a.info {
        let m = model.metadata();
        println!("model: {} (produced by {})", if m.source.is_empty() { "?" } else { &m.source }, m.producer);
        for (name, shape) in model.inputs() {
            println!("input: {name} float32{}", fmt_dims(shape));
        }
        for (name, shape) in model.outputs() {
            println!("output: {name} float32{}", fmt_dims(shape));
        }
        println!(
            "steps: {}; weights {:.1} MiB",
            model.plan().steps.len(),
            model.plan().weights.len() as f64 * 4.0 / 1048576.0
        );
        return Ok(());
    }
    let labels = match &a.labels {
        Some(p) => Some(read_labels(p)?),
        None => None,
    };
    let top = a.top.unwrap_or(5);
    let session = match a.threads {
        Some(t) => model.session_with_threads(t),
        None => model.session(),
    };
    let mut session = session.map_err(|e| e.to_string())?;
    match (a.images.is_empty(), a.inputs.is_empty()) {
        (false, false) => Err("give either image files or --input, not both".into()),
        (true, true) => Err(format!(
            "nothing to run: give image files or --input x.npy (see --help); the model: {}",
            describe(&model)
        )),
        (true, false) => run_npy(&model, &mut session, &a, top, labels.as_deref(), t_load),
        (false, true) => {
            if !a.outputs.is_empty() {
                return Err("--output applies to --input runs; with images the top classes are printed".into());
            }
            run_images(&model, &mut session, &a, top, labels.as_deref(), t_load)
        }
    }
}

fn read_labels(path: &Path) -> Res<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the labels: {e}", path.display()))?;
    let labels: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    if labels.is_empty() {
        return Err(format!("{}: the labels file is empty", path.display()));
    }
    Ok(labels)
}

/// `K: i (score), ...` — the top `top` entries of a row, with their labels if any.
fn top_k(row: &[f32], top: usize, labels: Option<&[String]>) -> String {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    let best: Vec<String> = idx
        .iter()
        .take(top)
        .map(|&i| match labels.and_then(|l| l.get(i)) {
            Some(l) => format!("{i} \"{l}\" ({:.4})", row[i]),
            None => format!("{i} ({:.4})", row[i]),
        })
        .collect();
    format!("top-{}: {}", top.min(row.len()), best.join(", "))
}

fn run_npy(
    model: &Model,
    session: &mut resin_runtime::Session,
    a: &Args,
    top: usize,
    labels: Option<&[String]>,
    t_load: std::time::Duration,
) -> Res<()> {
    let in_names: Vec<&str> = model.inputs().iter().map(|x| x.0).collect();
    let out_names: Vec<&str> = model.outputs().iter().map(|x| x.0).collect();
    let in_paths = resin_runtime::io_args::assign(&a.inputs, &in_names, "input")?;
    let mut tensors = Vec::new();
    for (name, p) in in_names.iter().zip(&in_paths) {
        let p = p.ok_or_else(|| format!("missing --input for model input '{name}'"))?;
        let arr = npy::read(Path::new(p)).map_err(|e| e.to_string())?;
        let data = arr.f32_data.ok_or_else(|| {
            format!("input '{name}': expected dtype float32, got {} (in '{p}')", npy::dtype_name(&arr.descr))
        })?;
        tensors.push(Tensor { shape: arr.shape, data });
    }
    let out_paths = resin_runtime::io_args::assign(&a.outputs, &out_names, "output")?;
    for p in out_paths.iter().flatten() {
        let dir = Path::new(p).parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(format!("cannot write '{p}': the directory '{}' does not exist", dir.display()));
        }
    }
    let refs: Vec<&Tensor> = tensors.iter().collect();
    let t1 = Instant::now();
    let results = session.run(&refs).map_err(|e| e.to_string())?;
    let t_run = t1.elapsed();
    for ((name, t), p) in out_names.iter().zip(&results).zip(&out_paths) {
        println!("output '{name}': shape {:?}", t.shape);
        if t.shape.len() == 2 && top > 0 {
            for (r, row) in t.data.chunks(t.shape[1].max(1)).enumerate() {
                println!("  row {r}: {}", top_k(row, top, labels));
            }
        }
        if let Some(p) = p {
            npy::write_f32(Path::new(p), &t.shape, &t.data).map_err(|e| format!("writing output '{name}': {e}"))?;
            println!("  wrote {p}");
        }
    }
    println!(
        "load {:.1} ms, run {:.1} ms ({} threads)",
        t_load.as_secs_f64() * 1e3,
        t_run.as_secs_f64() * 1e3,
        session.threads()
    );
    Ok(())
}

fn run_images(
    model: &Model,
    session: &mut resin_runtime::Session,
    a: &Args,
    top: usize,
    labels: Option<&[String]>,
    t_load: std::time::Duration,
) -> Res<()> {
    let inputs = model.inputs();
    let shape = match inputs.as_slice() {
        [(_, shape)] => *shape,
        _ => {
            return Err(format!(
                "images need a model with one input of shape [N,C,H,W]; this one has {} inputs (use --input)",
                inputs.len()
            ))
        }
    };
    let (c, h, w) = match shape {
        [Dim::Batch | Dim::Fixed(1), Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)] => (*c, *h, *w),
        _ => {
            return Err(format!(
                "images need a model input of shape [N,C,H,W] (batch free or 1); this one is {} (use --input)",
                fmt_dims(shape)
            ))
        }
    };
    let resize = a.resize.unwrap_or_else(|| standalone::default_resize(h));
    let (dmean, dstd) = standalone::default_mean_std(c);
    let (mean, std) = (a.mean.clone().unwrap_or(dmean), a.std.clone().unwrap_or(dstd));
    // Decode and preprocess every image first: a bad file is reported before any result.
    let mut batch = Vec::with_capacity(a.images.len());
    for path in &a.images {
        let img: DynamicImage = standalone::load_image(Path::new(path)).map_err(|e| e.to_string())?;
        let x = standalone::preprocess(&img, c, h, w, resize, &mean, &std).map_err(|e| e.to_string())?;
        batch.push(Tensor { shape: vec![1, c, h, w], data: x });
    }
    let t1 = Instant::now();
    let out_names: Vec<&str> = model.outputs().iter().map(|x| x.0).collect();
    for (path, x) in a.images.iter().zip(&batch) {
        let results = session.run(&[x]).map_err(|e| format!("{path}: {e}"))?;
        for (name, t) in out_names.iter().zip(&results) {
            let what = if out_names.len() > 1 { format!("{path}: output '{name}'") } else { path.clone() };
            if t.shape.len() == 2 && top > 0 {
                println!("{what}: {}", top_k(&t.data, top, labels));
            } else {
                println!("{what}: shape {:?}", t.shape);
            }
        }
    }
    println!(
        "load {:.1} ms, {} image(s) in {:.1} ms ({} threads)",
        t_load.as_secs_f64() * 1e3,
        batch.len(),
        t1.elapsed().as_secs_f64() * 1e3,
        session.threads()
    );
    Ok(())
}
