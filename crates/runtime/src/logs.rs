//! Size-capped component logs and reading their tails.
//!
//! Components append straight to their log file, so the cap is kept the way logrotate's
//! `copytruncate` does: when a file outgrows the cap its contents move to `<file>.1` and the file
//! is truncated in place. Writers open with `O_APPEND`, so they carry on at the new end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The previous generation of a log file.
pub fn rotated_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Rotates `log` if it is larger than `max_bytes`. Returns whether it rotated.
pub fn enforce_cap(log: &Path, max_bytes: u64) -> io::Result<bool> {
    let size = match fs::metadata(log) {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    if size <= max_bytes {
        return Ok(false);
    }
    // Keep only the newest `max_bytes` in the rotated file so the pair never exceeds twice the cap.
    let mut source = File::open(log)?;
    source.seek(SeekFrom::Start(size - max_bytes))?;
    let mut rotated = File::create(rotated_path(log))?;
    io::copy(&mut source.take(max_bytes), &mut rotated)?;
    OpenOptions::new().write(true).open(log)?.set_len(0)?;
    Ok(true)
}

/// The last `lines` lines of a log, reading the rotated generation too when the current one is
/// short. Invalid UTF-8 is replaced rather than refused: logs are for humans.
pub fn tail(log: &Path, lines: usize) -> String {
    let mut collected: Vec<String> = Vec::new();
    for path in [log.to_path_buf(), rotated_path(log)] {
        if collected.len() >= lines {
            break;
        }
        let text = read_end(&path, 256 * 1024).unwrap_or_default();
        let mut chunk: Vec<String> = text.lines().map(str::to_owned).collect();
        let wanted = lines - collected.len();
        if chunk.len() > wanted {
            chunk.drain(..chunk.len() - wanted);
        }
        chunk.append(&mut collected);
        collected = chunk;
    }
    collected.join("\n")
}

fn read_end(path: &Path, max_bytes: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    file.seek(SeekFrom::Start(size.saturating_sub(max_bytes)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn cap_rotates_and_keeps_the_newest_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("svc.log");
        let mut writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        for i in 0..100 {
            writeln!(writer, "line {i:03}").unwrap();
        }
        assert!(!enforce_cap(&log, 10_000).unwrap());
        assert!(enforce_cap(&log, 90).unwrap());
        assert_eq!(fs::metadata(&log).unwrap().len(), 0);
        assert_eq!(fs::metadata(rotated_path(&log)).unwrap().len(), 90);
        // The writer keeps appending at the (new) end of the truncated file.
        writeln!(writer, "after rotation").unwrap();
        assert_eq!(fs::read_to_string(&log).unwrap(), "after rotation\n");
        let tail = tail(&log, 3);
        assert_eq!(tail, "line 098\nline 099\nafter rotation");
    }

    #[test]
    fn tail_of_a_missing_log_is_empty() {
        assert_eq!(tail(Path::new("/nonexistent/sandpit.log"), 5), "");
    }
}
