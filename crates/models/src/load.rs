//! Loading one model from its artifact, timed per phase: read the file, verify its digest, take
//! the ONNX bytes out of the zip, create the engine's session.
//!
//! The digest is checked on a second thread while the ONNX file is extracted and the session is
//! created: hashing, at ~1.3-1.9 GB/s, takes over half as long as creating the session, and with
//! a core free the overlap takes all of it off the load (on a saturated machine it saves nothing,
//! and costs nothing either). That thread is started before the file is read, and also checks
//! the CRC-32 of a stored ONNX file (the usual case: weights do not deflate), which the session
//! side borrows from the zip unchecked, so neither its start nor the CRC delays the session; when
//! it has not started by the time the session is ready (no core free), the loading thread does
//! the check itself instead of waiting for it. Both work on the one buffer read from the file,
//! so what is hashed is what the engine saw. The model is returned only once the digest matches: a corrupt or
//! replaced artifact is refused — with the digest error, whatever the engine made of the bytes —
//! and the session built from it is dropped, never served.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::artifact;
use crate::engine::{Engine, LoadedModel};
use crate::registry::ModelRef;

/// How long each phase of one load took. `verify` runs alongside `extract` + `session`, so the
/// load takes about `read + max(verify, extract + session)`, not the sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadPhases {
    /// Reading the artifact file into memory.
    pub read: Duration,
    /// Hashing the bytes and comparing with the registered digest (and a stored ONNX file's
    /// CRC-32 with the zip's).
    pub verify: Duration,
    /// Taking the ONNX file out of the zip: inflating it, or (stored) finding it, which is all
    /// but free; zero for an already extracted ONNX file.
    pub extract: Duration,
    /// The engine's session: parsing, graph optimisation, initialisers, kernels.
    pub session: Duration,
}

impl LoadPhases {
    /// The phases by the name `/metrics` labels them with, in the order they start.
    pub fn named(&self) -> [(&'static str, Duration); 4] {
        [
            ("read", self.read),
            ("verify", self.verify),
            ("extract", self.extract),
            ("session", self.session),
        ]
    }
}

fn timed<T>(work: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let out = work();
    (out, started.elapsed())
}

/// A model just loaded, how long each phase took, and the buffers it was loaded from.
pub struct Loaded {
    pub model: Box<dyn LoadedModel>,
    pub phases: LoadPhases,
    /// The artifact's bytes and the inflated ONNX file, which the engine has copied what it
    /// needs from: the caller drops them once the model is published, since freeing them takes
    /// milliseconds for a large model (the pages go back to the kernel).
    pub buffers: Buffers,
}

/// Buffers a load no longer needs (see [`Loaded::buffers`]); held only to be dropped.
pub struct Buffers {
    _read: Arc<Shared>,
    _inflated: Option<Vec<u8>>,
}

/// What the loading thread and the verifier thread share.
struct Shared {
    model_ref: ModelRef,
    /// The artifact's bytes, or why they could not be read: set exactly once, read or not, so
    /// the verifier never waits for bytes that will not come.
    read: OnceLock<Result<Vec<u8>, String>>,
    /// Set by whichever thread starts checking the bytes first.
    claimed: AtomicBool,
}

impl Shared {
    /// Checks the bytes (digest, and a stored ONNX file's CRC-32) unless another thread has
    /// started to: `None` when one has.
    fn verify_unless_claimed(&self) -> Option<(Result<(), String>, Duration)> {
        if self.claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(match self.read.wait() {
            Ok(bytes) => timed(|| {
                artifact::verify(&self.model_ref, bytes)?;
                artifact::check_stored_onnx(&self.model_ref, bytes)
            }),
            // The read error is what is reported; there is nothing to check.
            Err(_) => (Ok(()), Duration::ZERO),
        })
    }
}

/// Loads the model of `model_ref` with `engine` (its ONNX file at most `limit` bytes); returns it
/// with the time each phase took, or why it cannot be loaded. Blocking: call it on a blocking
/// thread.
///
/// The verifier thread is started before the file is read, so that starting it (tens of
/// microseconds) overlaps the read. On a busy machine a new thread can wait milliseconds for a
/// core: when the session is ready and the verifier has not begun, this thread checks the bytes
/// itself rather than wait for it (the verifier, when it runs, finds the check taken and ends).
pub fn load_model(engine: &dyn Engine, model_ref: &ModelRef, limit: u64) -> Result<Loaded, String> {
    let shared = Arc::new(Shared {
        model_ref: model_ref.clone(),
        read: OnceLock::new(),
        claimed: AtomicBool::new(false),
    });
    let (sender, receiver) = mpsc::sync_channel(1);
    let verifier = {
        let shared = Arc::clone(&shared);
        move || {
            if let Some(verified) = shared.verify_unless_claimed() {
                let _ = sender.send(verified);
            }
        }
    };
    // Without a second thread (none can be started), this one checks the bytes after the session.
    let _ = thread::Builder::new()
        .name("sandpit-verify".to_owned())
        .spawn(verifier);

    let (bytes, read) = timed(|| artifact::read(model_ref));
    // `set` cannot fail: this is the only place the cell is written.
    let _ = shared.read.set(bytes);
    let built = match shared.read.wait() {
        Ok(bytes) => build_session(engine, model_ref, bytes, limit),
        Err(read_error) => return Err(read_error.clone()),
    };
    let (verified, verify) = shared.verify_unless_claimed().unwrap_or_else(|| {
        // The verifier has claimed the check: it sends its result, or panicked and sends none.
        receiver
            .recv()
            .unwrap_or_else(|_| (Err("the digest check panicked".to_owned()), Duration::ZERO))
    });
    // The digest decides first: an engine error about corrupt bytes would hide the real cause.
    verified?;
    let built = built?;
    Ok(Loaded {
        model: built.model,
        phases: LoadPhases {
            read,
            verify,
            extract: built.extract,
            session: built.session,
        },
        buffers: Buffers {
            _read: shared,
            _inflated: built.inflated,
        },
    })
}

/// A session built from an artifact's bytes, not yet verified.
struct Built {
    model: Box<dyn LoadedModel>,
    extract: Duration,
    session: Duration,
    /// The ONNX file, when it had to be inflated (a stored one is borrowed).
    inflated: Option<Vec<u8>>,
}

/// Takes the ONNX file out of `bytes` and has `engine` load it.
fn build_session(
    engine: &dyn Engine,
    model_ref: &ModelRef,
    bytes: &[u8],
    limit: u64,
) -> Result<Built, String> {
    let (onnx, extract) = timed(|| artifact::onnx_bytes(model_ref, bytes, limit));
    let onnx = onnx?;
    let (loaded, session) = timed(|| engine.load(&onnx));
    let loaded = loaded.map_err(|e| e.to_string())?;
    let inflated = match onnx {
        Cow::Owned(inflated) => Some(inflated),
        Cow::Borrowed(_) => None,
    };
    Ok(Built {
        model: loaded,
        extract,
        session,
        inflated,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::error::ModelError;
    use crate::metadata::ModelMetadata;
    use crate::tensor::Tensor;

    /// An engine that accepts any bytes, so only the digest can refuse them.
    #[derive(Default)]
    struct AcceptingEngine {
        loads: AtomicUsize,
    }

    struct Accepted(ModelMetadata, usize);

    impl LoadedModel for Accepted {
        fn metadata(&self) -> &ModelMetadata {
            &self.0
        }
        fn infer(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
            Ok(inputs)
        }
        fn memory_bytes(&self) -> u64 {
            self.1 as u64
        }
    }

    impl Engine for AcceptingEngine {
        fn load(&self, onnx: &[u8]) -> Result<Box<dyn LoadedModel>, ModelError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(Accepted(ModelMetadata::default(), onnx.len())))
        }
    }

    /// An engine that refuses any bytes.
    struct RefusingEngine;

    impl Engine for RefusingEngine {
        fn load(&self, _onnx: &[u8]) -> Result<Box<dyn LoadedModel>, ModelError> {
            Err(ModelError::Unsupported {
                detail: "not an ONNX model".to_owned(),
            })
        }
    }

    fn artifact_with(dir: &std::path::Path, bytes: &[u8], digest_of: &[u8]) -> ModelRef {
        let path = dir.join("model.onnx");
        std::fs::write(&path, bytes).unwrap();
        ModelRef {
            artifact: "model.onnx".to_owned(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(digest_of))),
            path,
            file: "model.onnx".to_owned(),
        }
    }

    #[test]
    fn a_matching_digest_loads_and_every_phase_is_timed() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![7u8; 4 << 20];
        let model_ref = artifact_with(dir.path(), &bytes, &bytes);
        let engine = AcceptingEngine::default();
        let Loaded {
            model,
            phases,
            buffers,
        } = load_model(&engine, &model_ref, u64::MAX).unwrap();
        assert_eq!(model.memory_bytes(), bytes.len() as u64);
        // The bytes read come back to be freed after the model is published.
        assert_eq!(buffers._read.read.get(), Some(&Ok(bytes.clone())));
        assert_eq!(buffers._inflated, None);
        assert!(phases.read > Duration::ZERO, "{phases:?}");
        assert!(phases.verify > Duration::ZERO, "{phases:?}");
        assert!(phases.session > Duration::ZERO, "{phases:?}");
        // Not a zip: nothing to extract, but the phase is still measured.
        assert!(phases.extract < phases.verify, "{phases:?}");
    }

    #[test]
    fn the_bytes_are_checked_once_by_whichever_thread_claims_them_first() {
        let dir = tempfile::tempdir().unwrap();
        let model_ref = artifact_with(dir.path(), b"bytes", b"other bytes");
        let shared = Shared {
            model_ref,
            read: OnceLock::new(),
            claimed: AtomicBool::new(false),
        };
        let _ = shared.read.set(Ok(b"bytes".to_vec()));
        let (first, _) = shared.verify_unless_claimed().expect("unclaimed");
        assert!(first.unwrap_err().contains("does not match the digest"));
        assert!(shared.verify_unless_claimed().is_none());
    }

    #[test]
    fn bytes_the_engine_accepts_are_still_refused_when_the_digest_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let model_ref = artifact_with(dir.path(), b"replaced bytes", b"registered bytes");
        let engine = AcceptingEngine::default();
        let failure = load_model(&engine, &model_ref, u64::MAX)
            .err()
            .expect("a mismatching digest is refused");
        assert!(
            failure.contains("does not match the digest it was registered with"),
            "{failure}"
        );
        assert!(failure.contains(&model_ref.digest), "{failure}");
        // The engine did load the bytes (alongside the check), and that model was dropped.
        assert_eq!(engine.loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_stored_onnx_file_with_a_wrong_crc_is_refused_although_its_digest_matches() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("model.onnx", stored).unwrap();
        zip.write_all(&[3u8; 64 * 1024]).unwrap();
        let mut bytes = zip.finish().unwrap().into_inner();
        // Damaged before it was registered: the digest is the damaged bytes', the CRC is not.
        let last_data_byte = bytes.len() - 200;
        bytes[last_data_byte] ^= 0x55;
        let path = dir.path().join("a.zip");
        std::fs::write(&path, &bytes).unwrap();
        let model_ref = ModelRef {
            artifact: "a.zip".to_owned(),
            digest: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
            path,
            file: "model.onnx".to_owned(),
        };
        let engine = AcceptingEngine::default();
        let failure = load_model(&engine, &model_ref, u64::MAX)
            .err()
            .expect("a wrong CRC-32 is refused");
        assert!(failure.contains("CRC-32"), "{failure}");
        // The session was built from the borrowed bytes alongside the check, then dropped.
        assert_eq!(engine.loads.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_unreadable_artifact_is_reported_and_nothing_waits_for_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let model_ref = ModelRef {
            artifact: "gone.onnx".to_owned(),
            digest: "sha256:00".to_owned(),
            path: dir.path().join("gone.onnx"),
            file: "gone.onnx".to_owned(),
        };
        let engine = AcceptingEngine::default();
        let failure = load_model(&engine, &model_ref, u64::MAX)
            .err()
            .expect("a missing file is refused");
        assert!(failure.starts_with("cannot read artifact "), "{failure}");
        assert_eq!(engine.loads.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_digest_mismatch_is_reported_rather_than_what_the_engine_said() {
        let dir = tempfile::tempdir().unwrap();
        let model_ref = artifact_with(dir.path(), b"garbage", b"registered bytes");
        let failure = load_model(&RefusingEngine, &model_ref, u64::MAX)
            .err()
            .expect("refused");
        assert!(failure.contains("digest"), "{failure}");
        assert!(!failure.contains("not an ONNX model"), "{failure}");

        // With the right digest, the engine's own refusal is what is reported.
        let model_ref = artifact_with(dir.path(), b"garbage", b"garbage");
        let failure = load_model(&RefusingEngine, &model_ref, u64::MAX)
            .err()
            .expect("refused");
        assert!(failure.contains("not an ONNX model"), "{failure}");
    }
}
