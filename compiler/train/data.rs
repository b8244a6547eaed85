//! Training data: the bundled UCI digits, any `.npy` pair of inputs and labels, a seeded shuffle and a
//! train/validation split.
//!
//! This module owns reading and splitting data; it knows nothing about networks.

use anyhow::{anyhow, bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// A small deterministic generator (SplitMix64): shuffles, splits and initializations follow the seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Samples with class labels: `x` is `len × features` row-major; `shape` is one sample's shape.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub y: Vec<usize>,
    pub shape: Vec<usize>,
    pub classes: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    pub fn features(&self) -> usize {
        self.shape.iter().product()
    }

    /// The UCI digits as scikit-learn bundles them (`data/digits/digits.csv.gz`): 1797 images of 8x8
    /// pixel counts 0..16, scaled to [0, 1]; `shape` is `[64]` (or `[1, 8, 8]` after [`Dataset::reshape`]).
    pub fn digits(path: &Path) -> Result<Dataset> {
        let raw = std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .map_err(|e| anyhow!("'{}' is not a gzip-compressed CSV: {e}", path.display()))?;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let vals: Vec<f32> = line
                .split(',')
                .map(|s| s.trim().parse::<f32>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| anyhow!("'{}' line {}: {e}", path.display(), i + 1))?;
            if vals.len() != 65 {
                bail!(
                    "'{}' line {}: expected 65 values (64 pixels and a label), got {}",
                    path.display(),
                    i + 1,
                    vals.len()
                );
            }
            x.extend(vals[..64].iter().map(|v| v / 16.0));
            y.push(vals[64] as usize);
        }
        Ok(Dataset { x, y, shape: vec![64], classes: 10 })
    }

    /// The bundled digits, found from the crate root (or `RESIN_DIGITS`).
    pub fn bundled_digits() -> Result<Dataset> {
        let p = std::env::var_os("RESIN_DIGITS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits/digits.csv.gz"));
        Self::digits(&p)
    }

    /// Inputs from one `.npy` (float32, first axis = samples) and integer labels from another (int64,
    /// int32 or integral float32; one per sample).
    pub fn from_npy(x_path: &Path, y_path: &Path) -> Result<Dataset> {
        let xa = resin_runtime::npy::read(x_path)?;
        let x = xa.f32_data.ok_or_else(|| {
            anyhow!(
                "'{}': expected float32 inputs, got {}",
                x_path.display(),
                resin_runtime::npy::dtype_name(&xa.descr)
            )
        })?;
        if xa.shape.is_empty() {
            bail!("'{}': inputs need a first axis of samples", x_path.display());
        }
        let bytes = std::fs::read(y_path).with_context(|| format!("cannot read '{}'", y_path.display()))?;
        let y = read_labels(&bytes, y_path)?;
        if y.len() != xa.shape[0] {
            bail!("{} labels in '{}' for {} samples in '{}'", y.len(), y_path.display(), xa.shape[0], x_path.display());
        }
        let classes = y.iter().max().map_or(0, |m| m + 1);
        Ok(Dataset { x, y, shape: xa.shape[1..].to_vec(), classes })
    }

    /// The same samples with another per-sample shape of the same size (e.g. `[1, 8, 8]` for a conv net).
    pub fn reshape(mut self, shape: Vec<usize>) -> Result<Dataset> {
        if shape.iter().product::<usize>() != self.features() {
            bail!("cannot view samples of {:?} as {:?}", self.shape, shape);
        }
        self.shape = shape;
        Ok(self)
    }

    /// The samples at `idx`, in that order.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let f = self.features();
        let mut x = Vec::with_capacity(idx.len() * f);
        for &i in idx {
            x.extend_from_slice(&self.x[i * f..(i + 1) * f]);
        }
        Dataset { x, y: idx.iter().map(|&i| self.y[i]).collect(), shape: self.shape.clone(), classes: self.classes }
    }

    /// A seeded shuffle split into (train, validation) with `val_fraction` of the samples held out.
    pub fn split(&self, val_fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&val_fraction) {
            bail!("validation fraction must be in [0, 1), got {val_fraction}");
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        Rng::new(seed).shuffle(&mut idx);
        let nval = (self.len() as f32 * val_fraction).round() as usize;
        Ok((self.subset(&idx[nval..]), self.subset(&idx[..nval])))
    }
}

/// Labels from `.npy` bytes: int64, int32 or float32 holding whole numbers ≥ 0.
fn read_labels(bytes: &[u8], path: &Path) -> Result<Vec<usize>> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        bail!("'{}' is not a .npy file", path.display());
    }
    let (hlen, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        if bytes.len() < 12 {
            bail!("'{}' is truncated", path.display());
        }
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(
        bytes.get(start..start + hlen).ok_or_else(|| anyhow!("'{}' is truncated", path.display()))?,
    )
    .map_err(|_| anyhow!("'{}' has a non-text header", path.display()))?;
    if header.contains("'fortran_order': True") {
        bail!("'{}': Fortran-ordered arrays are not supported", path.display());
    }
    let data = &bytes[start + hlen..];
    let labels: Vec<f64> = if header.contains("'<i8'") {
        data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    } else if header.contains("'<i4'") {
        data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    } else if header.contains("'<f4'") {
        data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect()
    } else {
        bail!("'{}': labels must be int64, int32 or float32", path.display());
    };
    labels
        .into_iter()
        .map(|v| {
            if v >= 0.0 && v.fract() == 0.0 {
                Ok(v as usize)
            } else {
                Err(anyhow!("'{}': label {v} is not a class index", path.display()))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_load_and_split_deterministically() {
        let d = Dataset::bundled_digits().unwrap();
        assert_eq!((d.len(), d.features(), d.classes), (1797, 64, 10));
        assert!(d.x.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let (a, b) = d.split(0.2, 7).unwrap();
        let (a2, _) = d.split(0.2, 7).unwrap();
        assert_eq!((a.len(), b.len()), (1438, 359));
        assert_eq!(a.y, a2.y);
    }
}
