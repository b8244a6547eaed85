//! The `.resin` compiled-artifact format: a [`Plan`] and its [`Metadata`] in one file that loads by
//! memory-mapping, without copying or converting the weights.
//!
//! # Layout
//!
//! All integers are little-endian.
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 8 | magic | `RESIN\0\0\x01` |
//! | 8 | 4 | version | `u32`, format version: [`VERSION`] (3) |
//! | 12 | 4 | flags | `u32`, none defined yet: must be 0 |
//! | 16 | 8 | header length | `u64`, bytes of the encoded header |
//! | 24 | 8 | weights offset | `u64`, `48 + header length` rounded up to a multiple of 64 |
//! | 32 | 8 | weights length | `u64`, bytes of weights, a multiple of 4 |
//! | 40 | 4 | checksum | `u32`, CRC-32 (IEEE 802.3, as zlib and gzip) of every byte of the file except this field: bytes `0..40` then `44..end` |
//! | 44 | 4 | reserved | must be 0 |
//! | 48 | header length | header | [`proto::Header`], a protobuf message (prost): the plan without its weights, and the metadata |
//! | 48 + header length | < 64 | padding | zeros up to the weights offset |
//! | weights offset | weights length | weights | the plan's weights, raw `f32`, 64-byte aligned in the file |
//!
//! The file ends exactly at `weights offset + weights length`.
//!
//! # Loading
//!
//! Before trusting anything, a loader checks, in this order: the magic, the version (a newer version is
//! an error that says so), the flags, every length and offset against the file's size (a truncated file
//! says how many bytes are missing), then the checksum; only then does it decode the header, convert
//! it to a plan (every enum value, field and number checked: an error, never a panic) and check the plan
//! as [`Model::new`] does. Every weight range lies within the weight section.
//!
//! [`Model::load`] memory-maps the file and the plan's [`Weights`] point into the map: loading reads the
//! weights once, for the checksum, and copies nothing. A loaded file must not be modified in place while
//! the model lives; [`save`] never does (it writes a new file and renames it over the old one).

use crate::error::{Error, Result};
use crate::kernels::conv::Conv2d;
use crate::kernels::elementwise::{BinaryOp, UnaryOp};
use crate::kernels::pad::PadMode;
use crate::kernels::pool::Pool2d;
use crate::kernels::winograd::Variant;
use crate::plan::{self, Buffer, BufferKind, ConvStep, GemmStep, Io, Plan, Step, StepOp, WeightRange, Weights};
use crate::session::Model;
use prost::Message;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The first 8 bytes of every `.resin` file.
pub const MAGIC: [u8; 8] = *b"RESIN\0\0\x01";
/// The format version this runtime writes and reads.
pub const VERSION: u32 = 3;
/// Bytes before the header.
pub const PRELUDE_LEN: usize = 48;
/// Alignment of the weight section in the file, in bytes.
pub const WEIGHTS_ALIGN: usize = 64;
/// What writes the files: `resin` and its version.
pub const PRODUCER: &str = concat!("resin ", env!("CARGO_PKG_VERSION"));

/// Free-form facts about a compiled model, stored in its header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// What wrote the file, e.g. `resin 0.1.0`.
    pub producer: String,
    /// The file name of the model it was compiled from.
    pub source: String,
    /// The compiler's report, key → value.
    pub report: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata for a model compiled from `source` by this resin, with an empty report.
    pub fn new(source: impl Into<String>) -> Metadata {
        Metadata { producer: PRODUCER.to_string(), source: source.into(), report: BTreeMap::new() }
    }
}

/// The header's protobuf messages: the plan's mirror, without its weights.
///
/// Enumerations start at 1: the protobuf default 0 means "missing" and is rejected. Unit variants are
/// empty messages inside a oneof, so that a missing oneof is told apart from every variant.
pub mod proto {
    use prost::{Enumeration, Message};
    use std::collections::BTreeMap;

    #[derive(Clone, PartialEq, Message)]
    pub struct Header {
        #[prost(string, tag = "1")]
        pub producer: String,
        #[prost(string, tag = "2")]
        pub source: String,
        #[prost(btree_map = "string, string", tag = "3")]
        pub report: BTreeMap<String, String>,
        #[prost(uint64, tag = "4")]
        pub slots: u64,
        #[prost(message, repeated, tag = "5")]
        pub buffers: Vec<Buffer>,
        #[prost(message, repeated, tag = "6")]
        pub inputs: Vec<Io>,
        #[prost(message, repeated, tag = "7")]
        pub outputs: Vec<Io>,
        #[prost(message, repeated, tag = "8")]
        pub steps: Vec<Step>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Empty {}

    #[derive(Clone, PartialEq, Message)]
    pub struct Dim {
        #[prost(oneof = "dim::Kind", tags = "1, 2")]
        pub kind: Option<dim::Kind>,
    }

    pub mod dim {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            #[prost(uint64, tag = "1")]
            Fixed(u64),
            #[prost(message, tag = "2")]
            Batch(super::Empty),
        }
    }

    #[derive(Clone, Copy, PartialEq, Message)]
    pub struct WeightRange {
        #[prost(uint64, tag = "1")]
        pub offset: u64,
        #[prost(uint64, tag = "2")]
        pub len: u64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Buffer {
        #[prost(message, repeated, tag = "1")]
        pub shape: Vec<Dim>,
        #[prost(oneof = "buffer::Kind", tags = "2, 3, 4, 5")]
        pub kind: Option<buffer::Kind>,
    }

    pub mod buffer {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            /// Model input number.
            #[prost(uint64, tag = "2")]
            Input(u64),
            /// An activation, in this slot.
            #[prost(uint64, tag = "3")]
            ActivationSlot(u64),
            #[prost(message, tag = "4")]
            Constant(super::WeightRange),
            #[prost(message, tag = "5")]
            View(super::View),
        }
    }

    /// A window of another activation buffer (see `plan::BufferKind::View`).
    #[derive(Clone, Copy, PartialEq, Message)]
    pub struct View {
        #[prost(uint64, tag = "1")]
        pub base: u64,
        #[prost(uint64, tag = "2")]
        pub offset: u64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Io {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint64, tag = "2")]
        pub buffer: u64,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Unary {
        #[prost(oneof = "unary::Kind", tags = "1, 2, 3")]
        pub kind: Option<unary::Kind>,
    }

    pub mod unary {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Kind {
            #[prost(message, tag = "1")]
            Relu(super::Empty),
            #[prost(message, tag = "2")]
            Sigmoid(super::Empty),
            #[prost(message, tag = "3")]
            Clip(super::Clip),
        }
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Clip {
        #[prost(float, tag = "1")]
        pub min: f32,
        #[prost(float, tag = "2")]
        pub max: f32,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Enumeration)]
    #[repr(i32)]
    pub enum BinaryOp {
        Unspecified = 0,
        Add = 1,
        Sub = 2,
        Mul = 3,
        Div = 4,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Conv {
        #[prost(uint64, tag = "1")]
        pub cin: u64,
        #[prost(uint64, tag = "2")]
        pub cout: u64,
        /// `[kh, kw]`
        #[prost(uint64, repeated, tag = "3")]
        pub kernel: Vec<u64>,
        /// `[sh, sw]`
        #[prost(uint64, repeated, tag = "4")]
        pub strides: Vec<u64>,
        /// `[top, left, bottom, right]`
        #[prost(uint64, repeated, tag = "5")]
        pub pads: Vec<u64>,
        /// `[dh, dw]`
        #[prost(uint64, repeated, tag = "6")]
        pub dilations: Vec<u64>,
        #[prost(uint64, tag = "7")]
        pub group: u64,
        #[prost(message, optional, tag = "8")]
        pub weight: Option<WeightRange>,
        #[prost(message, optional, tag = "9")]
        pub bias: Option<WeightRange>,
        #[prost(message, optional, tag = "10")]
        pub act: Option<Unary>,
        #[prost(bool, tag = "11")]
        pub residual: bool,
        /// The input prologue (a BatchNorm before the convolution).
        #[prost(message, optional, tag = "12")]
        pub pre: Option<Pre>,
        /// Weights transformed for Winograd (`winograd_tile` says which variant).
        #[prost(bool, tag = "13")]
        pub winograd: bool,
        /// The Winograd output tile n of F(n×n, 3×3) when `winograd`: 4, or 2 (also when absent: files
        /// written before F(4×4) existed). A new tag rather than a new format version: every older file
        /// still reads, and an older resin that ignores the tag refuses an F(4×4) file at the plan check
        /// (its transformed weights are 36, not 16, packed matrices) instead of misreading it.
        #[prost(uint64, tag = "14")]
        pub winograd_tile: u64,
    }

    /// A convolution's input prologue: `x' = act(scale[c]·x + shift[c])`.
    #[derive(Clone, PartialEq, Message)]
    pub struct Pre {
        #[prost(message, optional, tag = "1")]
        pub scale: Option<WeightRange>,
        #[prost(message, optional, tag = "2")]
        pub shift: Option<WeightRange>,
        #[prost(message, optional, tag = "3")]
        pub act: Option<Unary>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct GemmC {
        #[prost(message, optional, tag = "1")]
        pub range: Option<WeightRange>,
        #[prost(uint64, repeated, tag = "2")]
        pub shape: Vec<u64>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Gemm {
        #[prost(uint64, tag = "1")]
        pub k: u64,
        #[prost(uint64, tag = "2")]
        pub n: u64,
        #[prost(bool, tag = "3")]
        pub trans_a: bool,
        #[prost(float, tag = "4")]
        pub alpha: f32,
        #[prost(message, optional, tag = "5")]
        pub weight: Option<WeightRange>,
        #[prost(message, optional, tag = "6")]
        pub c: Option<GemmC>,
        #[prost(float, tag = "7")]
        pub beta: f32,
        #[prost(message, optional, tag = "8")]
        pub act: Option<Unary>,
        #[prost(bool, tag = "9")]
        pub residual: bool,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct ChannelAffine {
        #[prost(message, optional, tag = "1")]
        pub scale: Option<WeightRange>,
        #[prost(message, optional, tag = "2")]
        pub shift: Option<WeightRange>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Pool {
        #[prost(uint64, repeated, tag = "1")]
        pub kernel: Vec<u64>,
        #[prost(uint64, repeated, tag = "2")]
        pub strides: Vec<u64>,
        #[prost(uint64, repeated, tag = "3")]
        pub pads: Vec<u64>,
        #[prost(uint64, repeated, tag = "4")]
        pub dilations: Vec<u64>,
        #[prost(bool, tag = "5")]
        pub count_include_pad: bool,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct PoolPre {
        #[prost(message, optional, tag = "1")]
        pub pool: Option<Pool>,
        #[prost(message, optional, tag = "2")]
        pub pre: Option<Pre>,
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Pad {
        #[prost(uint64, repeated, tag = "1")]
        pub pads: Vec<u64>,
        #[prost(oneof = "pad::Mode", tags = "2, 3, 4")]
        pub mode: Option<pad::Mode>,
    }

    pub mod pad {
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Mode {
            #[prost(float, tag = "2")]
            Constant(f32),
            #[prost(message, tag = "3")]
            Reflect(super::Empty),
            #[prost(message, tag = "4")]
            Edge(super::Empty),
        }
    }

    #[derive(Clone, PartialEq, Message)]
    pub struct Step {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint64, repeated, tag = "2")]
        pub inputs: Vec<u64>,
        #[prost(uint64, tag = "3")]
        pub output: u64,
        #[prost(oneof = "step::Op", tags = "10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24")]
        pub op: Option<step::Op>,
    }

    pub mod step {
        use super::*;

        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Op {
            #[prost(message, tag = "10")]
            Conv(Conv),
            #[prost(message, tag = "11")]
            Gemm(Gemm),
            #[prost(message, tag = "12")]
            MatMul(Empty),
            #[prost(message, tag = "13")]
            ChannelAffine(ChannelAffine),
            #[prost(message, tag = "14")]
            Unary(Unary),
            #[prost(enumeration = "BinaryOp", tag = "15")]
            Binary(i32),
            #[prost(message, tag = "16")]
            Sum(Empty),
            #[prost(message, tag = "17")]
            MaxPool(Pool),
            #[prost(message, tag = "18")]
            AvgPool(Pool),
            /// An average pool with an input prologue. A new tag: a resin that does not know it finds a
            /// step without an op and refuses the file, instead of pooling without the prologue.
            #[prost(message, tag = "24")]
            AvgPoolPre(PoolPre),
            #[prost(message, tag = "19")]
            GlobalAvgPool(Empty),
            /// The axis.
            #[prost(uint64, tag = "20")]
            Softmax(u64),
            /// The axis.
            #[prost(uint64, tag = "21")]
            Concat(u64),
            #[prost(message, tag = "22")]
            Pad(Pad),
            #[prost(message, tag = "23")]
            Copy(Empty),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Plan -> header

fn n64(n: usize) -> u64 {
    n as u64 // lossless: usize is at most 64 bits on every supported target
}

fn n64s(v: &[usize]) -> Vec<u64> {
    v.iter().map(|&n| n64(n)).collect()
}

fn range_msg(r: WeightRange) -> proto::WeightRange {
    proto::WeightRange { offset: n64(r.offset), len: n64(r.len) }
}

fn unary_msg(op: UnaryOp) -> proto::Unary {
    use proto::unary::Kind;
    let kind = match op {
        UnaryOp::Relu => Kind::Relu(proto::Empty {}),
        UnaryOp::Sigmoid => Kind::Sigmoid(proto::Empty {}),
        UnaryOp::Clip { min, max } => Kind::Clip(proto::Clip { min, max }),
    };
    proto::Unary { kind: Some(kind) }
}

fn pre_msg(p: &plan::PreStep) -> proto::Pre {
    proto::Pre { scale: Some(range_msg(p.scale)), shift: Some(range_msg(p.shift)), act: p.act.map(unary_msg) }
}

fn pool_msg(p: &Pool2d) -> proto::Pool {
    proto::Pool {
        kernel: n64s(&p.kernel),
        strides: n64s(&p.strides),
        pads: n64s(&p.pads),
        dilations: n64s(&p.dilations),
        count_include_pad: p.count_include_pad,
    }
}

fn op_msg(op: &StepOp) -> proto::step::Op {
    use proto::step::Op;
    let empty = proto::Empty {};
    match op {
        StepOp::Conv(c) => Op::Conv(proto::Conv {
            cin: n64(c.geom.cin),
            cout: n64(c.geom.cout),
            kernel: n64s(&c.geom.kernel),
            strides: n64s(&c.geom.strides),
            pads: n64s(&c.geom.pads),
            dilations: n64s(&c.geom.dilations),
            group: n64(c.geom.group),
            weight: Some(range_msg(c.weight)),
            bias: c.bias.map(range_msg),
            act: c.act.map(unary_msg),
            residual: c.residual,
            pre: c.pre.as_ref().map(pre_msg),
            winograd: c.winograd.is_some(),
            winograd_tile: match c.winograd {
                Some(Variant::F4) => 4,
                _ => 0,
            },
        }),
        StepOp::Gemm(g) => Op::Gemm(proto::Gemm {
            k: n64(g.k),
            n: n64(g.n),
            trans_a: g.trans_a,
            alpha: g.alpha,
            weight: Some(range_msg(g.weight)),
            c: g.c.as_ref().map(|(r, shape)| proto::GemmC { range: Some(range_msg(*r)), shape: n64s(shape) }),
            beta: g.beta,
            act: g.act.map(unary_msg),
            residual: g.residual,
        }),
        StepOp::MatMul => Op::MatMul(empty),
        StepOp::ChannelAffine { scale, shift } => {
            Op::ChannelAffine(proto::ChannelAffine { scale: Some(range_msg(*scale)), shift: Some(range_msg(*shift)) })
        }
        StepOp::Unary(u) => Op::Unary(unary_msg(*u)),
        StepOp::Binary(b) => Op::Binary(match b {
            BinaryOp::Add => proto::BinaryOp::Add,
            BinaryOp::Sub => proto::BinaryOp::Sub,
            BinaryOp::Mul => proto::BinaryOp::Mul,
            BinaryOp::Div => proto::BinaryOp::Div,
        } as i32),
        StepOp::Sum => Op::Sum(empty),
        StepOp::MaxPool(p) => Op::MaxPool(pool_msg(p)),
        StepOp::AvgPool(p) => Op::AvgPool(pool_msg(p)),
        StepOp::AvgPoolPre { pool, pre } => {
            Op::AvgPoolPre(proto::PoolPre { pool: Some(pool_msg(pool)), pre: Some(pre_msg(pre)) })
        }
        StepOp::GlobalAvgPool => Op::GlobalAvgPool(empty),
        StepOp::Softmax { axis } => Op::Softmax(n64(*axis)),
        StepOp::Concat { axis } => Op::Concat(n64(*axis)),
        StepOp::Pad { pads, mode } => Op::Pad(proto::Pad {
            pads: n64s(pads),
            mode: Some(match mode {
                PadMode::Constant(v) => proto::pad::Mode::Constant(*v),
                PadMode::Reflect => proto::pad::Mode::Reflect(empty),
                PadMode::Edge => proto::pad::Mode::Edge(empty),
            }),
        }),
        StepOp::Copy => Op::Copy(empty),
    }
}

/// The header of `plan` (everything but its weights) with `meta`.
pub fn header_of(plan: &Plan, meta: &Metadata) -> proto::Header {
    let io = |io: &Io| proto::Io { name: io.name.clone(), buffer: n64(io.buffer) };
    proto::Header {
        producer: meta.producer.clone(),
        source: meta.source.clone(),
        report: meta.report.clone(),
        slots: n64(plan.slots),
        buffers: plan
            .buffers
            .iter()
            .map(|b| proto::Buffer {
                shape: b
                    .shape
                    .iter()
                    .map(|d| proto::Dim {
                        kind: Some(match d {
                            plan::Dim::Fixed(n) => proto::dim::Kind::Fixed(n64(*n)),
                            plan::Dim::Batch => proto::dim::Kind::Batch(proto::Empty {}),
                        }),
                    })
                    .collect(),
                kind: Some(match &b.kind {
                    BufferKind::Input(k) => proto::buffer::Kind::Input(n64(*k)),
                    BufferKind::Activation { slot } => proto::buffer::Kind::ActivationSlot(n64(*slot)),
                    BufferKind::Const(r) => proto::buffer::Kind::Constant(range_msg(*r)),
                    BufferKind::View { base, offset } => {
                        proto::buffer::Kind::View(proto::View { base: n64(*base), offset: n64(*offset) })
                    }
                }),
            })
            .collect(),
        inputs: plan.inputs.iter().map(io).collect(),
        outputs: plan.outputs.iter().map(io).collect(),
        steps: plan
            .steps
            .iter()
            .map(|s| proto::Step {
                name: s.name.clone(),
                inputs: n64s(&s.inputs),
                output: n64(s.output),
                op: Some(op_msg(&s.op)),
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------------
// header -> Plan

type Msg<T> = std::result::Result<T, String>;

/// Converts what the header says, with the limits every number must respect.
struct Reader {
    n_weights: usize,
    n_buffers: usize,
}

fn num(v: u64, what: &str) -> Msg<usize> {
    usize::try_from(v).map_err(|_| format!("{what}: {v} is out of range"))
}

fn nums<const N: usize>(v: &[u64], what: &str) -> Msg<[usize; N]> {
    if v.len() != N {
        return Err(format!("{what}: {} values, expected {N}", v.len()));
    }
    let mut out = [0usize; N];
    for (o, &x) in out.iter_mut().zip(v) {
        *o = num(x, what)?;
    }
    Ok(out)
}

fn nums_vec(v: &[u64], what: &str) -> Msg<Vec<usize>> {
    v.iter().map(|&x| num(x, what)).collect()
}

fn need<T>(v: Option<T>, what: &str) -> Msg<T> {
    v.ok_or_else(|| format!("{what} is missing"))
}

impl Reader {
    fn range(&self, r: Option<&proto::WeightRange>, what: &str) -> Msg<WeightRange> {
        let r = need(r, &format!("{what}: the weight range"))?;
        let (offset, len) = (num(r.offset, what)?, num(r.len, what)?);
        if offset.checked_add(len).is_none_or(|end| end > self.n_weights) {
            return Err(format!(
                "{what}: weight range {offset}+{len} is outside the weight section of {} floats",
                self.n_weights
            ));
        }
        Ok(WeightRange { offset, len })
    }

    fn buffer_index(&self, b: u64, what: &str) -> Msg<usize> {
        match num(b, what)? {
            i if i < self.n_buffers => Ok(i),
            i => Err(format!("{what}: buffer {i} does not exist (there are {})", self.n_buffers)),
        }
    }

    fn unary(&self, u: &proto::Unary, what: &str) -> Msg<UnaryOp> {
        use proto::unary::Kind;
        Ok(match need(u.kind.as_ref(), &format!("{what}: the unary op"))? {
            Kind::Relu(_) => UnaryOp::Relu,
            Kind::Sigmoid(_) => UnaryOp::Sigmoid,
            Kind::Clip(c) => UnaryOp::Clip { min: c.min, max: c.max },
        })
    }

    fn pool(&self, p: &proto::Pool, what: &str) -> Msg<Pool2d> {
        Ok(Pool2d {
            kernel: nums(&p.kernel, &format!("{what}: kernel"))?,
            strides: nums(&p.strides, &format!("{what}: strides"))?,
            pads: nums(&p.pads, &format!("{what}: pads"))?,
            dilations: nums(&p.dilations, &format!("{what}: dilations"))?,
            count_include_pad: p.count_include_pad,
        })
    }

    fn pre(&self, p: &proto::Pre, what: &str) -> Msg<plan::PreStep> {
        Ok(plan::PreStep {
            scale: self.range(p.scale.as_ref(), what)?,
            shift: self.range(p.shift.as_ref(), what)?,
            act: p.act.as_ref().map(|u| self.unary(u, what)).transpose()?,
        })
    }

    fn op(&self, op: Option<&proto::step::Op>, what: &str) -> Msg<StepOp> {
        use proto::step::Op;
        Ok(match need(op, &format!("{what}: the op"))? {
            Op::Conv(c) => StepOp::Conv(ConvStep {
                geom: Conv2d {
                    cin: num(c.cin, &format!("{what}: cin"))?,
                    cout: num(c.cout, &format!("{what}: cout"))?,
                    kernel: nums(&c.kernel, &format!("{what}: kernel"))?,
                    strides: nums(&c.strides, &format!("{what}: strides"))?,
                    pads: nums(&c.pads, &format!("{what}: pads"))?,
                    dilations: nums(&c.dilations, &format!("{what}: dilations"))?,
                    group: num(c.group, &format!("{what}: group"))?,
                },
                weight: self.range(c.weight.as_ref(), what)?,
                bias: c.bias.as_ref().map(|r| self.range(Some(r), what)).transpose()?,
                act: c.act.as_ref().map(|u| self.unary(u, what)).transpose()?,
                residual: c.residual,
                pre: c.pre.as_ref().map(|p| self.pre(p, what)).transpose()?,
                winograd: match (c.winograd, c.winograd_tile) {
                    (false, 0) => None,
                    (true, 0 | 2) => Some(Variant::F2),
                    (true, 4) => Some(Variant::F4),
                    (true, n) => return Err(format!("{what}: Winograd tile {n} is not 2 or 4")),
                    (false, n) => return Err(format!("{what}: a Winograd tile ({n}) without Winograd")),
                },
            }),
            Op::Gemm(g) => StepOp::Gemm(GemmStep {
                k: num(g.k, &format!("{what}: k"))?,
                n: num(g.n, &format!("{what}: n"))?,
                trans_a: g.trans_a,
                alpha: g.alpha,
                weight: self.range(g.weight.as_ref(), what)?,
                c: match &g.c {
                    Some(c) => Some((self.range(c.range.as_ref(), what)?, nums_vec(&c.shape, what)?)),
                    None => None,
                },
                beta: g.beta,
                act: g.act.as_ref().map(|u| self.unary(u, what)).transpose()?,
                residual: g.residual,
            }),
            Op::MatMul(_) => StepOp::MatMul,
            Op::ChannelAffine(a) => StepOp::ChannelAffine {
                scale: self.range(a.scale.as_ref(), what)?,
                shift: self.range(a.shift.as_ref(), what)?,
            },
            Op::Unary(u) => StepOp::Unary(self.unary(u, what)?),
            Op::Binary(b) => StepOp::Binary(match proto::BinaryOp::try_from(*b) {
                Ok(proto::BinaryOp::Add) => BinaryOp::Add,
                Ok(proto::BinaryOp::Sub) => BinaryOp::Sub,
                Ok(proto::BinaryOp::Mul) => BinaryOp::Mul,
                Ok(proto::BinaryOp::Div) => BinaryOp::Div,
                Ok(proto::BinaryOp::Unspecified) | Err(_) => return Err(format!("{what}: invalid binary op {b}")),
            }),
            Op::Sum(_) => StepOp::Sum,
            Op::MaxPool(p) => StepOp::MaxPool(self.pool(p, what)?),
            Op::AvgPool(p) => StepOp::AvgPool(self.pool(p, what)?),
            Op::AvgPoolPre(p) => StepOp::AvgPoolPre {
                pool: self.pool(need(p.pool.as_ref(), &format!("{what}: the pool"))?, what)?,
                pre: self.pre(need(p.pre.as_ref(), &format!("{what}: the prologue"))?, what)?,
            },
            Op::GlobalAvgPool(_) => StepOp::GlobalAvgPool,
            Op::Softmax(axis) => StepOp::Softmax { axis: num(*axis, &format!("{what}: axis"))? },
            Op::Concat(axis) => StepOp::Concat { axis: num(*axis, &format!("{what}: axis"))? },
            Op::Pad(p) => StepOp::Pad {
                pads: nums_vec(&p.pads, &format!("{what}: pads"))?,
                mode: match need(p.mode.as_ref(), &format!("{what}: the pad mode"))? {
                    proto::pad::Mode::Constant(v) => PadMode::Constant(*v),
                    proto::pad::Mode::Reflect(_) => PadMode::Reflect,
                    proto::pad::Mode::Edge(_) => PadMode::Edge,
                },
            },
            Op::Copy(_) => StepOp::Copy,
        })
    }
}

/// The plan `header` describes, with `weights`, and its metadata. Every enum value, field, index and
/// weight range is checked (an error, never a panic); the plan as a whole is checked by [`Model::new`].
pub fn plan_of(header: &proto::Header, weights: Weights) -> Result<(Plan, Metadata)> {
    plan_of_msg(header, weights).map_err(|m| Error::Format(format!("invalid header: {m}")))
}

fn plan_of_msg(h: &proto::Header, weights: Weights) -> Msg<(Plan, Metadata)> {
    let r = Reader { n_weights: weights.len(), n_buffers: h.buffers.len() };
    let slots = num(h.slots, "slots")?;
    if slots > h.buffers.len() {
        return Err(format!("{slots} slots for {} buffers", h.buffers.len()));
    }
    let mut buffers = Vec::with_capacity(h.buffers.len());
    for (i, b) in h.buffers.iter().enumerate() {
        let what = format!("buffer {i}");
        let shape = b
            .shape
            .iter()
            .map(|d| match need(d.kind.as_ref(), &format!("{what}: a dimension"))? {
                proto::dim::Kind::Fixed(n) => Ok(plan::Dim::Fixed(num(*n, &what)?)),
                proto::dim::Kind::Batch(_) => Ok(plan::Dim::Batch),
            })
            .collect::<Msg<Vec<_>>>()?;
        let kind = match need(b.kind.as_ref(), &format!("{what}: its kind"))? {
            proto::buffer::Kind::Input(k) => match num(*k, &what)? {
                k if k < h.inputs.len() => BufferKind::Input(k),
                k => return Err(format!("{what}: input {k} does not exist")),
            },
            proto::buffer::Kind::ActivationSlot(s) => match num(*s, &what)? {
                s if s < slots => BufferKind::Activation { slot: s },
                s => return Err(format!("{what}: slot {s} is out of range ({slots} slots)")),
            },
            proto::buffer::Kind::Constant(c) => BufferKind::Const(r.range(Some(c), &what)?),
            proto::buffer::Kind::View(v) => BufferKind::View {
                base: r.buffer_index(v.base, &format!("{what}: its base"))?,
                offset: num(v.offset, &format!("{what}: its offset"))?,
            },
        };
        buffers.push(Buffer { shape, kind });
    }
    let ios = |v: &[proto::Io], what: &str| -> Msg<Vec<Io>> {
        v.iter()
            .map(|io| {
                let buffer = r.buffer_index(io.buffer, &format!("{what} '{}'", io.name))?;
                Ok(Io { name: io.name.clone(), buffer })
            })
            .collect()
    };
    let inputs = ios(&h.inputs, "input")?;
    let outputs = ios(&h.outputs, "output")?;
    let steps = h
        .steps
        .iter()
        .map(|s| {
            let what = format!("step '{}'", s.name);
            Ok(Step {
                name: s.name.clone(),
                op: r.op(s.op.as_ref(), &what)?,
                inputs: s.inputs.iter().map(|&b| r.buffer_index(b, &what)).collect::<Msg<_>>()?,
                output: r.buffer_index(s.output, &what)?,
            })
        })
        .collect::<Msg<Vec<_>>>()?;
    let meta = Metadata { producer: h.producer.clone(), source: h.source.clone(), report: h.report.clone() };
    Ok((Plan { slots, buffers, inputs, outputs, steps, weights }, meta))
}

// ---------------------------------------------------------------------------------------------------
// Bytes

fn align_up(n: u64) -> Option<u64> {
    n.checked_next_multiple_of(WEIGHTS_ALIGN as u64)
}

/// The weights as little-endian bytes: the array itself on little-endian targets.
fn weight_bytes(w: &[f32]) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(w))
    } else {
        Cow::Owned(w.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// The prelude and the encoded header followed by its padding; the weights follow.
fn encode(plan: &Plan, meta: &Metadata, weights: &[u8]) -> ([u8; PRELUDE_LEN], Vec<u8>) {
    let mut header = header_of(plan, meta).encode_to_vec();
    let header_len = header.len() as u64;
    let weights_offset = align_up(PRELUDE_LEN as u64 + header_len).expect("a header of less than 2^63 bytes");
    header.resize((weights_offset - PRELUDE_LEN as u64) as usize, 0);
    let mut p = [0u8; PRELUDE_LEN];
    p[0..8].copy_from_slice(&MAGIC);
    p[8..12].copy_from_slice(&VERSION.to_le_bytes());
    p[12..16].copy_from_slice(&0u32.to_le_bytes());
    p[16..24].copy_from_slice(&header_len.to_le_bytes());
    p[24..32].copy_from_slice(&weights_offset.to_le_bytes());
    p[32..40].copy_from_slice(&(weights.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&p[0..40]);
    crc.update(&p[44..48]);
    crc.update(&header);
    crc.update(weights);
    p[40..44].copy_from_slice(&crc.finalize().to_le_bytes());
    (p, header)
}

/// Writes `plan` and `meta` in the `.resin` format.
pub fn write(plan: &Plan, meta: &Metadata, out: &mut impl Write) -> std::io::Result<()> {
    let weights = weight_bytes(&plan.weights);
    let (prelude, header) = encode(plan, meta, &weights);
    out.write_all(&prelude)?;
    out.write_all(&header)?;
    out.write_all(&weights)
}

/// `plan` and `meta` as the bytes of a `.resin` file.
pub fn to_bytes(plan: &Plan, meta: &Metadata) -> Vec<u8> {
    let weights = weight_bytes(&plan.weights);
    let (prelude, header) = encode(plan, meta, &weights);
    let mut out = Vec::with_capacity(prelude.len() + header.len() + weights.len());
    out.extend_from_slice(&prelude);
    out.extend_from_slice(&header);
    out.extend_from_slice(&weights);
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn truncated(have: u64, need: u64) -> String {
    format!("the file is truncated: it has {have} bytes of {need} ({} bytes missing)", need - have)
}

/// Checks the prelude, the sizes and the checksum of a whole file; returns where the header and the
/// weights are.
fn sections(b: &[u8]) -> Msg<(Range<usize>, Range<usize>)> {
    let len = b.len() as u64;
    let n = b.len().min(MAGIC.len());
    if b[..n] != MAGIC[..n] || b.is_empty() {
        return Err("not a resin file (its first bytes are not the resin magic number)".into());
    }
    if b.len() < 12 {
        return Err(truncated(len, PRELUDE_LEN as u64));
    }
    match u32_at(b, 8) {
        VERSION => {}
        0 => return Err("format version 0 is not valid".into()),
        v if v > VERSION => return Err(format!("format version {v} is newer than this resin ({VERSION})")),
        v => {
            return Err(format!(
                "format version {v} is not supported by this resin ({VERSION}): compile the ONNX model again"
            ))
        }
    }
    if b.len() < PRELUDE_LEN {
        return Err(truncated(len, PRELUDE_LEN as u64));
    }
    let flags = u32_at(b, 12);
    if flags != 0 {
        return Err(format!("unknown flags {flags:#x} (this resin knows none)"));
    }
    if u32_at(b, 44) != 0 {
        return Err("the reserved bytes 44..48 are not zero".into());
    }
    let (header_len, weights_offset, weights_len) = (u64_at(b, 16), u64_at(b, 24), u64_at(b, 32));
    let header_end = header_len.checked_add(PRELUDE_LEN as u64);
    let expected_offset = header_end.and_then(align_up);
    if expected_offset != Some(weights_offset) {
        return Err(format!("the weights offset {weights_offset} does not follow a header of {header_len} bytes"));
    }
    if weights_len % 4 != 0 {
        return Err(format!("the weight section has {weights_len} bytes, not a whole number of floats"));
    }
    let Some(end) = weights_offset.checked_add(weights_len) else {
        return Err(format!("the weight section of {weights_len} bytes at {weights_offset} is too large"));
    };
    if len < end {
        return Err(truncated(len, end));
    }
    if len > end {
        return Err(format!("{} unexpected bytes after the weights", len - end));
    }
    // Every offset is now at most the slice's length: the casts to usize are lossless.
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[0..40]);
    crc.update(&b[44..]);
    if crc.finalize() != u32_at(b, 40) {
        return Err("checksum mismatch: the file is corrupted".into());
    }
    let (header_end, weights_offset) = (header_end.unwrap_or(0) as usize, weights_offset as usize);
    Ok((PRELUDE_LEN..header_end, weights_offset..b.len()))
}

/// Checks `bytes` and decodes their header into a plan (unchecked) whose weights `weights` makes from
/// the byte range of the weight section.
fn decode(bytes: &[u8], weights: impl FnOnce(Range<usize>) -> Msg<Weights>) -> Result<(Plan, Metadata)> {
    let (header, w) = sections(bytes).map_err(Error::Format)?;
    let header = proto::Header::decode(&bytes[header])
        .map_err(|e| Error::Format(format!("invalid header: {}", e.to_string().replace('\n', " "))))?;
    let weights = weights(w).map_err(Error::Format)?;
    plan_of(&header, weights)
}

/// The plan and metadata in the bytes of a `.resin` file, after checking them. The weights are copied
/// (the bytes are borrowed, and need not be aligned); [`Model::load`] maps a file without copying. The
/// plan itself is checked by [`Model::new`] (or use [`Model::from_bytes`]).
pub fn from_bytes(bytes: &[u8]) -> Result<(Plan, Metadata)> {
    decode(bytes, |r| {
        let v: Vec<f32> = bytes[r].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Weights::from(v))
    })
}

// ---------------------------------------------------------------------------------------------------
// Files

/// Saves `plan` and `meta` to `path` atomically: a temporary file in the same directory, written,
/// flushed to disk, then renamed over `path`. On error the temporary file is removed and `path` is
/// left as it was.
pub fn save(plan: &Plan, meta: &Metadata, path: &Path) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let fail = |msg: String| Error::File { path: path.display().to_string(), msg };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(fail("cannot save: not a file name".into()));
    };
    if !dir.is_dir() {
        return Err(Error::File {
            path: dir.display().to_string(),
            msg: format!("cannot save {}: the directory does not exist", name.to_string_lossy()),
        });
    }
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    let written = (|| -> std::io::Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        write(plan, meta, &mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(format!("cannot save: {e}")));
    }
    // Make the rename itself durable; a directory that cannot be synced is no reason to fail.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Model {
    /// Loads a `.resin` file: memory-maps it, checks it (see the [module documentation](crate::format))
    /// and checks its plan. The weights stay in the map: nothing is copied.
    pub fn load(path: &Path) -> Result<Model> {
        let fail = |msg: String| Error::File { path: path.display().to_string(), msg };
        let in_file = |e: Error| match e {
            Error::Format(msg) => fail(msg),
            e => fail(e.to_string()),
        };
        let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let len = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?.len();
        if len < PRELUDE_LEN as u64 {
            // Too short to map usefully (and an empty file cannot be mapped): the checks say why.
            let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
            return Model::from_bytes(&bytes).map_err(in_file);
        }
        // SAFETY: the map is only sound while no one modifies or truncates the file; the plan reads
        // its weights from it for the model's lifetime. resin never modifies a `.resin` file in place
        // (`save` renames a new file over the old one, which leaves existing maps intact), and a
        // loaded file must not be modified by anything else, as for any memory-mapped file.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| fail(format!("cannot map: {e}")))?;
        let map = Arc::new(map);
        let (plan, meta) = decode(&map, |r| Weights::shared(map.clone(), r.start, r.len() / 4)).map_err(in_file)?;
        Model::with_metadata(plan, meta).map_err(in_file)
    }

    /// The model in the bytes of a `.resin` file, checked. Copies the weights.
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        let (plan, meta) = from_bytes(bytes)?;
        Model::with_metadata(plan, meta)
    }
}

#[cfg(test)]
mod tests;
