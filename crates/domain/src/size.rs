//! Human byte sizes (`512MiB`, `2 GiB`, `1000000`) for limits in `sandpit.toml`.

use std::fmt;

use crate::quoted::quoted;

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is not a size: write a number of bytes or a number with a unit such as `512MiB` or `2GiB`", quoted(.0))]
pub struct ByteSizeError(String);

impl ByteSize {
    pub const KIB: u64 = 1024;
    pub const MIB: u64 = 1024 * 1024;
    pub const GIB: u64 = 1024 * 1024 * 1024;

    pub fn parse(raw: &str) -> Result<ByteSize, ByteSizeError> {
        let error = || ByteSizeError(raw.to_owned());
        let trimmed = raw.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let number: u64 = number.parse().map_err(|_| error())?;
        let multiplier = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "KB" | "kB" => Self::KIB,
            "MiB" | "M" | "MB" => Self::MIB,
            "GiB" | "G" | "GB" => Self::GIB,
            "TiB" | "T" | "TB" => Self::GIB * 1024,
            _ => return Err(error()),
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(error)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, size) in [("GiB", Self::GIB), ("MiB", Self::MIB), ("KiB", Self::KIB)] {
            if bytes >= size && bytes.is_multiple_of(size) {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        if bytes >= Self::MIB {
            return write!(f, "{:.1}MiB", bytes as f64 / Self::MIB as f64);
        }
        write!(f, "{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        let cases = [
            ("0", Some(0)),
            ("1000", Some(1000)),
            ("512MiB", Some(512 * ByteSize::MIB)),
            ("2 GiB", Some(2 * ByteSize::GIB)),
            ("4K", Some(4096)),
            ("2XB", None),
            ("GiB", None),
            ("-1", None),
            ("99999999999999999999GiB", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ByteSize::parse(input).ok().map(|s| s.0),
                expected,
                "{input}"
            );
        }
        assert_eq!(ByteSize(2 * ByteSize::GIB).to_string(), "2GiB");
    }
}
