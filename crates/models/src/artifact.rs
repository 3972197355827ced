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

fn zip_entry(bytes: &[u8], path: &Path, name: &str, limit: u64) -> Result<Option<Vec<u8>>, String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("artifact {} is not a readable zip: {e}", path.display()))?;
    let mut entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(format!("cannot read `{name}` in {}: {e}", path.display())),
    };
    if entry.size() > limit {
        return Err(format!(
            "`{name}` in {} is {} bytes, more than the limit of {limit}",
            path.display(),
            entry.size()
        ));
    }
    let mut out = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
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
    let entry = zip_entry(bytes, &model_ref.path, &model_ref.file, limit)?;
    entry.map(Cow::Owned).ok_or_else(|| {
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
