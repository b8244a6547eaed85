//! Which micro-kernel family this CPU runs, detected once at run time.
//!
//! Owns CPU feature detection and the `RESIN_ISA` override (`scalar`, `avx2`, `avx512`) that tests and
//! benchmarks use to force a slower path. Must not hold any kernel code.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level with its own micro-kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust, correct everywhere.
    Scalar,
    /// x86-64 AVX2 + FMA (16 registers of 8 floats).
    Avx2,
    /// x86-64 AVX-512F (32 registers of 16 floats).
    Avx512,
}

impl Isa {
    /// Columns of C one micro-tile covers (the width of a packed B tile).
    pub fn nr(self) -> usize {
        match self {
            Isa::Scalar => 16,
            Isa::Avx2 => 16,
            Isa::Avx512 => 48,
        }
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every level this CPU can run, fastest last.
    pub fn all_available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.available()).collect()
    }

    /// The fastest available level, or the one `RESIN_ISA` names (if this CPU has it). Detected once.
    pub fn detect() -> Isa {
        static CACHE: AtomicU8 = AtomicU8::new(0);
        let code = |i: Isa| match i {
            Isa::Scalar => 1,
            Isa::Avx2 => 2,
            Isa::Avx512 => 3,
        };
        match CACHE.load(Ordering::Relaxed) {
            1 => return Isa::Scalar,
            2 => return Isa::Avx2,
            3 => return Isa::Avx512,
            _ => {}
        }
        let wanted = match std::env::var("RESIN_ISA").as_deref() {
            Ok("scalar") => Some(Isa::Scalar),
            Ok("avx2") => Some(Isa::Avx2),
            Ok("avx512") => Some(Isa::Avx512),
            _ => None,
        };
        let isa = match wanted {
            Some(i) if i.available() => i,
            _ => *Isa::all_available().last().expect("scalar is always available"),
        };
        CACHE.store(code(isa), Ordering::Relaxed);
        isa
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2+fma",
            Isa::Avx512 => "avx512f",
        }
    }
}
