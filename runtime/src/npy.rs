//! NumPy `.npy` files (format 1.0-3.0, little-endian, C order) for inputs and outputs.
//!
//! Reading accepts float32, float64, int64 and int32 arrays and reports the dtype so callers can refuse
//! what they cannot use; writing is float32 only and atomic: a temporary file renamed into place, so a
//! failed write leaves nothing behind.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// An array read from a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    /// NumPy's dtype descriptor, e.g. `<f4`.
    pub descr: String,
    /// The elements converted to f32 when the dtype is float32; `None` otherwise.
    pub f32_data: Option<Vec<f32>>,
}

fn err(path: &Path, msg: impl Into<String>) -> Error {
    Error::File { path: path.display().to_string(), msg: msg.into() }
}

/// The human name of a NumPy dtype descriptor.
pub fn dtype_name(descr: &str) -> &str {
    match descr {
        "<f4" => "float32",
        "<f8" => "float64",
        "<i8" => "int64",
        "<i4" => "int32",
        "|u1" => "uint8",
        "|b1" => "bool",
        "<f2" => "float16",
        other => other,
    }
}

/// Parses a `.npy` file's bytes.
pub fn parse(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(path, "not a .npy file (bad magic)"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(path, format!("unsupported .npy version {v}"))),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| err(path, "truncated .npy header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err(path, "the .npy header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        Some(header[i + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\''))
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| err(path, "the .npy header has no descr"))?
        .to_string();
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(err(path, "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)"));
    }
    let shape_s = field("shape").and_then(|s| s.strip_prefix('(')).and_then(|s| s.split(')').next());
    let shape_s = shape_s.ok_or_else(|| err(path, "the .npy header has no shape"))?;
    let shape = shape_s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err(path, format!("bad dimension '{s}' in the .npy shape"))))
        .collect::<Result<Vec<_>>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| err(path, "absurd shape"))?;
    let body = &bytes[start + hlen..];
    let width = match descr.as_str() {
        "<f4" | "<i4" => 4,
        "<f8" | "<i8" => 8,
        "<f2" => 2,
        "|u1" | "|b1" | "|i1" => 1,
        other => return Err(err(path, format!("unsupported .npy dtype '{other}'"))),
    };
    if body.len() != count.saturating_mul(width) {
        return Err(err(
            path,
            format!(
                "the .npy data is {} bytes, shape {:?} of {} needs {}",
                body.len(),
                shape,
                dtype_name(&descr),
                count * width
            ),
        ));
    }
    let f32_data =
        (descr == "<f4").then(|| body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect());
    Ok(NpyArray { shape, descr, f32_data })
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e.to_string()))?;
    parse(&bytes, path)
}

/// Encodes a float32 array as `.npy` bytes (version 1.0).
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if shape.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `bytes` to `path` atomically: a sibling temporary file, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(err(path, format!("the directory '{}' does not exist", dir.display())));
    }
    let name = path.file_name().ok_or_else(|| err(path, "not a file path"))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(path, e.to_string()));
    }
    Ok(())
}

/// Writes a float32 array as `.npy`, atomically.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    write_atomic(path, &encode_f32(shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_errors() {
        let p = Path::new("x.npy");
        let bytes = encode_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(bytes.len() % 64, 24); // header padded to 64, then 24 data bytes
        let a = parse(&bytes, p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.f32_data.unwrap()[5], 6.0);
        let v = parse(&encode_f32(&[4], &[0.0; 4]), p).unwrap();
        assert_eq!(v.shape, vec![4]);
        assert!(parse(&bytes[..bytes.len() - 1], p).unwrap_err().to_string().contains("needs 24"));
        assert!(parse(b"garbage...", p).unwrap_err().to_string().contains("bad magic"));
    }
}
