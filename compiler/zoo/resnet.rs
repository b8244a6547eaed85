//! Residual networks and their plain twins.
//!
//! - ImageNet ([`imagenet`]), exactly torchvision's `ResNet`: a 7x7/2 convolution, BatchNorm, ReLU and a
//!   3x3/2 max pool; four stages of `width`·(1, 2, 4, 8) channels (`width` 64 by default), the last three
//!   starting with stride 2; global average pooling, flatten and a Linear classifier (1000 classes by
//!   default). A basic block (ResNet-18/34) is conv3x3-BN-ReLU-conv3x3-BN, added to the shortcut, then
//!   ReLU; a bottleneck (ResNet-50/101/152) is conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN with 4x expansion
//!   and the stride on the 3x3 (torchvision's "v1.5"). The shortcut is the identity, or a 1x1 convolution
//!   and BatchNorm (`downsample`) where the shape changes. A plain network has the same layers without the
//!   addition and without `downsample` (He et al.'s plain-18/34).
//! - CIFAR ([`cifar`]), He et al. 2016 section 4.2 with projection shortcuts (as
//!   `tests/models/make_models.py`'s ResNet-20): a 3x3 convolution to `width` channels (16 by default),
//!   BatchNorm and ReLU; three stages of n basic blocks with `width`·(1, 2, 4) channels, the last two
//!   starting with stride 2; global average pooling and a Linear to 10 classes by default. 6n + 2 layers:
//!   n = 3 is ResNet-20, n = 9 ResNet-56. The input is 3x32x32 by default, and anything from 1x8x8 up works
//!   (1x8x8 for the UCI digits).
//!
//! Conv and BatchNorm weights follow the builder's initialization (with random BatchNorm statistics, each
//! residual branch's last BatchNorm is damped: see `damping`); node names are PyTorch's module paths
//! (`layer2.0.downsample.0`).

use super::{builder, image_input, ZooOptions};
use anyhow::Result;
use resin_ir::builder::{BuildError, Builder, Conv2d, Pool2d};
use resin_ir::{Graph, NodeId, Op, TensorData};

/// conv → BatchNorm (→ ReLU), named `<prefix>conv<i>`, `<prefix>bn<i>`, `<prefix>relu<i>`.
fn conv_bn(b: &mut Builder, prefix: &str, i: usize, x: NodeId, c: Conv2d, relu: bool) -> Result<NodeId, BuildError> {
    let y = b.conv(&format!("{prefix}conv{i}"), x, c)?;
    let y = b.batchnorm(&format!("{prefix}bn{i}"), y)?;
    if relu {
        b.relu(&format!("{prefix}relu{i}"), y)
    } else {
        Ok(y)
    }
}

/// The block's last step: relu(main + shortcut), or relu(main) for a plain network.
fn join(b: &mut Builder, prefix: &str, main: NodeId, shortcut: Option<NodeId>) -> Result<NodeId, BuildError> {
    let y = match shortcut {
        Some(s) => b.add(&format!("{prefix}add"), main, s)?,
        None => main,
    };
    b.relu(&format!("{prefix}relu"), y)
}

/// The shortcut of a block: the input itself, or `<prefix><name>.0` (1x1 conv with `stride`) and
/// `<prefix><name>.1` (BatchNorm) when the shape changes; `None` for a plain network.
fn shortcut(
    b: &mut Builder,
    prefix: &str,
    name: &str,
    x: NodeId,
    out: usize,
    stride: usize,
    skips: bool,
) -> Result<Option<NodeId>, BuildError> {
    if !skips {
        return Ok(None);
    }
    if stride == 1 && b.dim(x, 1)? == out {
        return Ok(Some(x));
    }
    let s = b.conv(&format!("{prefix}{name}.0"), x, Conv2d::new(out, 1).stride(stride))?;
    Ok(Some(b.batchnorm(&format!("{prefix}{name}.1"), s)?))
}

/// What every block of a network shares.
struct Blocks<'a> {
    /// Residual (true) or plain (false).
    skips: bool,
    /// The module name of a projection shortcut: `downsample` (torchvision) or `shortcut` (CIFAR).
    shortcut: &'a str,
    /// A factor on the scale of each residual branch's last BatchNorm (see `damping`).
    damp: f32,
}

/// With random BatchNorm statistics nothing normalizes the residual stream, and each block about
/// doubles its variance (2^50 for ResNet-152), which makes the network's output a cancellation of huge
/// terms. Scaling each branch's last BatchNorm by 1/√blocks (Fixup's observation, Zhang et al. 2019) keeps
/// the stream's growth bounded by about e. Fresh BatchNorms (scale 1) are left as PyTorch makes them.
fn damping(opts: &ZooOptions, skips: bool, blocks: usize) -> f32 {
    if opts.random_batchnorm && skips {
        1.0 / (blocks as f32).sqrt()
    } else {
        1.0
    }
}

/// Multiplies the scale of BatchNorm `bn` by `f`.
fn damp(b: &mut Builder, bn: NodeId, f: f32) {
    if let Op::BatchNorm(n) = b.op_mut(bn) {
        if let TensorData::F32(v) = &mut n.scale.data {
            v.iter_mut().for_each(|x| *x *= f);
        }
    }
}

fn basic_block(
    b: &mut Builder,
    prefix: &str,
    x: NodeId,
    planes: usize,
    stride: usize,
    cfg: &Blocks,
) -> Result<NodeId, BuildError> {
    let sc = shortcut(b, prefix, cfg.shortcut, x, planes, stride, cfg.skips)?;
    let h = conv_bn(b, prefix, 1, x, Conv2d::new(planes, 3).stride(stride).pad(1), true)?;
    let h = conv_bn(b, prefix, 2, h, Conv2d::new(planes, 3).pad(1), false)?;
    damp(b, h, cfg.damp);
    join(b, prefix, h, sc)
}

fn bottleneck(
    b: &mut Builder,
    prefix: &str,
    x: NodeId,
    planes: usize,
    stride: usize,
    cfg: &Blocks,
) -> Result<NodeId, BuildError> {
    let out = planes * 4;
    let sc = shortcut(b, prefix, cfg.shortcut, x, out, stride, cfg.skips)?;
    let h = conv_bn(b, prefix, 1, x, Conv2d::new(planes, 1), true)?;
    let h = conv_bn(b, prefix, 2, h, Conv2d::new(planes, 3).stride(stride).pad(1), true)?;
    let h = conv_bn(b, prefix, 3, h, Conv2d::new(out, 1), false)?;
    damp(b, h, cfg.damp);
    join(b, prefix, h, sc)
}

/// Global average pooling, flatten and the Linear classifier `fc`; marks the output.
fn head(b: &mut Builder, x: NodeId, classes: usize) -> Result<(), BuildError> {
    let p = b.global_avg_pool("avgpool", x)?;
    let f = b.flatten("flatten", p, 1)?;
    let y = b.linear("fc", f, classes, true)?;
    b.output("output", y);
    Ok(())
}

/// torchvision's ResNet with `layers` blocks per stage (see the module doc).
pub fn imagenet(bottleneck_blocks: bool, layers: [usize; 4], skips: bool, opts: &ZooOptions) -> Result<Graph> {
    let width = opts.width.unwrap_or(64);
    let mut b = builder(opts);
    let x = b.input("input", image_input(opts, [3, 224, 224]));
    let x = b.conv("conv1", x, Conv2d::new(width, 7).stride(2).pad(3))?;
    let x = b.batchnorm("bn1", x)?;
    let x = b.relu("relu", x)?;
    let mut x = b.max_pool("maxpool", x, Pool2d::new(3).stride(2).pad(1))?;
    let cfg = Blocks { skips, shortcut: "downsample", damp: damping(opts, skips, layers.iter().sum()) };
    for (s, &blocks) in layers.iter().enumerate() {
        let planes = width << s;
        for i in 0..blocks {
            let stride = if s > 0 && i == 0 { 2 } else { 1 };
            let prefix = format!("layer{}.{i}.", s + 1);
            x = if bottleneck_blocks {
                bottleneck(&mut b, &prefix, x, planes, stride, &cfg)?
            } else {
                basic_block(&mut b, &prefix, x, planes, stride, &cfg)?
            };
        }
    }
    head(&mut b, x, opts.classes.unwrap_or(1000))?;
    Ok(b.finish()?.0)
}

/// CIFAR-style ResNet with `n` blocks per stage, 6n + 2 layers (see the module doc).
pub fn cifar(n: usize, skips: bool, opts: &ZooOptions) -> Result<Graph> {
    let width = opts.width.unwrap_or(16);
    let mut b = builder(opts);
    let x = b.input("input", image_input(opts, [3, 32, 32]));
    let x = b.conv("conv1", x, Conv2d::new(width, 3).pad(1))?;
    let x = b.batchnorm("bn1", x)?;
    let mut x = b.relu("relu", x)?;
    let cfg = Blocks { skips, shortcut: "shortcut", damp: damping(opts, skips, 3 * n) };
    for s in 0..3 {
        for i in 0..n {
            let stride = if s > 0 && i == 0 { 2 } else { 1 };
            let prefix = format!("layers.{}.", s * n + i);
            x = basic_block(&mut b, &prefix, x, width << s, stride, &cfg)?;
        }
    }
    head(&mut b, x, opts.classes.unwrap_or(10))?;
    Ok(b.finish()?.0)
}
