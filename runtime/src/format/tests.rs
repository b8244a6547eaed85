use super::*;
use crate::plan::Dim::{Batch, Fixed};
use crate::plan::PreStep;
use crate::tensor::Tensor;
use std::path::PathBuf;

/// A fresh empty directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("resin-format-{name}-{}", std::process::id()));
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

/// Builds a plan: every activation gets its own slot, weights are 16-float aligned as lowering does.
#[derive(Default)]
struct Builder {
    plan: Plan,
}

impl Builder {
    fn weights(&mut self, n: usize) -> WeightRange {
        let w = self.plan.weights.to_mut();
        w.resize(w.len().div_ceil(16) * 16, 0.0);
        let offset = w.len();
        w.extend((0..n).map(|i| ((offset + i) as f32 * 0.37).sin() * 0.5));
        WeightRange { offset, len: n }
    }
    fn input(&mut self, name: &str, shape: Vec<plan::Dim>) -> usize {
        let k = self.plan.inputs.len();
        self.plan.buffers.push(Buffer { shape, kind: BufferKind::Input(k) });
        let b = self.plan.buffers.len() - 1;
        self.plan.inputs.push(Io { name: name.into(), buffer: b });
        b
    }
    fn constant(&mut self, shape: Vec<usize>) -> usize {
        let r = self.weights(shape.iter().product());
        self.plan.buffers.push(Buffer { shape: shape.into_iter().map(Fixed).collect(), kind: BufferKind::Const(r) });
        self.plan.buffers.len() - 1
    }
    fn step(&mut self, name: &str, op: StepOp, inputs: Vec<usize>, shape: Vec<plan::Dim>) -> usize {
        let slot = self.plan.slots;
        self.plan.slots += 1;
        self.plan.buffers.push(Buffer { shape, kind: BufferKind::Activation { slot } });
        let output = self.plan.buffers.len() - 1;
        self.plan.steps.push(Step { name: name.into(), op, inputs, output });
        output
    }
    fn output(&mut self, name: &str, b: usize) {
        self.plan.outputs.push(Io { name: name.into(), buffer: b });
    }
}

/// A valid plan that uses every `StepOp` variant.
fn every_op_plan() -> Plan {
    let mut p = Builder::default();
    let x = p.input("x", vec![Batch, Fixed(2), Fixed(4), Fixed(4)]);
    let padded = p.step(
        "pad",
        StepOp::Pad { pads: vec![0, 0, 1, 1, 0, 0, 1, 1], mode: PadMode::Constant(0.5) },
        vec![x],
        vec![Batch, Fixed(2), Fixed(6), Fixed(6)],
    );
    let geom = Conv2d { cin: 2, cout: 3, kernel: [3, 3], strides: [1, 1], pads: [0; 4], dilations: [1, 1], group: 1 };
    let (weight, bias) = (p.weights(geom.packed_weight_len()), p.weights(3));
    let conv = p.step(
        "conv",
        StepOp::Conv(ConvStep {
            geom,
            weight,
            bias: Some(bias),
            act: Some(UnaryOp::Relu),
            residual: false,
            pre: None,
            winograd: None,
        }),
        vec![padded],
        vec![Batch, Fixed(3), Fixed(4), Fixed(4)],
    );
    let (scale, shift) = (p.weights(3), p.weights(3));
    let bn =
        p.step("bn", StepOp::ChannelAffine { scale, shift }, vec![conv], vec![Batch, Fixed(3), Fixed(4), Fixed(4)]);
    let geom = Conv2d { cin: 3, cout: 3, kernel: [1, 1], strides: [1, 1], pads: [0; 4], dilations: [1, 1], group: 1 };
    let weight = p.weights(geom.packed_weight_len());
    let (pre_scale, pre_shift) = (p.weights(3), p.weights(3));
    let res = p.step(
        "conv_res",
        StepOp::Conv(ConvStep {
            geom,
            weight,
            bias: None,
            act: Some(UnaryOp::Clip { min: -1.0, max: 6.0 }),
            residual: true,
            pre: Some(PreStep { scale: pre_scale, shift: pre_shift, act: Some(UnaryOp::Relu) }),
            winograd: None,
        }),
        vec![bn, conv],
        vec![Batch, Fixed(3), Fixed(4), Fixed(4)],
    );
    let maxp = p.step(
        "maxpool",
        StepOp::MaxPool(Pool2d {
            kernel: [2, 2],
            strides: [2, 2],
            pads: [0; 4],
            dilations: [1, 1],
            count_include_pad: false,
        }),
        vec![res],
        vec![Batch, Fixed(3), Fixed(2), Fixed(2)],
    );
    let avgp = p.step(
        "avgpool",
        StepOp::AvgPool(Pool2d {
            kernel: [2, 2],
            strides: [1, 1],
            pads: [1, 1, 0, 0],
            dilations: [1, 1],
            count_include_pad: true,
        }),
        vec![maxp],
        vec![Batch, Fixed(3), Fixed(2), Fixed(2)],
    );
    let sig = p.step("sigmoid", StepOp::Unary(UnaryOp::Sigmoid), vec![avgp], vec![Batch, Fixed(3), Fixed(2), Fixed(2)]);
    let k = p.constant(vec![3, 1, 1]);
    let mul = p.step("mul", StepOp::Binary(BinaryOp::Mul), vec![sig, k], vec![Batch, Fixed(3), Fixed(2), Fixed(2)]);
    let sum = p.step("sum", StepOp::Sum, vec![mul, sig], vec![Batch, Fixed(3), Fixed(2), Fixed(2)]);
    let cat = p.step("concat", StepOp::Concat { axis: 1 }, vec![sum, maxp], vec![Batch, Fixed(6), Fixed(2), Fixed(2)]);
    let gap = p.step("gap", StepOp::GlobalAvgPool, vec![cat], vec![Batch, Fixed(6), Fixed(1), Fixed(1)]);
    let flat = p.step("flatten", StepOp::Copy, vec![gap], vec![Batch, Fixed(6)]);
    let (weight, c) = (p.weights(24), p.weights(4));
    let fc = p.step(
        "fc",
        StepOp::Gemm(GemmStep {
            k: 6,
            n: 4,
            trans_a: false,
            alpha: 0.5,
            weight,
            c: Some((c, vec![4])),
            beta: 2.0,
            act: None,
            residual: false,
        }),
        vec![flat],
        vec![Batch, Fixed(4)],
    );
    let weight = p.weights(16);
    let fc2 = p.step(
        "fc_res",
        StepOp::Gemm(GemmStep {
            k: 4,
            n: 4,
            trans_a: false,
            alpha: 1.0,
            weight,
            c: None,
            beta: 1.0,
            act: Some(UnaryOp::Relu),
            residual: true,
        }),
        vec![fc, fc],
        vec![Batch, Fixed(4)],
    );
    let m = p.constant(vec![4, 4]);
    let mm = p.step("matmul", StepOp::MatMul, vec![fc2, m], vec![Batch, Fixed(4)]);
    let prob = p.step("softmax", StepOp::Softmax { axis: 1 }, vec![mm], vec![Batch, Fixed(4)]);
    p.output("prob", prob);
    p.output("pooled", maxp);
    p.plan
}

fn meta() -> Metadata {
    let mut m = Metadata::new("tiny.onnx");
    m.report.insert("fold_batchnorm".into(), "3 folded".into());
    m.report.insert("steps".into(), "16".into());
    m
}

fn run(model: &Model) -> Vec<Tensor> {
    let x = Tensor::new(vec![2, 2, 4, 4], (0..64).map(|i| (i as f32 * 0.1).cos()).collect()).unwrap();
    model.session_with_threads(1).unwrap().run(&[&x]).unwrap()
}

fn err(bytes: &[u8]) -> String {
    match from_bytes(bytes) {
        Ok(_) => panic!("loaded"),
        Err(e) => e.to_string(),
    }
}

/// `header` and `weights` as a file with a correct prelude and checksum.
fn assemble(header: &proto::Header, weights: &[f32]) -> Vec<u8> {
    let plan = Plan { weights: Weights::from(weights.to_vec()), ..Plan::default() };
    let mut bytes = to_bytes(&plan, &Metadata::default());
    let h = header.encode_to_vec();
    let offset = align_up((PRELUDE_LEN + h.len()) as u64).unwrap() as usize;
    let w = bytes.split_off(bytes.len() - weights.len() * 4);
    bytes.truncate(PRELUDE_LEN);
    bytes.extend_from_slice(&h);
    bytes.resize(offset, 0);
    bytes.extend_from_slice(&w);
    bytes[16..24].copy_from_slice(&(h.len() as u64).to_le_bytes());
    bytes[24..32].copy_from_slice(&(offset as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..40]);
    crc.update(&bytes[44..]);
    let crc = crc.finalize();
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn every_op_plan_is_valid_and_covers_every_variant() {
    let plan = every_op_plan();
    let names: std::collections::BTreeSet<&str> = plan.steps.iter().map(|s| s.op.name()).collect();
    assert_eq!(names.len(), 14, "{names:?}");
    Model::new(plan).unwrap();
}

#[test]
fn round_trip_through_bytes_equals_the_original() {
    let plan = every_op_plan();
    let bytes = to_bytes(&plan, &meta());
    assert_eq!(&bytes[..8], b"RESIN\0\0\x01");
    assert_eq!(u64_at(&bytes, 24) % 64, 0);
    let (back, m) = from_bytes(&bytes).unwrap();
    assert_eq!(back, plan);
    assert_eq!(m, meta());
    assert_eq!(m.producer, format!("resin {}", env!("CARGO_PKG_VERSION")));
    // Deterministic: the same plan gives the same bytes.
    assert_eq!(to_bytes(&back, &m), bytes);
}

#[test]
fn round_trip_keeps_every_field_value() {
    // Not a runnable plan: each op's other field values (other enums, flags, options), unchecked.
    let mut plan = every_op_plan();
    let mut extra = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        let op = match &s.op {
            StepOp::Conv(c) => StepOp::Conv(ConvStep {
                geom: Conv2d { group: 3, pads: [1, 2, 3, 4], strides: [2, 3], dilations: [2, 1], ..c.geom },
                act: Some(UnaryOp::Sigmoid),
                bias: None,
                residual: !c.residual,
                winograd: match c.winograd {
                    None => Some(Variant::F4),
                    Some(_) => None,
                },
                ..c.clone()
            }),
            StepOp::Gemm(g) => StepOp::Gemm(GemmStep {
                trans_a: true,
                alpha: -0.0,
                beta: f32::INFINITY,
                c: Some((g.weight, vec![2, 2])),
                act: Some(UnaryOp::Clip { min: f32::NEG_INFINITY, max: 0.0 }),
                ..g.clone()
            }),
            StepOp::Pad { pads, .. } => StepOp::Pad { pads: pads.clone(), mode: PadMode::Reflect },
            _ => continue,
        };
        extra.push(Step { name: format!("extra{i}"), op, inputs: vec![0, 1, 2], output: 2 });
    }
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Div] {
        extra.push(Step { name: "b".into(), op: StepOp::Binary(op), inputs: vec![], output: 0 });
    }
    extra.push(Step {
        name: "edge".into(),
        op: StepOp::Pad { pads: vec![], mode: PadMode::Edge },
        inputs: vec![3],
        output: 3,
    });
    extra.push(Step {
        name: "pad0".into(),
        op: StepOp::Pad { pads: vec![7], mode: PadMode::Constant(0.0) },
        inputs: vec![3],
        output: 3,
    });
    plan.steps.extend(extra);
    plan.buffers[3].shape = vec![Fixed(0), Batch, Fixed(1 << 40)];
    plan.buffers.push(Buffer { shape: vec![Batch, Fixed(3)], kind: BufferKind::View { base: 2, offset: usize::MAX } });
    plan.outputs.clear();
    plan.inputs.push(Io { name: "ünïcode ✓".into(), buffer: 0 });
    let bytes = to_bytes(&plan, &Metadata::default());
    let (back, m) = from_bytes(&bytes).unwrap();
    assert_eq!(back, plan);
    assert_eq!(m, Metadata::default());
}

#[test]
fn saved_file_loads_memory_mapped_and_runs_the_same() {
    let dir = TempDir::new("load");
    let path = dir.0.join("tiny.resin");
    let plan = every_op_plan();
    save(&plan, &meta(), &path).unwrap();
    assert_eq!(dir.files(), ["tiny.resin"]);
    let loaded = Model::load(&path).unwrap();
    assert!(loaded.plan().weights.is_shared(), "the weights are mapped, not copied");
    assert_eq!(loaded.plan(), &plan);
    assert_eq!(loaded.metadata(), &meta());
    let original = Model::new(plan).unwrap();
    assert_eq!(original.metadata(), &Metadata::default());
    let (a, b) = (run(&original), run(&loaded));
    assert_eq!(a.len(), 2);
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.shape, b.shape);
        assert_eq!(
            a.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
    let from_bytes = Model::from_bytes(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(from_bytes.plan(), loaded.plan());
    // Saving again replaces the file atomically; the loaded model keeps its (old) map.
    let mut other = loaded.plan().clone();
    other.weights.to_mut().iter_mut().for_each(|w| *w = 1.0);
    save(&other, &Metadata::new("other.onnx"), &path).unwrap();
    assert_eq!(run(&loaded)[0].data, b[0].data);
    assert_eq!(Model::load(&path).unwrap().metadata().source, "other.onnx");
    assert_eq!(dir.files(), ["tiny.resin"]);
}

#[test]
fn every_flipped_byte_is_an_error() {
    let bytes = to_bytes(&every_op_plan(), &meta());
    assert!(bytes.len() < 4096, "{} bytes", bytes.len());
    let mut b = bytes.clone();
    for i in 0..bytes.len() {
        for mask in [0xff, 0x01, 0x80] {
            b[i] ^= mask;
            assert!(from_bytes(&b).is_err(), "byte {i} ^ {mask:#x} loaded");
            b[i] ^= mask;
        }
    }
    assert_eq!(b, bytes);
    assert!(Model::from_bytes(&bytes).is_ok());
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = to_bytes(&every_op_plan(), &meta());
    for len in 0..bytes.len() {
        let e = err(&bytes[..len]);
        if len > 0 {
            assert!(e.contains("truncated"), "at {len}: {e}");
        }
    }
    assert_eq!(
        err(&bytes[..bytes.len() - 10]),
        format!("the file is truncated: it has {} bytes of {} (10 bytes missing)", bytes.len() - 10, bytes.len())
    );
    assert_eq!(err(&bytes[..20]), "the file is truncated: it has 20 bytes of 48 (28 bytes missing)");
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(err(&longer), "1 unexpected bytes after the weights");
}

#[test]
fn corrupted_weights_fail_the_checksum() {
    let mut bytes = to_bytes(&every_op_plan(), &meta());
    let n = bytes.len();
    bytes[n - 5] ^= 0x10;
    assert_eq!(err(&bytes), "checksum mismatch: the file is corrupted");
}

#[test]
fn a_future_version_is_a_clear_error() {
    let mut bytes = to_bytes(&every_op_plan(), &meta());
    bytes[8..12].copy_from_slice(&4u32.to_le_bytes());
    assert_eq!(err(&bytes), "format version 4 is newer than this resin (3)");
    // Whatever follows: a newer file may lay out everything else differently.
    assert_eq!(err(&bytes[..12]), "format version 4 is newer than this resin (3)");
    // Version 1 stored convolution weights unpacked, version 2 packed them in panels of 8 rows (now 6):
    // such files must be recompiled, not misread.
    for old in [1u32, 2] {
        bytes[8..12].copy_from_slice(&old.to_le_bytes());
        assert_eq!(
            err(&bytes),
            format!("format version {old} is not supported by this resin (3): compile the ONNX model again")
        );
    }
    bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(err(&bytes), "format version 0 is not valid");
}

#[test]
fn wrong_magic_is_an_error() {
    let mut bytes = to_bytes(&every_op_plan(), &meta());
    bytes[0] = b'X';
    assert!(err(&bytes).starts_with("not a resin file"), "{}", err(&bytes));
    assert!(err(b"\x08\x07\x12\x04onnx").starts_with("not a resin file"));
    assert!(err(b"").starts_with("not a resin file"));
    let dir = TempDir::new("magic");
    let path = dir.0.join("model.onnx");
    std::fs::write(&path, b"\x08\x07\x12\x04onnx-and-more-bytes-than-the-prelude-has-in-it").unwrap();
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: not a resin file", path.display())), "{e}");
}

#[test]
fn load_errors_name_the_file() {
    let dir = TempDir::new("errors");
    let path = dir.0.join("m.resin");
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: cannot open", path.display())), "{e}");
    let bytes = to_bytes(&every_op_plan(), &meta());
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(e.ends_with("(3 bytes missing)") && e.starts_with(&path.display().to_string()), "{e}");
    std::fs::write(&path, &bytes[..5]).unwrap();
    assert!(Model::load(&path).unwrap_err().to_string().contains("43 bytes missing"));
    std::fs::write(&path, b"").unwrap();
    assert!(Model::load(&path).is_err());
    // A well-formed file whose plan is invalid fails `check_plan`.
    let mut plan = every_op_plan();
    plan.steps.swap(0, 1);
    save(&plan, &meta(), &path).unwrap();
    let e = Model::load(&path).unwrap_err().to_string();
    assert!(e.contains("invalid plan: step 'conv' reads buffer"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn atomic_save_leaves_no_temp_file_on_error() {
    let dir = TempDir::new("save");
    let plan = every_op_plan();
    // A missing directory: the error names it.
    let missing = dir.0.join("no-such-dir");
    let e = save(&plan, &meta(), &missing.join("m.resin")).unwrap_err().to_string();
    assert_eq!(e, format!("{}: cannot save m.resin: the directory does not exist", missing.display()));
    assert!(dir.files().is_empty());
    // The rename fails (the target is a directory): the temporary file is removed, the target kept.
    let target = dir.0.join("taken.resin");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"x").unwrap();
    let e = save(&plan, &meta(), &target).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: cannot save", target.display())), "{e}");
    assert_eq!(dir.files(), ["taken.resin"]);
    assert!(target.join("inside").exists());
    // An existing file is replaced whole.
    let path = dir.0.join("m.resin");
    std::fs::write(&path, b"old contents").unwrap();
    save(&plan, &meta(), &path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), to_bytes(&plan, &meta()));
    assert_eq!(dir.files(), ["m.resin", "taken.resin"]);
}

#[test]
fn invalid_headers_are_errors() {
    let plan = every_op_plan();
    let good = header_of(&plan, &meta());
    let w: &[f32] = &plan.weights;
    assert!(from_bytes(&assemble(&good, w)).is_ok());
    type Edit = Box<dyn Fn(&mut proto::Header)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("invalid binary op 0", Box::new(|h| h.steps[7].op = Some(proto::step::Op::Binary(0)))),
        ("invalid binary op 99", Box::new(|h| h.steps[7].op = Some(proto::step::Op::Binary(99)))),
        ("step 'pad': the op is missing", Box::new(|h| h.steps[0].op = None)),
        ("buffer 0: its kind is missing", Box::new(|h| h.buffers[0].kind = None)),
        ("buffer 0: a dimension is missing", Box::new(|h| h.buffers[0].shape[1].kind = None)),
        (
            "step 'conv': the weight range is missing",
            Box::new(|h| {
                if let Some(proto::step::Op::Conv(c)) = &mut h.steps[1].op {
                    c.weight = None;
                }
            }),
        ),
        (
            "step 'conv': kernel: 3 values, expected 2",
            Box::new(|h| {
                if let Some(proto::step::Op::Conv(c)) = &mut h.steps[1].op {
                    c.kernel.push(1);
                }
            }),
        ),
        (
            "outside the weight section",
            Box::new(|h| {
                if let Some(proto::step::Op::Conv(c)) = &mut h.steps[1].op {
                    c.bias = Some(proto::WeightRange { offset: u64::MAX, len: 2 });
                }
            }),
        ),
        (
            "outside the weight section",
            Box::new(|h| {
                if let Some(proto::step::Op::Conv(c)) = &mut h.steps[1].op {
                    c.bias = Some(proto::WeightRange { offset: 0, len: 1 << 40 });
                }
            }),
        ),
        ("slots for", Box::new(|h| h.slots = u64::MAX)),
        ("slot 99 is out of range", Box::new(|h| h.buffers[1].kind = Some(proto::buffer::Kind::ActivationSlot(99)))),
        ("input 5 does not exist", Box::new(|h| h.buffers[0].kind = Some(proto::buffer::Kind::Input(5)))),
        ("output 'prob': buffer 1000 does not exist", Box::new(|h| h.outputs[0].buffer = 1000)),
        ("step 'conv': buffer 77 does not exist", Box::new(|h| h.steps[1].inputs[0] = 77)),
        (
            "step 'pad': the pad mode is missing",
            Box::new(|h| {
                if let Some(proto::step::Op::Pad(p)) = &mut h.steps[0].op {
                    p.mode = None;
                }
            }),
        ),
        (
            "step 'conv': the unary op is missing",
            Box::new(|h| {
                if let Some(proto::step::Op::Conv(c)) = &mut h.steps[1].op {
                    c.act = Some(proto::Unary { kind: None });
                }
            }),
        ),
        (
            "step 'fc': the weight range is missing",
            Box::new(|h| {
                if let Some(proto::step::Op::Gemm(g)) = &mut h.steps[12].op {
                    g.c.as_mut().unwrap().range = None;
                }
            }),
        ),
    ];
    for (want, edit) in cases {
        let mut h = good.clone();
        edit(&mut h);
        let e = err(&assemble(&h, w));
        assert!(e.starts_with("invalid header: ") && e.contains(want), "want '{want}', got '{e}'");
    }
    // Bytes that are not a protobuf message at all.
    let mut bytes = assemble(&good, w);
    let h = u64_at(&bytes, 16) as usize;
    bytes[PRELUDE_LEN..PRELUDE_LEN + h].fill(0xff);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[..40]);
    crc.update(&bytes[44..]);
    let crc = crc.finalize();
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    let e = err(&bytes);
    assert!(e.starts_with("invalid header: ") && !e.contains('\n'), "{e}");
}

#[test]
fn shared_weights_are_checked_when_made() {
    let bytes: Arc<Vec<u8>> = Arc::new((0..64u8).collect());
    let base = bytes.as_ptr() as usize;
    let aligned = (4 - base % 4) % 4;
    let w = Weights::shared(bytes.clone(), aligned, 4).unwrap();
    assert_eq!(w.len(), 4);
    assert!(w.is_shared());
    assert_eq!(
        w[0].to_bits(),
        u32::from_le_bytes([aligned as u8, aligned as u8 + 1, aligned as u8 + 2, aligned as u8 + 3])
    );
    assert!(Weights::shared(bytes.clone(), aligned + 1, 4).unwrap_err().contains("aligned"));
    assert!(Weights::shared(bytes.clone(), 60, 2).unwrap_err().contains("exceed"));
    assert!(Weights::shared(bytes.clone(), 0, usize::MAX).is_err());
    let mut owned = w.clone();
    owned.to_mut().push(1.0);
    assert!(!owned.is_shared());
    assert_eq!(owned[..4], w[..]);
    assert_eq!(owned.len(), 5);
}

/// Times `Model::load` of a file with ~100 MB of weights (ResNet-50's size). Run with
/// `cargo test --release -p resin-runtime -- --ignored --nocapture load_time`.
#[test]
#[ignore]
fn load_time_of_100_mb() {
    let mut p = Builder::default();
    let x = p.input("x", vec![Batch, Fixed(1024)]);
    let mut h = x;
    // 24 layers of 1024×1024 floats (4 MiB each) = 96 MiB, plus biases.
    for i in 0..24 {
        let (weight, c) = (p.weights(1024 * 1024), p.weights(1024));
        h = p.step(
            &format!("fc{i}"),
            StepOp::Gemm(GemmStep {
                k: 1024,
                n: 1024,
                trans_a: false,
                alpha: 1.0,
                weight,
                c: Some((c, vec![1024])),
                beta: 1.0,
                act: Some(UnaryOp::Relu),
                residual: false,
            }),
            vec![h],
            vec![Batch, Fixed(1024)],
        );
    }
    p.output("y", h);
    let plan = p.plan;
    let dir = TempDir::new("big");
    let path = dir.0.join("big.resin");
    let t = std::time::Instant::now();
    save(&plan, &Metadata::new("big.onnx"), &path).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!("save: {:.1} ms for {:.1} MB", t.elapsed().as_secs_f64() * 1e3, size as f64 / 1e6);
    let mut times = Vec::new();
    for _ in 0..7 {
        let t = std::time::Instant::now();
        let m = Model::load(&path).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(m.plan().weights.is_shared());
    }
    println!("Model::load: {times:.1?} ms");
    let m = Model::load(&path).unwrap();
    assert_eq!(m.plan(), &plan);
}
