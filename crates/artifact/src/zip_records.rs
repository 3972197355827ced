//! The byte layout of the zip records an artifact is made of (local headers, central directory,
//! end records), pure: the caller knows every entry's crc and sizes before writing its header,
//! so nothing is patched afterwards and the archive can be hashed as it streams out.
//!
//! The layout is the one the `zip` crate's writer produces for the same entries (a test holds
//! the two equal), with zip64 fields only where a size or offset needs them (APPNOTE 4.5.3).

/// Sizes and offsets from this value on do not fit a 32-bit field and go to zip64 fields.
const ZIP64_THRESHOLD: u64 = u32::MAX as u64;
/// Entry counts from this value on go to the zip64 end record.
const ZIP64_ENTRY_THRESHOLD: usize = u16::MAX as usize;

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const ZIP64_END_SIGNATURE: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const END_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_EXTRA_TAG: u16 = 0x0001;
/// "Made by" system: Unix, so readers take the mode from the external attributes.
const SYSTEM_UNIX: u16 = 3 << 8;
/// MS-DOS time and date of 1980-01-01 00:00:00, the earliest a zip can say.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;
/// General purpose flag bit 11: the name is UTF-8.
const FLAG_UTF8_NAME: u16 = 1 << 11;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Stored,
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// Everything the headers say about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryRecord {
    /// The stored name (`/`-separated; directories end with `/`).
    pub name: String,
    pub method: Method,
    /// Full Unix mode including the file type bits (`0o100644`, `0o040755`, `0o120777`).
    pub mode: u32,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Where the entry's local header starts in the archive.
    pub offset: u64,
}

impl EntryRecord {
    fn sizes_need_zip64(&self) -> bool {
        self.uncompressed_size >= ZIP64_THRESHOLD || self.compressed_size >= ZIP64_THRESHOLD
    }

    fn offset_needs_zip64(&self) -> bool {
        self.offset >= ZIP64_THRESHOLD
    }

    /// PKZIP version needed to extract (APPNOTE 4.4.3.2).
    fn version_needed(&self) -> u16 {
        let method = match self.method {
            Method::Stored => 10,
            Method::Deflated => 20,
        };
        let feature = if self.sizes_need_zip64() || self.offset_needs_zip64() {
            45
        } else if self.mode & 0o170000 == 0o040000 {
            20
        } else {
            10
        };
        method.max(feature)
    }

    fn flags(&self) -> u16 {
        if self.name.is_ascii() {
            0
        } else {
            FLAG_UTF8_NAME
        }
    }

    /// The local file header, written just before the entry's data.
    pub(crate) fn local_header(&self) -> Vec<u8> {
        let zip64 = self.sizes_need_zip64();
        let mut extra = Vec::new();
        if zip64 {
            push_u16(&mut extra, ZIP64_EXTRA_TAG);
            push_u16(&mut extra, 16);
            push_u64(&mut extra, self.uncompressed_size);
            push_u64(&mut extra, self.compressed_size);
        }
        let (compressed, uncompressed) = if zip64 {
            (u32::MAX, u32::MAX)
        } else {
            (self.compressed_size as u32, self.uncompressed_size as u32)
        };
        let mut header = Vec::with_capacity(30 + self.name.len() + extra.len());
        push_u32(&mut header, LOCAL_HEADER_SIGNATURE);
        push_u16(&mut header, self.version_needed());
        push_u16(&mut header, self.flags());
        push_u16(&mut header, self.method.code());
        push_u16(&mut header, DOS_TIME);
        push_u16(&mut header, DOS_DATE);
        push_u32(&mut header, self.crc32);
        push_u32(&mut header, compressed);
        push_u32(&mut header, uncompressed);
        push_u16(&mut header, name_length(&self.name));
        push_u16(&mut header, extra.len() as u16);
        header.extend_from_slice(self.name.as_bytes());
        header.extend_from_slice(&extra);
        header
    }

    /// The entry's central directory header.
    fn central_header(&self) -> Vec<u8> {
        let zip64_sizes = self.sizes_need_zip64();
        let zip64_offset = self.offset_needs_zip64();
        let mut extra = Vec::new();
        if zip64_sizes || zip64_offset {
            let fields = 8 * (2 * u16::from(zip64_sizes) + u16::from(zip64_offset));
            push_u16(&mut extra, ZIP64_EXTRA_TAG);
            push_u16(&mut extra, fields);
            if zip64_sizes {
                push_u64(&mut extra, self.uncompressed_size);
                push_u64(&mut extra, self.compressed_size);
            }
            if zip64_offset {
                push_u64(&mut extra, self.offset);
            }
        }
        let (compressed, uncompressed) = if zip64_sizes {
            (u32::MAX, u32::MAX)
        } else {
            (self.compressed_size as u32, self.uncompressed_size as u32)
        };
        let version_needed = self.version_needed();
        let mut header = Vec::with_capacity(46 + self.name.len() + extra.len());
        push_u32(&mut header, CENTRAL_HEADER_SIGNATURE);
        push_u16(&mut header, SYSTEM_UNIX | version_needed);
        push_u16(&mut header, version_needed);
        push_u16(&mut header, self.flags());
        push_u16(&mut header, self.method.code());
        push_u16(&mut header, DOS_TIME);
        push_u16(&mut header, DOS_DATE);
        push_u32(&mut header, self.crc32);
        push_u32(&mut header, compressed);
        push_u32(&mut header, uncompressed);
        push_u16(&mut header, name_length(&self.name));
        push_u16(&mut header, extra.len() as u16);
        push_u16(&mut header, 0); // comment length
        push_u16(&mut header, 0); // disk number
        push_u16(&mut header, 0); // internal attributes
        push_u32(&mut header, self.mode << 16);
        push_u32(&mut header, self.offset.min(ZIP64_THRESHOLD) as u32);
        header.extend_from_slice(self.name.as_bytes());
        header.extend_from_slice(&extra);
        header
    }
}

/// The longest name a zip header can hold, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = u16::MAX as usize;

fn name_length(name: &str) -> u16 {
    // The walk refuses longer names before anything is written (see `MAX_NAME_BYTES`).
    u16::try_from(name.len()).expect("entry names are at most MAX_NAME_BYTES long")
}

/// The central directory and end records that close an archive whose entries (in archive order)
/// are `entries` and whose central directory starts at `central_start`.
pub(crate) fn central_directory_and_end(entries: &[EntryRecord], central_start: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut version_needed = 10;
    for entry in entries {
        out.extend_from_slice(&entry.central_header());
        version_needed = version_needed.max(entry.version_needed());
    }
    let central_size = out.len() as u64;
    let count = entries.len() as u64;
    let zip64 = entries.len() >= ZIP64_ENTRY_THRESHOLD
        || central_start >= ZIP64_THRESHOLD
        || central_size >= ZIP64_THRESHOLD;
    if zip64 {
        let zip64_end_offset = central_start + central_size;
        push_u32(&mut out, ZIP64_END_SIGNATURE);
        push_u64(&mut out, 44); // size of the rest of this record
        push_u16(&mut out, version_needed.max(45));
        push_u16(&mut out, version_needed.max(45));
        push_u32(&mut out, 0); // this disk
        push_u32(&mut out, 0); // disk with the central directory
        push_u64(&mut out, count);
        push_u64(&mut out, count);
        push_u64(&mut out, central_size);
        push_u64(&mut out, central_start);
        push_u32(&mut out, ZIP64_LOCATOR_SIGNATURE);
        push_u32(&mut out, 0); // disk with the zip64 end record
        push_u64(&mut out, zip64_end_offset);
        push_u32(&mut out, 1); // number of disks
    }
    let count16 = entries.len().min(ZIP64_ENTRY_THRESHOLD) as u16;
    push_u32(&mut out, END_SIGNATURE);
    push_u16(&mut out, 0); // this disk
    push_u16(&mut out, 0); // disk with the central directory
    push_u16(&mut out, count16);
    push_u16(&mut out, count16);
    push_u32(&mut out, central_size.min(ZIP64_THRESHOLD) as u32);
    push_u32(&mut out, central_start.min(ZIP64_THRESHOLD) as u32);
    push_u16(&mut out, 0); // comment length
    out
}

fn push_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn push_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, size: u64, offset: u64) -> EntryRecord {
        EntryRecord {
            name: name.to_owned(),
            method: Method::Deflated,
            mode: 0o100644,
            crc32: 0xdead_beef,
            compressed_size: size,
            uncompressed_size: size,
            offset,
        }
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn u64_at(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn small_entries_have_no_extra_field() {
        let entry = record("a.txt", 10, 0);
        let local = entry.local_header();
        assert_eq!(local.len(), 30 + 5);
        assert_eq!(u16_at(&local, 28), 0, "no extra field");
        assert_eq!(u32_at(&local, 18), 10, "compressed size");
        let central = entry.central_header();
        assert_eq!(central.len(), 46 + 5);
        assert_eq!(u16_at(&central, 4), 0x0314, "made by Unix, version 2.0");
        assert_eq!(u32_at(&central, 38), 0o100644 << 16);
    }

    #[test]
    fn sizes_from_four_gib_move_to_the_zip64_field() {
        let entry = record("big", ZIP64_THRESHOLD, 0);
        let local = entry.local_header();
        assert_eq!(u16_at(&local, 4), 45, "version needed");
        assert_eq!(u32_at(&local, 18), u32::MAX);
        assert_eq!(u32_at(&local, 22), u32::MAX);
        assert_eq!(
            u16_at(&local, 28),
            20,
            "extra field: tag, length, two sizes"
        );
        assert_eq!(u16_at(&local, 33), ZIP64_EXTRA_TAG);
        assert_eq!(u64_at(&local, 37), ZIP64_THRESHOLD);
        assert_eq!(u64_at(&local, 45), ZIP64_THRESHOLD);
        let below = record("big", ZIP64_THRESHOLD - 1, 0).local_header();
        assert_eq!(u16_at(&below, 28), 0);
    }

    #[test]
    fn offsets_from_four_gib_go_to_the_central_zip64_field_only() {
        let entry = record("late", 1, ZIP64_THRESHOLD + 7);
        assert_eq!(u16_at(&entry.local_header(), 28), 0);
        let central = entry.central_header();
        assert_eq!(u32_at(&central, 42), u32::MAX);
        assert_eq!(u16_at(&central, 30), 12, "tag, length, offset");
        assert_eq!(u64_at(&central, 46 + 4 + 4), ZIP64_THRESHOLD + 7);
    }

    #[test]
    fn the_end_record_counts_entries_and_locates_the_directory() {
        let entries = [record("a", 1, 0), record("b", 1, 36)];
        let tail = central_directory_and_end(&entries, 72);
        let end = &tail[tail.len() - 22..];
        assert_eq!(u32_at(end, 0), END_SIGNATURE);
        assert_eq!(u16_at(end, 10), 2);
        assert_eq!(u32_at(end, 12) as usize, tail.len() - 22);
        assert_eq!(u32_at(end, 16), 72);

        let far = central_directory_and_end(&entries, ZIP64_THRESHOLD);
        let locator = &far[far.len() - 22 - 20..far.len() - 22];
        assert_eq!(u32_at(locator, 0), ZIP64_LOCATOR_SIGNATURE);
        let zip64_end_offset = u64_at(locator, 8);
        assert_eq!(
            zip64_end_offset,
            ZIP64_THRESHOLD + (far.len() - 22 - 20 - 56) as u64
        );
    }

    #[test]
    fn non_ascii_names_are_flagged_utf8() {
        assert_eq!(
            u16_at(&record("café", 1, 0).local_header(), 6),
            FLAG_UTF8_NAME
        );
        assert_eq!(u16_at(&record("cafe", 1, 0).local_header(), 6), 0);
    }
}
