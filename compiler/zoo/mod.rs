//! The model zoo: standard skip-connection architectures built with the IR builder
//! ([`resin_ir::builder`]), with seeded random weights.
//!
//! Each network is the graph the ONNX importer makes of PyTorch's export of the same architecture (the
//! same ops with the same attributes, weight shapes and tensor types; torchvision's for the ImageNet
//! models), so it exports, compiles, visualizes and trains like an imported model. `tests/zoo.rs` checks
//! each against such exports: op histogram, parameter count, MACs and skip kinds.
//!
//! | family | names | what `width` means | default input | skips |
//! |---|---|---|---|---|
//! | MLPs ([`mlp`]) | `plain-mlp`, `res-mlp`, `highway-mlp`, `gated-highway-mlp`, `dense-mlp` | features per layer (128) | `[128]` | none, identity, weighted, gated, dense |
//! | CIFAR ResNets ([`resnet`]) | `resnet20`, `resnet56`, `plain20`, `plain56` | channels of the first stage (16) | `[3, 32, 32]` | identity + 1x1 projections |
//! | ImageNet ResNets ([`resnet`]) | `resnet18`, `resnet34`, `resnet50`, `resnet101`, `resnet152`, `plain18`, `plain34` | channels of the first stage (64) | `[3, 224, 224]` | identity + 1x1 projections |
//! | DenseNet ([`densenet`]) | `densenet121` | growth rate (32) | `[3, 224, 224]` | dense |
//!
//! `depth` applies to the MLPs only (the number of hidden layers, 8 by default); the convolutional
//! networks' depth is in their names.

pub mod densenet;
pub mod mlp;
pub mod resnet;

use anyhow::{bail, Result};
use resin_ir::builder::Builder;
use resin_ir::{Dim, Graph};

/// How to build a zoo network. `None` fields take the architecture's default (see the module doc).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZooOptions {
    /// A fixed batch size, or `None` for a symbolic `batch` axis (what PyTorch exports with a dynamic axis).
    pub batch: Option<usize>,
    /// Hidden layers of an MLP.
    pub depth: Option<usize>,
    /// Features per MLP layer, channels of a ResNet's first stage, or a DenseNet's growth rate.
    pub width: Option<usize>,
    /// The shape of one sample: `[features]` for an MLP, `[channels, height, width]` otherwise.
    pub input: Option<Vec<usize>>,
    /// Outputs of the classifier.
    pub classes: Option<usize>,
    /// Seed of the weights.
    pub seed: u64,
    /// Give BatchNorms random statistics instead of the identity, so that folding them is not a no-op.
    pub random_batchnorm: bool,
}

/// A zoo architecture: its name, family and a one-line description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arch {
    pub name: &'static str,
    pub family: Family,
    pub about: &'static str,
}

/// What a zoo name builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Mlp(mlp::MlpKind),
    /// CIFAR-style ResNet (He et al. 2016, section 4.2): 6n + 2 layers; `skips: false` is its plain twin.
    Cifar {
        n: usize,
        skips: bool,
    },
    /// torchvision's ResNet with the given blocks per stage; `skips: false` drops every shortcut.
    ImageNet {
        bottleneck: bool,
        layers: [usize; 4],
        skips: bool,
    },
    /// torchvision's DenseNet-121.
    DenseNet121,
}

use mlp::MlpKind;

/// Every architecture, in the order `resin zoo --list` prints them.
pub const ARCHS: &[Arch] = &[
    Arch { name: "plain-mlp", family: Family::Mlp(MlpKind::Plain), about: "a_l = relu(W_l a_{l-1} + b_l): no skips" },
    Arch {
        name: "res-mlp",
        family: Family::Mlp(MlpKind::Res),
        about: "a_l = relu(W_l a_{l-1} + b_l + a_{l-2}): identity skips",
    },
    Arch {
        name: "highway-mlp",
        family: Family::Mlp(MlpKind::Highway),
        about: "a_l = relu(W_l a_{l-1} + b_l + V_l a_{l-2}): weighted skips S(a) = V a",
    },
    Arch {
        name: "gated-highway-mlp",
        family: Family::Mlp(MlpKind::Gated),
        about: "x <- H(x)·T(x) + x·(1 - T(x)), T = sigmoid(W_t x + b_t): gated skips",
    },
    Arch {
        name: "dense-mlp",
        family: Family::Mlp(MlpKind::Dense),
        about: "a_l = relu(W_l [a_0; …; a_{l-1}] + b_l): every earlier layer feeds every later one",
    },
    Arch {
        name: "resnet20",
        family: Family::Cifar { n: 3, skips: true },
        about: "CIFAR ResNet-20 (3 stages of 3 blocks)",
    },
    Arch {
        name: "resnet56",
        family: Family::Cifar { n: 9, skips: true },
        about: "CIFAR ResNet-56 (3 stages of 9 blocks)",
    },
    Arch { name: "plain20", family: Family::Cifar { n: 3, skips: false }, about: "CIFAR ResNet-20 without shortcuts" },
    Arch { name: "plain56", family: Family::Cifar { n: 9, skips: false }, about: "CIFAR ResNet-56 without shortcuts" },
    Arch {
        name: "resnet18",
        family: Family::ImageNet { bottleneck: false, layers: [2, 2, 2, 2], skips: true },
        about: "torchvision ResNet-18",
    },
    Arch {
        name: "resnet34",
        family: Family::ImageNet { bottleneck: false, layers: [3, 4, 6, 3], skips: true },
        about: "torchvision ResNet-34",
    },
    Arch {
        name: "resnet50",
        family: Family::ImageNet { bottleneck: true, layers: [3, 4, 6, 3], skips: true },
        about: "torchvision ResNet-50 (bottleneck blocks, stride on the 3x3)",
    },
    Arch {
        name: "resnet101",
        family: Family::ImageNet { bottleneck: true, layers: [3, 4, 23, 3], skips: true },
        about: "torchvision ResNet-101",
    },
    Arch {
        name: "resnet152",
        family: Family::ImageNet { bottleneck: true, layers: [3, 8, 36, 3], skips: true },
        about: "torchvision ResNet-152",
    },
    Arch {
        name: "plain18",
        family: Family::ImageNet { bottleneck: false, layers: [2, 2, 2, 2], skips: false },
        about: "ResNet-18 without shortcuts (He et al.'s plain-18)",
    },
    Arch {
        name: "plain34",
        family: Family::ImageNet { bottleneck: false, layers: [3, 4, 6, 3], skips: false },
        about: "ResNet-34 without shortcuts (He et al.'s plain-34)",
    },
    Arch { name: "densenet121", family: Family::DenseNet121, about: "torchvision DenseNet-121 (4 dense blocks)" },
];

/// The zoo's names, in [`ARCHS`] order.
pub fn names() -> Vec<&'static str> {
    ARCHS.iter().map(|a| a.name).collect()
}

/// The architecture called `name`, or an error listing the valid names.
pub fn arch(name: &str) -> Result<&'static Arch> {
    ARCHS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| anyhow::anyhow!("unknown zoo model '{name}' (models: {})", names().join(", ")))
}

/// Builds the zoo network `name` (see the module doc). The graph is validated and its skips recognized.
pub fn build(name: &str, opts: &ZooOptions) -> Result<Graph> {
    let arch = arch(name)?;
    if opts.depth.is_some() && !matches!(arch.family, Family::Mlp(_)) {
        bail!("{name}: --depth applies to the MLPs only ({name}'s depth is in its name)");
    }
    for (what, v) in [("batch", opts.batch), ("depth", opts.depth), ("width", opts.width), ("classes", opts.classes)] {
        if v == Some(0) {
            bail!("{name}: {what} must be at least 1");
        }
    }
    if let Some(shape) = &opts.input {
        let want = if matches!(arch.family, Family::Mlp(_)) { 1 } else { 3 };
        if shape.len() != want || shape.contains(&0) {
            let form = if want == 1 { "[features]" } else { "[channels, height, width]" };
            bail!("{name}: the input of one sample must be {form} with positive sizes, got {shape:?}");
        }
    }
    let g = match arch.family {
        Family::Mlp(kind) => mlp::build(kind, opts),
        Family::Cifar { n, skips } => resnet::cifar(n, skips, opts),
        Family::ImageNet { bottleneck, layers, skips } => resnet::imagenet(bottleneck, layers, skips, opts),
        Family::DenseNet121 => densenet::build(&densenet::DenseNetConfig::DENSENET121, opts),
    };
    let input = opts.input.as_ref().map(|s| format!(" with input {s:?}")).unwrap_or_default();
    g.map_err(|e| anyhow::anyhow!("{name}{input}: {e}"))
}

/// A builder seeded from `opts`, with its BatchNorm policy.
fn builder(opts: &ZooOptions) -> Builder {
    let mut b = Builder::new(opts.seed);
    b.randomize_batchnorm(opts.random_batchnorm);
    b
}

/// The batch axis: fixed, or the symbol `batch`.
fn batch_dim(opts: &ZooOptions) -> Dim {
    match opts.batch {
        Some(n) => Dim::Fixed(n),
        None => Dim::Sym("batch".into()),
    }
}

/// `[batch, C, H, W]` from the options or the default per-sample shape.
fn image_input(opts: &ZooOptions, default: [usize; 3]) -> Vec<Dim> {
    let s = opts.input.clone().unwrap_or(default.to_vec());
    std::iter::once(batch_dim(opts)).chain(s.into_iter().map(Dim::Fixed)).collect()
}
