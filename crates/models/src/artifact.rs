//! Reading a model artifact: read the file, verify its sha256 digest, take the ONNX file (and
//! `model.json`) out of the zip. An already extracted ONNX file (not a zip) is read as is.
//! No model is served from bytes whose digest has not been verified (`load` overlaps the check
//! with creating the session, and drops the session when the check fails).

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

/// The file `name` of the zip `bytes` (at most `limit` bytes), `None` when the zip has none.
///
/// A deflated file (what `sandpit build` writes) is inflated in one call into a buffer of its
/// final size, and a stored one is borrowed from `bytes`: `zip`'s streaming reader takes several
/// times as long for a model's weights, which is most of a cold load. Either way its CRC-32 must
/// be the one the zip records. Other methods go through `zip`'s reader.
fn zip_entry<'a>(
    bytes: &'a [u8],
    path: &Path,
    name: &str,
    limit: u64,
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
    let data = usize::try_from(entry.data_start())
        .ok()
        .zip(usize::try_from(entry.compressed_size()).ok())
        .and_then(|(start, len)| bytes.get(start..start.checked_add(len)?));
    let corrupt = |what: &str| format!("`{name}` in {} is corrupt: {what}", path.display());
    let out = match (entry.compression(), data) {
        (zip::CompressionMethod::Stored, Some(data)) if data.len() == size => Cow::Borrowed(data),
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
        return Err(corrupt("its CRC-32 is not the one the zip records"));
    }
    Ok(Some(out))
}

/// The ONNX bytes of an artifact (at most `limit` bytes): the zip's ONNX file, or the bytes
/// themselves (not copied) when the artifact is an already extracted ONNX file.
pub fn onnx_bytes<'a>(
    model_ref: &ModelRef,
    bytes: &'a [u8],
    limit: u64,
) -> Result<Cow<'a, [u8]>, String> {
    if !bytes.starts_with(ZIP_MAGIC) {
        return Ok(Cow::Borrowed(bytes));
    }
    zip_entry(bytes, &model_ref.path, &model_ref.file, limit)?.ok_or_else(|| {
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
    let Some(json) = zip_entry(bytes, &model_ref.path, METADATA_FILE, 16 * 1024 * 1024)? else {
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
        let out = zip_entry(&deflated, Path::new("a.zip"), "model.onnx", u64::MAX)
            .unwrap()
            .unwrap();
        assert!(out == contents.as_slice());

        let stored = zipped(&contents, zip::CompressionMethod::Stored);
        let out = zip_entry(&stored, Path::new("a.zip"), "model.onnx", u64::MAX)
            .unwrap()
            .unwrap();
        assert!(out == contents.as_slice());
        // Not copied: a stored file is the zip's own bytes.
        assert!(matches!(out, Cow::Borrowed(_)));

        assert_eq!(
            zip_entry(&stored, Path::new("a.zip"), "other.onnx", u64::MAX).unwrap(),
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
            let error = zip_entry(&damaged, Path::new("/store/a.zip"), "model.onnx", u64::MAX)
                .err()
                .unwrap_or_else(|| panic!("damage at {offset} went unnoticed"));
            assert!(
                error.starts_with("`model.onnx` in /store/a.zip is corrupt: "),
                "{error}"
            );
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_before_it_is_inflated() {
        let contents = contents();
        let deflated = zipped(&contents, zip::CompressionMethod::Deflated);
        let error =
            zip_entry(&deflated, Path::new("/store/a.zip"), "model.onnx", 1000).unwrap_err();
        assert_eq!(
            error,
            format!(
                "`model.onnx` in /store/a.zip is {} bytes, more than the limit of 1000",
                contents.len()
            )
        );
    }
}
