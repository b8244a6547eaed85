//! Dimensions: fixed sizes, or a named symbol (the batch axis of an exported model).

use std::fmt;

/// One dimension of a tensor's shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A size known at compile time.
    Fixed(usize),
    /// A size known only at run time, by name (ONNX `dim_param`, e.g. `batch`).
    Sym(String),
}

/// A shape: one [`Dim`] per axis.
pub type Shape = Vec<Dim>;

impl Dim {
    /// The fixed size, if known.
    pub fn fixed(&self) -> Option<usize> {
        match self {
            Dim::Fixed(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Fixed(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Sym(s) => write!(f, "{s}"),
        }
    }
}

/// Formats a shape as `[batch,3,224,224]`.
pub fn fmt_shape(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// The number of elements of a shape as a symbolic product: the fixed factor and the symbols
/// (sorted), so that `[batch,512,1,1]` and `[batch,512]` compare equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    pub fixed: usize,
    pub syms: Vec<String>,
}

impl Volume {
    pub fn of(shape: &[Dim]) -> Volume {
        let mut fixed = 1usize;
        let mut syms = Vec::new();
        for d in shape {
            match d {
                Dim::Fixed(n) => fixed = fixed.saturating_mul(*n),
                Dim::Sym(s) => syms.push(s.clone()),
            }
        }
        syms.sort();
        Volume { fixed, syms }
    }

    /// `self / other` when it is a whole [`Dim`]: used to infer a Reshape's `-1`.
    pub fn div(&self, other: &Volume) -> Option<Dim> {
        let mut syms = self.syms.clone();
        for s in &other.syms {
            let pos = syms.iter().position(|x| x == s)?;
            syms.remove(pos);
        }
        if other.fixed == 0 || !self.fixed.is_multiple_of(other.fixed) {
            return None;
        }
        let q = self.fixed / other.fixed;
        match (syms.len(), q) {
            (0, q) => Some(Dim::Fixed(q)),
            (1, 1) => Some(Dim::Sym(syms.remove(0))),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_division_cancels_symbols() {
        let a = Volume::of(&[Dim::Sym("batch".into()), 512.into(), 1.into(), 1.into()]);
        let b = Volume::of(&[Dim::Sym("batch".into())]);
        assert_eq!(a.div(&b), Some(Dim::Fixed(512)));
        let c = Volume::of(&[512.into()]);
        assert_eq!(a.div(&c), Some(Dim::Sym("batch".into())));
        assert_eq!(a.div(&Volume::of(&[3.into()])), None);
    }
}
