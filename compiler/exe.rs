//! Standalone executables: a compiled model appended to a copy of the `resin-run` stub (the layout is in
//! `resin_runtime::standalone`). The result runs on a machine without resin: `./model cat.jpg`.

use anyhow::{bail, Context, Result};
use resin_runtime::standalone;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The stub's file name on this platform.
fn stub_name() -> String {
    format!("resin-run{}", std::env::consts::EXE_SUFFIX)
}

/// The `resin-run` stub: `$RESIN_RUN_STUB` if set, else `resin-run` next to the running executable, else
/// in its parent directory (where the binaries are when the running executable is a test in
/// `target/<profile>/deps`).
pub fn find_stub() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("RESIN_RUN_STUB").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("RESIN_RUN_STUB is set to '{}', which is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("cannot locate the running executable")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut tried = vec![dir.join(stub_name())];
    if let Some(up) = dir.parent() {
        tried.push(up.join(stub_name()));
    }
    if let Some(p) = tried.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    bail!(
        "the resin-run stub was not found next to {} (looked for {}); build it with `cargo build --release` \
         (or point RESIN_RUN_STUB at it)",
        exe.display(),
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
    )
}

/// Writes a standalone executable to `out`: the stub ([`find_stub`]), then the `.resin` bytes
/// `resin_bytes` (checked first: they must load as a model), then the trailer. The file is written
/// atomically (a temporary file in the same directory, renamed over `out`), with mode 0755. Returns its
/// size in bytes.
pub fn build_exe(resin_bytes: &[u8], out: &Path) -> Result<u64> {
    build_exe_with(&find_stub()?, resin_bytes, out)
}

/// [`build_exe`] with the stub at `stub_path`.
pub fn build_exe_with(stub_path: &Path, resin_bytes: &[u8], out: &Path) -> Result<u64> {
    resin_runtime::Model::from_bytes(resin_bytes).context("the model to embed is not a valid .resin artifact")?;
    let stub = std::fs::read(stub_path).with_context(|| format!("cannot read the stub {}", stub_path.display()))?;
    if standalone::find_payload(&stub).is_ok() {
        bail!("{} already carries a model: give the bare resin-run stub", stub_path.display());
    }
    write_exe(&stub, resin_bytes, out)
}

/// [`build_exe`] with the stub's bytes given.
pub fn write_exe(stub: &[u8], resin_bytes: &[u8], out: &Path) -> Result<u64> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = out.file_name() else { bail!("cannot write '{}': not a file name", out.display()) };
    if !dir.is_dir() {
        bail!("cannot write '{}': the directory '{}' does not exist", out.display(), dir.display());
    }
    let tmp = dir.join(format!(
        ".{}.{}-{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o755);
    let file = opts.open(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let size = (stub.len() + standalone::padding(stub.len()) + resin_bytes.len() + standalone::TRAILER_LEN) as u64;
    let written = (|| -> std::io::Result<()> {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &file);
        w.write_all(stub)?;
        w.write_all(&vec![0u8; standalone::padding(stub.len())])?;
        w.write_all(resin_bytes)?;
        w.write_all(&standalone::trailer(resin_bytes))?;
        w.flush()?;
        drop(w);
        // The umask may have taken bits off the mode given at creation.
        #[cfg(unix)]
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", out.display()));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_with_mode_755() {
        let dir = std::env::temp_dir().join(format!("resin-exe-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("m");
        std::fs::write(&out, b"old").unwrap();
        let n = write_exe(b"#!stub", b"payload", &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(n, bytes.len() as u64);
        assert_eq!(standalone::find_payload(&bytes).unwrap(), b"payload");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o755);
        }
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{names:?}");
        let e = write_exe(b"", b"", &dir.join("nope/m")).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
