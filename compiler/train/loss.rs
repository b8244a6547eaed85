//! Losses on the network's output `z` (`batch × classes`, logits): their value and ∂L/∂z.
//!
//! This module owns the loss arithmetic only; the plan runs the network and the trainer calls these.

use anyhow::{bail, Result};

/// A loss over a batch (both are means, as PyTorch's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// `L = −(1/B) Σ_b log softmax(z_b)[y_b]`;  ∂L/∂z_b = (softmax(z_b) − onehot(y_b)) / B.
    SoftmaxCrossEntropy,
    /// L = (1/(B·C)) Σ (z − t)²;  ∂L/∂z = 2(z − t)/(B·C). Targets are one-hot labels, or given values.
    MeanSquaredError,
}

impl std::str::FromStr for Loss {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ce" | "cross-entropy" | "softmax-cross-entropy" => Ok(Loss::SoftmaxCrossEntropy),
            "mse" => Ok(Loss::MeanSquaredError),
            _ => bail!("unknown loss '{s}' (ce, mse)"),
        }
    }
}

/// What a batch is trained towards: class labels, or target values (`batch × classes`, for MSE).
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    Labels(&'a [usize]),
    Values(&'a [f32]),
}

/// The loss of `z` (`rows × cols`) and its gradient, written into `dz`. Sums are in f64.
pub fn loss_and_grad(loss: Loss, z: &[f32], cols: usize, targets: Targets, dz: &mut [f32]) -> Result<f64> {
    let rows = z.len() / cols.max(1);
    if rows == 0 || dz.len() != z.len() {
        bail!("empty batch or mismatched gradient buffer");
    }
    match targets {
        Targets::Labels(l) if l.len() != rows => bail!("{} labels for a batch of {rows}", l.len()),
        Targets::Labels(l) => {
            if let Some(&bad) = l.iter().find(|&&y| y >= cols) {
                bail!("label {bad} is out of range for {cols} outputs");
            }
        }
        Targets::Values(v) if v.len() != z.len() => bail!("{} target values for {} outputs", v.len(), z.len()),
        Targets::Values(_) => {}
    }
    let mut total = 0.0f64;
    match loss {
        Loss::SoftmaxCrossEntropy => {
            let Targets::Labels(labels) = targets else { bail!("cross-entropy needs class labels") };
            for r in 0..rows {
                let zr = &z[r * cols..(r + 1) * cols];
                let m = zr.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                let s: f64 = zr.iter().map(|&v| (v as f64 - m).exp()).sum();
                let lse = m + s.ln();
                total += lse - zr[labels[r]] as f64;
                for (c, d) in dz[r * cols..(r + 1) * cols].iter_mut().enumerate() {
                    let p = (zr[c] as f64 - lse).exp();
                    let y = if c == labels[r] { 1.0 } else { 0.0 };
                    *d = ((p - y) / rows as f64) as f32;
                }
            }
            Ok(total / rows as f64)
        }
        Loss::MeanSquaredError => {
            let n = z.len() as f64;
            for (i, (&zi, d)) in z.iter().zip(dz.iter_mut()).enumerate() {
                let t = match targets {
                    Targets::Labels(l) => (l[i / cols] == i % cols) as u8 as f32,
                    Targets::Values(v) => v[i],
                };
                let e = (zi - t) as f64;
                total += e * e;
                *d = (2.0 * e / n) as f32;
            }
            Ok(total / n)
        }
    }
}

/// Index of the largest value of each row.
pub fn argmax_rows(z: &[f32], cols: usize) -> Vec<usize> {
    z.chunks(cols.max(1))
        .map(|r| r.iter().enumerate().fold(0, |best, (i, &v)| if v > r[best] { i } else { best }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes() {
        let z = vec![0.0; 8];
        let mut dz = vec![0.0; 8];
        let l = loss_and_grad(Loss::SoftmaxCrossEntropy, &z, 4, Targets::Labels(&[1, 3]), &mut dz).unwrap();
        assert!((l - 4f64.ln()).abs() < 1e-9);
        assert!((dz[1] - (0.25 - 1.0) / 2.0).abs() < 1e-7 && (dz[0] - 0.125).abs() < 1e-7);
    }

    #[test]
    fn bad_labels_are_errors_not_panics() {
        let mut dz = vec![0.0; 4];
        let e = loss_and_grad(Loss::SoftmaxCrossEntropy, &[0.0; 4], 2, Targets::Labels(&[0, 5]), &mut dz);
        assert!(e.unwrap_err().to_string().contains("label 5"));
    }
}
