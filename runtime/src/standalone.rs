//! Standalone executables: a compiled model carried inside a copy of the `resin-run` stub, and (with the
//! `image` feature) the image preprocessing the stub applies to PNG and JPEG files.
//!
//! # Layout
//!
//! A standalone executable is, byte for byte:
//!
//! | part | size | content |
//! |---|---|---|
//! | stub | any | the `resin-run` executable, unchanged |
//! | padding | < 64 | zeros, so that the payload starts at a multiple of 64 in the file |
//! | payload | payload length | a `.resin` file (see [`crate::format`]), unchanged |
//! | trailer | 24 | see below |
//!
//! The trailer (integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | payload length, `u64` |
//! | 8 | 4 | CRC-32 (IEEE, as zlib) of the payload, `u32` |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | magic `RESINEXE` |
//!
//! Operating systems ignore bytes appended to an executable, so the result runs as the stub does; the
//! stub finds its model by reading its own file from the end ([`find_payload`]). The padding makes the
//! `.resin` weight section (64-byte aligned within the payload) 64-byte aligned in the file, so that
//! [`load_exe`] can memory-map the executable and run the model on the weights in the map, copying
//! nothing. A running executable cannot be written to (`ETXTBSY`), which is what makes the map safe.

use crate::error::{Error, Result};
use crate::format::{self, proto, Metadata};
use crate::plan::Weights;
use crate::session::Model;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The last 8 bytes of a standalone executable.
pub const MAGIC: [u8; 8] = *b"RESINEXE";
/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 24;
/// Alignment of the payload in the file, in bytes.
pub const PAYLOAD_ALIGN: usize = 64;

/// Zeros to put between a stub of `stub_len` bytes and its payload.
pub fn padding(stub_len: usize) -> usize {
    stub_len.next_multiple_of(PAYLOAD_ALIGN) - stub_len
}

/// The trailer that follows `payload`.
pub fn trailer(payload: &[u8]) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[0..8].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    t[8..12].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    t[16..24].copy_from_slice(&MAGIC);
    t
}

/// A standalone executable: `stub`, padding, the `.resin` bytes `resin` and the trailer.
pub fn append(stub: &[u8], resin: &[u8]) -> Vec<u8> {
    let pad = padding(stub.len());
    let mut out = Vec::with_capacity(stub.len() + pad + resin.len() + TRAILER_LEN);
    out.extend_from_slice(stub);
    out.resize(stub.len() + pad, 0);
    out.extend_from_slice(resin);
    out.extend_from_slice(&trailer(resin));
    out
}

/// Where the payload lies in `exe`, after checking the trailer and the payload's checksum.
pub fn payload_range(exe: &[u8]) -> Result<Range<usize>> {
    let fail = |m: String| Err(Error::Format(m));
    if exe.len() < TRAILER_LEN || exe[exe.len() - 8..] != MAGIC {
        return fail("no embedded model: the file does not end with a resin payload trailer (RESINEXE)".into());
    }
    let t = &exe[exe.len() - TRAILER_LEN..];
    let len = u64::from_le_bytes(t[0..8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(t[8..12].try_into().expect("4 bytes"));
    if t[12..16] != [0; 4] {
        return fail("invalid payload trailer: its reserved bytes are not zero".into());
    }
    let before = (exe.len() - TRAILER_LEN) as u64;
    if len > before {
        return fail(format!(
            "invalid payload trailer: it announces a payload of {len} bytes but only {before} bytes precede it \
             (the file is truncated or corrupted)"
        ));
    }
    // len <= before <= usize::MAX: lossless.
    let range = (before - len) as usize..before as usize;
    if crc32fast::hash(&exe[range.clone()]) != crc {
        return fail("payload checksum mismatch: the executable is corrupted".into());
    }
    Ok(range)
}

/// The payload (the `.resin` bytes) of the standalone executable `exe`, after checking the trailer and
/// the payload's checksum.
pub fn find_payload(exe: &[u8]) -> Result<&[u8]> {
    payload_range(exe).map(|r| &exe[r])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The model in the `.resin` file at `range` of `bytes`, its weights pointing into `bytes` (no copy) when
/// they are 4-byte aligned in memory, copied otherwise.
///
/// Every structural check of [`crate::format`] is made (magic, version, flags, lengths, header, plan)
/// except the `.resin` checksum: the payload's CRC, checked by [`payload_range`], covers the same bytes,
/// and reading a hundred megabytes of weights twice would double the start-up cost.
pub fn model_in<T: AsRef<[u8]> + Send + Sync + 'static>(bytes: Arc<T>, range: Range<usize>) -> Result<Model> {
    let all = (*bytes).as_ref();
    let b = all.get(range.clone()).ok_or_else(|| Error::Format("the payload range is out of bounds".into()))?;
    let fail = |m: String| Error::Format(format!("invalid embedded model: {m}"));
    let len = b.len() as u64;
    if b.len() < format::PRELUDE_LEN || b[0..8] != format::MAGIC {
        return Err(fail("the payload is not a resin file".into()));
    }
    match u32_at(b, 8) {
        format::VERSION => {}
        v => return Err(fail(format!("format version {v} is not supported by this resin ({})", format::VERSION))),
    }
    if u32_at(b, 12) != 0 || u32_at(b, 44) != 0 {
        return Err(fail("unknown flags or non-zero reserved bytes".into()));
    }
    let (header_len, weights_offset, weights_len) = (u64_at(b, 16), u64_at(b, 24), u64_at(b, 32));
    let header_end = header_len.checked_add(format::PRELUDE_LEN as u64).filter(|&e| e <= len);
    let expected = header_end.and_then(|e| e.checked_next_multiple_of(format::WEIGHTS_ALIGN as u64));
    if header_end.is_none() || expected != Some(weights_offset) || weights_len % 4 != 0 {
        return Err(fail("inconsistent section lengths".into()));
    }
    if weights_offset.checked_add(weights_len) != Some(len) {
        return Err(fail(format!("the sections do not add up to the payload's {len} bytes")));
    }
    // All now within the payload: the casts are lossless.
    let header_end = header_end.unwrap_or(0) as usize;
    let header = <proto::Header as prost::Message>::decode(&b[format::PRELUDE_LEN..header_end])
        .map_err(|e| fail(format!("invalid header: {}", e.to_string().replace('\n', " "))))?;
    let start = range.start + weights_offset as usize;
    let n = weights_len as usize / 4;
    let weights = match Weights::shared(bytes.clone(), start, n) {
        Ok(w) => w,
        Err(_) => Weights::from(
            all[start..start + n * 4]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>(),
        ),
    };
    let (plan, meta): (_, Metadata) = format::plan_of(&header, weights)?;
    Model::with_metadata(plan, meta)
}

/// The model embedded in the standalone executable at `path` (usually `std::env::current_exe()`): the
/// file is memory-mapped, its trailer and checksum checked, and the model's weights stay in the map.
pub fn load_exe(path: &Path) -> Result<Model> {
    let fail = |msg: String| Error::File { path: path.display().to_string(), msg };
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let len = file.metadata().map_err(|e| fail(format!("cannot read: {e}")))?.len();
    if len < TRAILER_LEN as u64 {
        return Err(fail(payload_range(&[]).unwrap_err().to_string()));
    }
    // SAFETY: the map is sound while nobody modifies or truncates the file. The file is normally the
    // running executable, which the kernel refuses to open for writing (ETXTBSY); resin itself never
    // writes an executable in place (`build_exe` renames a new file over the old one).
    let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(|e| fail(format!("cannot map: {e}")))?;
    let range = payload_range(&map).map_err(|e| fail(e.to_string()))?;
    model_in(Arc::new(map), range).map_err(|e| fail(e.to_string()))
}

/// The model in the bytes of a standalone executable (copied: see [`load_exe`] for the zero-copy way).
pub fn model_from_exe_bytes(exe: &[u8]) -> Result<Model> {
    Model::from_bytes(find_payload(exe)?)
}

// ---------------------------------------------------------------------------------------------------
// Images

#[cfg(feature = "image")]
pub use self::images::*;

#[cfg(feature = "image")]
mod images {
    use crate::error::{Error, Result};
    use image::{imageops, DynamicImage, ImageBuffer, Pixel};
    use std::path::Path;

    /// The `image` crate, as the runtime uses it.
    pub use image;

    /// ImageNet's per-channel mean (RGB), as torchvision's models expect.
    pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    /// ImageNet's per-channel standard deviation (RGB).
    pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

    /// The default size of the shorter side before cropping to `height`: `256/224 × height`, rounded
    /// (256 for 224, as torchvision's ImageNet evaluation).
    pub fn default_resize(height: usize) -> usize {
        (height * 256 + 112) / 224
    }

    /// The default mean and standard deviation for `channels`: ImageNet's for 3, 0 and 1 otherwise.
    pub fn default_mean_std(channels: usize) -> (Vec<f32>, Vec<f32>) {
        if channels == 3 {
            (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec())
        } else {
            (vec![0.0; channels], vec![1.0; channels])
        }
    }

    /// Decodes a PNG or JPEG file (the format is recognised by its content).
    pub fn load_image(path: &Path) -> Result<DynamicImage> {
        let fail = |msg: String| Error::File { path: path.display().to_string(), msg };
        let reader = image::ImageReader::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
        let reader = reader.with_guessed_format().map_err(|e| fail(format!("cannot read: {e}")))?;
        if reader.format().is_none() {
            return Err(fail("not a PNG or JPEG image".into()));
        }
        reader.decode().map_err(|e| fail(format!("cannot decode: {}", e.to_string().replace('\n', " "))))
    }

    /// Python's `int(round(x / 2))` for a non-negative integer `x`: halves round to even.
    fn half_round_even(x: usize) -> usize {
        let k = x / 2;
        if x % 2 == 1 && k % 2 == 1 {
            k + 1
        } else {
            k
        }
    }

    /// Where a crop of `target` starts in a side of `n` (negative: the side is padded), as torchvision's
    /// `center_crop`.
    pub(super) fn crop_start(n: usize, target: usize) -> i64 {
        if n >= target {
            half_round_even(n - target) as i64
        } else {
            -(((target - n) / 2) as i64)
        }
    }

    /// Resizes so that the shorter side is `resize` (the longer one `floor(resize × long / short)`),
    /// with a triangle (bilinear, antialiased) filter as PIL's; unchanged when already that size.
    fn resize_shorter<P: Pixel<Subpixel = u8> + 'static>(
        img: ImageBuffer<P, Vec<u8>>,
        resize: usize,
    ) -> ImageBuffer<P, Vec<u8>> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let (nw, nh) = if w <= h { (resize, resize * h / w) } else { (resize * w / h, resize) };
        if (nw, nh) == (w, h) {
            return img;
        }
        imageops::resize(&img, nw as u32, nh as u32, imageops::FilterType::Triangle)
    }

    /// torchvision's ImageNet preprocessing of `img` into a `channels × height × width` float array
    /// (channel-major, the layout of one NCHW sample): converted to `channels` (1: luma with PIL's
    /// ITU-R 601 weights, 3: RGB; alpha dropped), the shorter side resized to `resize` (bilinear), a
    /// center crop of `height × width` (zero-padded if the image is smaller), scaled to [0, 1] and
    /// normalized per channel: `(x - mean[c]) / std[c]`.
    pub fn preprocess(
        img: &DynamicImage,
        channels: usize,
        height: usize,
        width: usize,
        resize: usize,
        mean: &[f32],
        std: &[f32],
    ) -> Result<Vec<f32>> {
        let bad = |m: String| Err(Error::Format(m));
        if channels != 1 && channels != 3 {
            return bad(format!("images can feed models with 1 or 3 input channels, not {channels}"));
        }
        if mean.len() != channels || std.len() != channels {
            return bad(format!(
                "--mean and --std need {channels} value(s) each (one per channel), got {} and {}",
                mean.len(),
                std.len()
            ));
        }
        if let Some(s) = std.iter().find(|s| **s == 0.0 || !s.is_finite()) {
            return bad(format!("--std values must be finite and non-zero, got {s}"));
        }
        if height == 0 || width == 0 || resize == 0 {
            return bad("the image size and the resize must be positive".into());
        }
        if img.width() == 0 || img.height() == 0 {
            return bad("the image is empty".into());
        }
        let rgb = img.to_rgb8();
        let (w, h, pixels) = if channels == 3 {
            let r = resize_shorter(rgb, resize);
            (r.width() as usize, r.height() as usize, r.into_raw())
        } else {
            // PIL's convert("L"): L = (19595 R + 38470 G + 7471 B + 2^15) >> 16.
            let luma = ImageBuffer::<image::Luma<u8>, Vec<u8>>::from_fn(rgb.width(), rgb.height(), |x, y| {
                let [r, g, b] = rgb.get_pixel(x, y).0;
                let l = (19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16;
                image::Luma([l as u8])
            });
            let r = resize_shorter(luma, resize);
            (r.width() as usize, r.height() as usize, r.into_raw())
        };
        let (top, left) = (crop_start(h, height), crop_start(w, width));
        let mut out = vec![0f32; channels * height * width];
        for c in 0..channels {
            let plane = &mut out[c * height * width..(c + 1) * height * width];
            for y in 0..height {
                let sy = top + y as i64;
                for x in 0..width {
                    let sx = left + x as i64;
                    let v = if (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx) {
                        pixels[(sy as usize * w + sx as usize) * channels + c]
                    } else {
                        0
                    };
                    plane[y * width + x] = (v as f32 / 255.0 - mean[c]) / std[c];
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_stub() -> Vec<u8> {
        (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn trailer_round_trip() {
        let stub = sample_stub();
        let resin: Vec<u8> = (0..777u32).map(|i| (i * 13 % 256) as u8).collect();
        let exe = append(&stub, &resin);
        assert_eq!(&exe[..stub.len()], &stub[..]);
        assert_eq!(exe.len(), stub.len() + padding(stub.len()) + resin.len() + TRAILER_LEN);
        assert_eq!(find_payload(&exe).unwrap(), &resin[..]);
        let r = payload_range(&exe).unwrap();
        assert_eq!(r.start % PAYLOAD_ALIGN, 0);
        assert_eq!(&exe[exe.len() - 8..], b"RESINEXE");
        // An empty stub and an empty payload are well-formed too.
        assert_eq!(find_payload(&append(&[], &[])).unwrap(), &[] as &[u8]);
        assert_eq!(find_payload(&append(&[1, 2, 3], &resin)).unwrap(), &resin[..]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let stub = sample_stub();
        let resin: Vec<u8> = (0..300u32).map(|i| (i * 31 % 256) as u8).collect();
        let exe = append(&stub, &resin);
        for n in 0..exe.len() {
            let e = find_payload(&exe[..n]).expect_err("a truncated executable");
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.contains("no embedded model") || msg.contains("invalid payload"), "{n}: {msg}");
        }
    }

    #[test]
    fn corruption_is_an_error() {
        let exe = append(&sample_stub(), b"some payload bytes");
        let n = exe.len();
        let mut bad = exe.clone();
        bad[n - TRAILER_LEN - 3] ^= 1; // a payload byte
        assert!(find_payload(&bad).unwrap_err().to_string().contains("checksum mismatch"));
        let mut bad = exe.clone();
        bad[n - TRAILER_LEN + 8] ^= 1; // the CRC
        assert!(find_payload(&bad).unwrap_err().to_string().contains("checksum mismatch"));
        let mut bad = exe.clone();
        bad[n - TRAILER_LEN + 12] = 1; // reserved
        assert!(find_payload(&bad).unwrap_err().to_string().contains("reserved"));
        let mut bad = exe.clone();
        bad[n - TRAILER_LEN + 7] = 0x10; // an absurd length
        assert!(find_payload(&bad).unwrap_err().to_string().contains("precede it"));
        let mut bad = exe;
        bad[n - 1] = b'F';
        assert!(find_payload(&bad).unwrap_err().to_string().contains("no embedded model"));
        assert!(find_payload(&sample_stub()).unwrap_err().to_string().contains("no embedded model"));
    }

    #[test]
    fn a_payload_that_is_not_a_resin_file_is_refused() {
        let exe = append(&sample_stub(), &[7u8; 200]);
        let r = payload_range(&exe).unwrap();
        let e = model_in(Arc::new(exe), r).unwrap_err().to_string();
        assert!(e.contains("not a resin file"), "{e}");
        let e = model_from_exe_bytes(&append(&sample_stub(), b"RESIN")).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }

    #[cfg(feature = "image")]
    mod images {
        use super::super::images::crop_start;
        use super::super::*;
        use image::{DynamicImage, GrayImage, RgbImage};

        #[test]
        fn defaults() {
            assert_eq!(default_resize(224), 256);
            assert_eq!(default_resize(32), 37); // 36.57
            assert_eq!(default_mean_std(1), (vec![0.0], vec![1.0]));
            assert_eq!(default_mean_std(3).0, vec![0.485, 0.456, 0.406]);
        }

        /// No resize (the shorter side already has the size): only the crop and the normalization.
        #[test]
        fn crop_and_normalize() {
            // 8 wide, 6 high; pixel (x, y) = (10x + y, 100 + x, 200 - y).
            let img =
                RgbImage::from_fn(8, 6, |x, y| image::Rgb([(10 * x + y) as u8, (100 + x) as u8, (200 - y) as u8]));
            let img = DynamicImage::ImageRgb8(img);
            let (mean, std) = ([0.5, 0.25, 0.0], [0.5, 2.0, 1.0]);
            let v = preprocess(&img, 3, 4, 4, 6, &mean, &std).unwrap();
            assert_eq!(v.len(), 3 * 4 * 4);
            // Crop 4x4 of 8x6: left = round(4/2) = 2, top = round(2/2) = 1.
            for y in 0..4 {
                for x in 0..4 {
                    let (sx, sy) = (x as f32 + 2.0, y as f32 + 1.0);
                    let px = [10.0 * sx + sy, 100.0 + sx, 200.0 - sy];
                    for c in 0..3 {
                        let want = (px[c] / 255.0 - mean[c]) / std[c];
                        let got = v[c * 16 + y * 4 + x];
                        assert!((got - want).abs() < 1e-6, "c{c} y{y} x{x}: {got} vs {want}");
                    }
                }
            }
        }

        /// Halves round to even, as Python's `round` in torchvision's `center_crop`.
        #[test]
        fn crop_offsets_round_half_to_even() {
            for (n, target, start) in [(7, 4, 2), (9, 4, 2), (11, 4, 4), (293, 224, 34), (4, 4, 0), (3, 5, -1)] {
                assert_eq!(crop_start(n, target), start, "{n} {target}");
            }
            // A 1-pixel-high strip cropped to 3 rows: zero-padded above and below.
            let img = DynamicImage::ImageLuma8(GrayImage::from_pixel(3, 1, image::Luma([255])));
            let v = preprocess(&img, 1, 3, 1, 1, &[0.0], &[1.0]).unwrap();
            // resize 1: shorter side (height) stays 1, width 3; crop 3 high x 1 wide at left 1, top -1.
            assert_eq!(v, vec![0.0, 1.0, 0.0]);
        }

        /// A 2x downsample with the triangle filter, computed by hand: output x=0 is centred at input 1.0,
        /// and covers input pixel centres 0.5, 1.5, 2.5 with weights 1 - d/2 = 0.75, 0.75, 0.25.
        #[test]
        fn bilinear_resize() {
            let cols = [0u8, 70, 140, 210];
            let img = RgbImage::from_fn(4, 4, |x, _| image::Rgb([cols[x as usize], 255 - cols[x as usize], 9]));
            let img = DynamicImage::ImageRgb8(img);
            let v = preprocess(&img, 3, 2, 2, 2, &[0.0; 3], &[1.0; 3]).unwrap();
            // (0·.75 + 70·.75 + 140·.25) / 1.75 = 50; (70·.25 + 140·.75 + 210·.75) / 1.75 = 160.
            let r = [50.0, 160.0, 50.0, 160.0];
            let g = [205.0, 95.0, 205.0, 95.0];
            for i in 0..4 {
                assert!((v[i] - r[i] / 255.0).abs() < 1e-6, "{v:?}");
                assert!((v[4 + i] - g[i] / 255.0).abs() < 1e-6, "{v:?}");
                assert!((v[8 + i] - 9.0 / 255.0).abs() < 1e-6, "{v:?}");
            }
            // 1 channel: luma of (c, 255 - c, 9) first, then the same resize.
            let v = preprocess(&img, 1, 2, 2, 2, &[0.5], &[0.25]).unwrap();
            let luma = |r: u32, g: u32, b: u32| ((19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16) as f32;
            let l: Vec<f32> = cols.iter().map(|&c| luma(c as u32, 255 - c as u32, 9)).collect();
            let l0 = ((l[0] * 0.75 + l[1] * 0.75 + l[2] * 0.25) / 1.75).round();
            let l1 = ((l[1] * 0.25 + l[2] * 0.75 + l[3] * 0.75) / 1.75).round();
            for (i, want) in [l0, l1, l0, l1].iter().enumerate() {
                let want = (want / 255.0 - 0.5) / 0.25;
                assert!((v[i] - want).abs() < 1e-5, "{v:?} vs {want}");
            }
        }

        /// torchvision's Resize(256) + CenterCrop(224) on a 300x200 image: 384x256, then the centre.
        #[test]
        fn imagenet_sizes() {
            let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 200, image::Rgb([255, 0, 51])));
            let (mean, std) = default_mean_std(3);
            let v = preprocess(&img, 3, 224, 224, 256, &mean, &std).unwrap();
            assert_eq!(v.len(), 3 * 224 * 224);
            let want = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (0.2 - 0.406) / 0.225];
            for c in 0..3 {
                for &x in &v[c * 224 * 224..(c + 1) * 224 * 224] {
                    assert!((x - want[c]).abs() < 1e-5, "{x} vs {}", want[c]);
                }
            }
        }

        #[test]
        fn bad_arguments() {
            let img = DynamicImage::ImageRgb8(RgbImage::new(4, 4));
            assert!(preprocess(&img, 2, 2, 2, 2, &[0.0; 2], &[1.0; 2]).unwrap_err().to_string().contains("1 or 3"));
            assert!(preprocess(&img, 3, 2, 2, 2, &[0.0; 2], &[1.0; 3]).unwrap_err().to_string().contains("--mean"));
            assert!(preprocess(&img, 3, 2, 2, 2, &[0.0; 3], &[1.0, 0.0, 1.0])
                .unwrap_err()
                .to_string()
                .contains("--std"));
            assert!(preprocess(&img, 3, 2, 2, 0, &[0.0; 3], &[1.0; 3]).is_err());
        }
    }
}
