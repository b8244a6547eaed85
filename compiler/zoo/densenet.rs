//! DenseNet, exactly torchvision's `DenseNet` (Huang et al. 2017, the BC variant).
//!
//! A 7x7/2 convolution to `init_features` channels, BatchNorm, ReLU and a 3x3/2 max pool; then dense
//! blocks, each layer reading the Concat of every earlier feature map in its block (the first layer a
//! single-input Concat, as PyTorch exports `torch.cat([x])`) and adding `growth` channels through
//! BN-ReLU-conv1x1 (to `bn_size`·`growth`)-BN-ReLU-conv3x3; each block ends with the Concat of all its
//! features, and a transition (BN-ReLU-conv1x1 halving the channels-2x2 average pool) joins two blocks.
//! Then BatchNorm (`features.norm5`), ReLU, global average pooling, flatten and the Linear `classifier`.
//! Node names are PyTorch's module paths (`features.denseblock2.denselayer3.conv1`).

use super::{builder, image_input, ZooOptions};
use anyhow::Result;
use resin_ir::builder::{Conv2d, Pool2d};
use resin_ir::Graph;

/// A DenseNet's hyper-parameters (torchvision's names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenseNetConfig {
    /// Channels each layer adds (`--width` overrides it).
    pub growth: usize,
    /// Layers per dense block.
    pub blocks: &'static [usize],
    /// Channels of the stem convolution.
    pub init_features: usize,
    /// The bottleneck's width in multiples of `growth`.
    pub bn_size: usize,
}

impl DenseNetConfig {
    /// torchvision's `densenet121`.
    pub const DENSENET121: DenseNetConfig =
        DenseNetConfig { growth: 32, blocks: &[6, 12, 24, 16], init_features: 64, bn_size: 4 };
}

/// Builds a DenseNet (1000 classes and a 3x224x224 input by default).
pub fn build(cfg: &DenseNetConfig, opts: &ZooOptions) -> Result<Graph> {
    let growth = opts.width.unwrap_or(cfg.growth);
    let mut b = builder(opts);
    let x = b.input("input", image_input(opts, [3, 224, 224]));
    let x = b.conv("features.conv0", x, Conv2d::new(cfg.init_features, 7).stride(2).pad(3))?;
    let x = b.batchnorm("features.norm0", x)?;
    let x = b.relu("features.relu0", x)?;
    let mut x = b.max_pool("features.pool0", x, Pool2d::new(3).stride(2).pad(1))?;
    for (bi, &layers) in cfg.blocks.iter().enumerate() {
        let block = format!("features.denseblock{}", bi + 1);
        let mut feats = vec![x];
        for li in 1..=layers {
            let p = format!("{block}.denselayer{li}");
            let h = b.concat(&format!("{p}.concat"), &feats, 1)?;
            let h = b.batchnorm(&format!("{p}.norm1"), h)?;
            let h = b.relu(&format!("{p}.relu1"), h)?;
            let h = b.conv(&format!("{p}.conv1"), h, Conv2d::new(cfg.bn_size * growth, 1))?;
            let h = b.batchnorm(&format!("{p}.norm2"), h)?;
            let h = b.relu(&format!("{p}.relu2"), h)?;
            feats.push(b.conv(&format!("{p}.conv2"), h, Conv2d::new(growth, 3).pad(1))?);
        }
        x = b.concat(&format!("{block}.concat"), &feats, 1)?;
        if bi + 1 < cfg.blocks.len() {
            let t = format!("features.transition{}", bi + 1);
            let c = b.dim(x, 1)?;
            let h = b.batchnorm(&format!("{t}.norm"), x)?;
            let h = b.relu(&format!("{t}.relu"), h)?;
            let h = b.conv(&format!("{t}.conv"), h, Conv2d::new(c / 2, 1))?;
            x = b.avg_pool(&format!("{t}.pool"), h, Pool2d::new(2))?;
        }
    }
    let x = b.batchnorm("features.norm5", x)?;
    let x = b.relu("relu", x)?;
    let x = b.global_avg_pool("avgpool", x)?;
    let x = b.flatten("flatten", x, 1)?;
    let y = b.linear("classifier", x, opts.classes.unwrap_or(1000), true)?;
    b.output("output", y);
    Ok(b.finish()?.0)
}
