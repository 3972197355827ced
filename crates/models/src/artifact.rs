//! Reading a model artifact: read the file, verify its sha256 digest, take the ONNX file (and
//! `model.json`) out of the zip. An already extracted ONNX file (not a zip) is read as is.
//! No model is served from bytes whose digest has not been verified (`load` overlaps the check
//! with creating the session, and drops the session when the check fails); the CRC-32 of a
//! stored ONNX file, borrowed from the zip, is checked alongside the digest
//! ([`check_stored_onnx`]).

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::metadata::ModelMetadata;
use crate::registry::ModelRef;

/// The metadata file inside a model artifact.
pub const METADATA_FILE: &str = "model.json";

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// Reads `model_ref.path` and checks its digest; the error names the file and the registered
/// digest.
pub fn read_verified(model_ref: &ModelRef) -> Result<Vec<u8>, String> {
    let bytes = read(model_ref)?;
    verify(model_ref, &bytes)?;
    Ok(bytes)
}

/// Reads `model_ref.path`, not yet verified. The path was confined to the endpoint's stores and
/// resolved when it was registered; a symbolic link put in its place since is not followed.
pub fn read(model_ref: &ModelRef) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&model_ref.path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read artifact {}: {e}", model_ref.path.display()))?;
    Ok(bytes)
}

/// Checks that `bytes` (read from `model_ref.path`) have the registered digest; the error names
/// the file and the registered digest.
pub fn verify(model_ref: &ModelRef, bytes: &[u8]) -> Result<(), String> {
    let actual = hex::encode(Sha256::digest(bytes));
    let expected = model_ref
        .digest
        .strip_prefix("sha256:")
        .unwrap_or(&model_ref.digest)
        .to_ascii_lowercase();
    if actual != expected {
        // The digest the bytes have is for the log only: answers go to anyone who can infer.
        tracing::warn!(
            artifact = %model_ref.path.display(),
            "artifact has digest sha256:{actual}, not the registered sha256:{expected}"
        );
        return Err(format!(
            "artifact {} does not match the digest it was registered with (sha256:{expected}); it is corrupt or was replaced, so it is not loaded",
            model_ref.path.display()
        ));
    }
    Ok(())
}

/// Who checks the CRC-32 of a stored file [`zip_entry`] borrows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredCrc {
    /// `zip_entry` itself.
    Checked,
    /// The caller, with [`check_stored_onnx`]: a load does it on the verifier thread, alongside
    /// the digest, so that it is off the path to the session.
    LeftToCaller,
}

/// The compressed data of `entry` inside the zip `bytes`, when it lies within them.
fn entry_data<'a, R: Read>(bytes: &'a [u8], entry: &zip::read::ZipFile<'_, R>) -> Option<&'a [u8]> {
    let start = usize::try_from(entry.data_start()).ok()?;
    let len = usize::try_from(entry.compressed_size()).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// The data of a stored `entry` (what is borrowed rather than copied), `None` for any other.
fn stored_data<'a, R: Read>(
    bytes: &'a [u8],
    entry: &zip::read::ZipFile<'_, R>,
) -> Option<&'a [u8]> {
    let data = entry_data(bytes, entry)?;
    (entry.compression() == zip::CompressionMethod::Stored && data.len() as u64 == entry.size())
        .then_some(data)
}

fn crc_mismatch(path: &Path, name: &str) -> String {
    format!(
        "`{name}` in {} is corrupt: its CRC-32 is not the one the zip records",
        path.display()
    )
}

/// The file `name` of the zip `bytes` (at most `limit` bytes), `None` when the zip has none.
///
/// A deflated file (what `sandpit build` writes) is inflated in one call into a buffer of its
/// final size, and a stored one is borrowed from `bytes`: `zip`'s streaming reader takes several
/// times as long for a model's weights, which is most of a cold load. Its CRC-32 must be the one
/// the zip records: checked here, except for a stored file with [`StoredCrc::LeftToCaller`].
/// Other methods go through `zip`'s reader.
fn zip_entry<'a>(
    bytes: &'a [u8],
    path: &Path,
    name: &str,
    limit: u64,
    stored_crc: StoredCrc,
) -> Result<Option<Cow<'a, [u8]>>, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("artifact {} is not a readable zip: {e}", path.display()))?;
    let mut entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("cannot read `{name}` in {}: {e}", path.display())),
    };
    let size = entry.size();
    let Some(size) = usize::try_from(size).ok().filter(|_| size <= limit) else {
        return Err(format!(
            "`{name}` in {} is {size} bytes, more than the limit of {limit}",
            path.display()
        ));
    };
    if let Some(data) = stored_data(bytes, &entry) {
        if stored_crc == StoredCrc::Checked && zlib_rs::crc32::crc32(0, data) != entry.crc32() {
            return Err(crc_mismatch(path, name));
        }
        return Ok(Some(Cow::Borrowed(data)));
    }
    let corrupt = |what: &str| format!("`{name}` in {} is corrupt: {what}", path.display());
    let out = match (entry.compression(), entry_data(bytes, &entry)) {
        (zip::CompressionMethod::Deflated, Some(data)) => {
            let mut out = vec![0u8; size];
            let raw_deflate = zlib_rs::InflateConfig { window_bits: -15 };
            let (inflated, code) = zlib_rs::decompress_slice(&mut out, data, raw_deflate);
            if code != zlib_rs::ReturnCode::Ok || inflated.len() != size {
                return Err(corrupt(&format!(
                    "its deflated data does not inflate to the {size} bytes the zip records"
                )));
            }
            Cow::Owned(out)
        }
        _ => {
            let mut out = Vec::with_capacity(size);
            (&mut entry)
                .take(limit + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("cannot read `{name}` in {}: {e}", path.display()))?;
            if out.len() as u64 > limit {
                return Err(format!(
                    "`{name}` in {} is larger than the limit of {limit} bytes",
                    path.display()
                ));
            }
            // `zip`'s reader has checked the CRC-32 itself.
            return Ok(Some(Cow::Owned(out)));
        }
    };
    if zlib_rs::crc32::crc32(0, &out) != entry.crc32() {
        return Err(crc_mismatch(path, name));
    }
    Ok(Some(out))
}

/// Checks the CRC-32 of the artifact's ONNX file when it is stored in the zip, the check
/// [`onnx_bytes`] leaves to its caller. Anything else (not a zip, an unreadable one, no such
/// file, a deflated file) passes here: [`onnx_bytes`] reports it or checks it itself.
pub fn check_stored_onnx(model_ref: &ModelRef, bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(ZIP_MAGIC) {
        return Ok(());
    }
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return Ok(());
    };
    let Ok(entry) = archive.by_name(&model_ref.file) else {
        return Ok(());
    };
    match stored_data(bytes, &entry) {
        Some(data) if zlib_rs::crc32::crc32(0, data) != entry.crc32() => {
            Err(crc_mismatch(&model_ref.path, &model_ref.file))
        }
        _ => Ok(()),
    }
}

/// The ONNX bytes of an artifact (at most `limit` bytes): the zip's ONNX file, or the bytes
/// themselves (not copied) when the artifact is an already extracted ONNX file. A stored ONNX
/// file is borrowed without checking its CRC-32: the caller does, with [`check_stored_onnx`].
pub fn onnx_bytes<'a>(
    model_ref: &ModelRef,
    bytes: &'a [u8],
    limit: u64,
) -> Result<Cow<'a, [u8]>, String> {
    if !bytes.starts_with(ZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    zip_entry(
        bytes,
        &model_ref.path,
        &model_ref.file,
        limit,
        StoredCrc::LeftToCaller,
    )?
    .ok_or_else(|| {
        format!(
            "artifact {} has no file `{}`",
            model_ref.path.display(),
            model_ref.file
        )
    })
}

/// The `model.json` of a verified artifact, if it has a readable one.
pub fn metadata(model_ref: &ModelRef, bytes: &[u8]) -> Result<Option<ModelMetadata>, String> {
    if !bytes.starts_with(ZIP_MAGIC) {
        return Ok(None);
    }
    let Some(json) = zip_entry(
        bytes,
        &model_ref.path,
        METADATA_FILE,
        16 * 1024 * 1024,
        StoredCrc::Checked,
    )?
    else {
        return Ok(None);
    };
    match serde_json::from_slice(&json) {
        Ok(metadata) => Ok(Some(metadata)),
        Err(e) => {
            tracing::warn!(artifact = %model_ref.path.display(), "ignoring unreadable {METADATA_FILE}: {e}");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A zip holding `model.onnx` (`contents`) written with `method`.
    fn zipped(contents: &[u8], method: zip::CompressionMethod) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        zip.start_file("model.onnx", options).unwrap();
        zip.write_all(contents).unwrap();
        zip.finish().unwrap().into_inner()
    }

    /// Compressible but not trivially so: a few KiB of a repeating pattern with a counter.
    fn contents() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 977).to_le_bytes())
            .collect()
    }

    #[test]
    fn deflated_and_stored_files_come_out_as_they_went_in() {
        let contents = contents();
        let deflated = zipped(&contents, zip::CompressionMethod::Deflated);
        assert!(
            deflated.len() < contents.len() / 2,
            "deflate compressed nothing"
        );
        let out = zip_entry(
            &deflated,
            Path::new("a.zip"),
            "model.onnx",
            u64::MAX,
            StoredCrc::Checked,
        )
        .unwrap()
        .unwrap();
        assert!(out == contents.as_slice());

        let stored = zipped(&contents, zip::CompressionMethod::Stored);
        let out = zip_entry(
            &stored,
            Path::new("a.zip"),
            "model.onnx",
            u64::MAX,
            StoredCrc::Checked,
        )
        .unwrap()
        .unwrap();
        assert!(out == contents.as_slice());
        // Not copied: a stored file is the zip's own bytes.
        assert!(matches!(out, Cow::Borrowed(_)));

        assert_eq!(
            zip_entry(
                &stored,
                Path::new("a.zip"),
                "other.onnx",
                u64::MAX,
                StoredCrc::Checked
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn damaged_deflated_data_is_refused_naming_the_file() {
        let contents = contents();
        let good = zipped(&contents, zip::CompressionMethod::Deflated);
        let data_start = {
            let mut archive = zip::ZipArchive::new(Cursor::new(good.as_slice())).unwrap();
            let entry = archive.by_name("model.onnx").unwrap();
            entry.data_start() as usize
        };
        // Damage at a few places in the deflated data: each either breaks the stream or
        // changes what it inflates to, which the CRC-32 catches.
        for offset in [0, 100, 1000, 5000] {
            let mut damaged = good.clone();
            damaged[data_start + offset] ^= 0x55;
            let error = zip_entry(
                &damaged,
                Path::new("/store/a.zip"),
                "model.onnx",
                u64::MAX,
                StoredCrc::Checked,
            )
            .err()
            .unwrap_or_else(|| panic!("damage at {offset} went unnoticed"));
            assert!(
                error.starts_with("`model.onnx` in /store/a.zip is corrupt: "),
                "{error}"
            );
        }
    }

    fn model_ref(path: &Path) -> ModelRef {
        ModelRef {
            artifact: "a.zip".to_owned(),
            digest: "sha256:unused".to_owned(),
            path: path.to_path_buf(),
            file: "model.onnx".to_owned(),
        }
    }

    /// `zip` with one byte of `model.onnx`'s data flipped, and where that byte is.
    fn damaged(zip: &[u8]) -> (Vec<u8>, usize) {
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        let at = archive.by_name("model.onnx").unwrap().data_start() as usize + 100;
        let mut damaged = zip.to_vec();
        damaged[at] ^= 0x55;
        (damaged, at)
    }

    #[test]
    fn a_stored_onnx_files_crc_is_left_to_the_verifier_and_checked_there() {
        let contents = contents();
        let model_ref = model_ref(Path::new("/store/a.zip"));
        let stored = zipped(&contents, zip::CompressionMethod::Stored);
        assert_eq!(check_stored_onnx(&model_ref, &stored), Ok(()));
        let (damaged, at) = damaged(&stored);
        // The session side borrows the damaged bytes as they are...
        let borrowed = onnx_bytes(&model_ref, &damaged, u64::MAX).unwrap();
        assert!(matches!(borrowed, Cow::Borrowed(_)));
        assert_ne!(borrowed.as_ref(), contents.as_slice());
        assert_eq!(borrowed[100], damaged[at]);
        // ...and the verifier's check refuses them.
        assert_eq!(
            check_stored_onnx(&model_ref, &damaged),
            Err(
                "`model.onnx` in /store/a.zip is corrupt: its CRC-32 is not the one the zip records"
                    .to_owned()
            )
        );
        // `model.json` and other files read on their own are still checked where they are read.
        let error = zip_entry(
            &damaged,
            Path::new("/store/a.zip"),
            "model.onnx",
            u64::MAX,
            StoredCrc::Checked,
        )
        .unwrap_err();
        assert!(error.contains("CRC-32"), "{error}");
    }

    #[test]
    fn what_the_verifier_does_not_check_is_checked_by_onnx_bytes() {
        let contents = contents();
        let model_ref = model_ref(Path::new("/store/a.zip"));
        // A deflated file: inflated and checked on the session side.
        let (damaged, _) = damaged(&zipped(&contents, zip::CompressionMethod::Deflated));
        assert_eq!(check_stored_onnx(&model_ref, &damaged), Ok(()));
        let error = onnx_bytes(&model_ref, &damaged, u64::MAX).unwrap_err();
        assert!(error.contains("is corrupt"), "{error}");
        // Not a zip, or no such file: nothing to check; `onnx_bytes` says what is wrong.
        assert_eq!(check_stored_onnx(&model_ref, b"not a zip"), Ok(()));
        let other = ModelRef {
            file: "other.onnx".to_owned(),
            ..model_ref.clone()
        };
        let stored = zipped(&contents, zip::CompressionMethod::Stored);
        assert_eq!(check_stored_onnx(&other, &stored), Ok(()));
        assert_eq!(
            onnx_bytes(&other, &stored, u64::MAX).unwrap_err(),
            "artifact /store/a.zip has no file `other.onnx`"
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_inflated() {
        let contents = contents();
        let deflated = zipped(&contents, zip::CompressionMethod::Deflated);
        let error = zip_entry(
            &deflated,
            Path::new("/store/a.zip"),
            "model.onnx",
            1000,
            StoredCrc::Checked,
        )
        .unwrap_err();
        assert_eq!(
            error,
            format!(
                "`model.onnx` in /store/a.zip is {} bytes, more than the limit of 1000",
                contents.len()
            )
        );
    }
}
