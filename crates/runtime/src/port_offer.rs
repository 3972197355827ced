//! Which loopback ports sandpit hands out (to services, the model endpoint): free ones *outside*
//! the kernel's ephemeral range. A port is chosen some time before its process binds it; a port
//! from the ephemeral range could meanwhile become the local end of any outgoing connection on the
//! machine, or be given to someone's bind to port 0, and the service would find it taken. Ports
//! below (or above) that range are only ever taken by someone asking for them by number.

use std::hash::{BuildHasher as _, Hasher as _};
use std::io;
use std::net::TcpListener;
use std::ops::RangeInclusive;

/// Where the kernel picks ports for outgoing connections and binds to port 0, and the default
/// when it cannot be read.
const EPHEMERAL_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);
/// The lowest port handed out: above the well-known and most registered fixed ports.
const LOWEST: u16 = 10_000;
/// A range smaller than this is not worth staying in: fall back to the kernel's own choice.
const ENOUGH: u32 = 1024;

/// The kernel's ephemeral range, from `ip_local_port_range` text (`"32768\t60999"`).
pub fn parse_ephemeral(text: &str) -> Option<(u16, u16)> {
    let mut numbers = text.split_whitespace().map(str::parse::<u16>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(low)), Some(Ok(high))) if low <= high => Some((low, high)),
        _ => None,
    }
}

/// The ports to hand out given the ephemeral range: below it when there is room, else above it;
/// `None` when neither side has [`ENOUGH`] ports (then the kernel chooses).
pub fn service_range(ephemeral: (u16, u16)) -> Option<RangeInclusive<u16>> {
    let (low, high) = ephemeral;
    if u32::from(low) >= u32::from(LOWEST) + ENOUGH {
        return Some(LOWEST..=low - 1);
    }
    if u32::from(u16::MAX) >= u32::from(high) + ENOUGH {
        return Some(high + 1..=u16::MAX);
    }
    None
}

/// A port free right now (bound and let go) outside the ephemeral range, starting the search at
/// a random place so concurrent callers rarely try the same ports; the kernel's own choice when
/// the range is too small or full.
pub fn offer() -> io::Result<u16> {
    let ephemeral = std::fs::read_to_string(EPHEMERAL_FILE)
        .ok()
        .and_then(|text| parse_ephemeral(&text))
        .unwrap_or(DEFAULT_EPHEMERAL);
    let Some(range) = service_range(ephemeral) else {
        return kernel_choice();
    };
    let (low, high) = (u32::from(*range.start()), u32::from(*range.end()));
    let size = high - low + 1;
    let start = random() % size;
    for step in 0..size {
        let port = (low + (start + step) % size) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    kernel_choice()
}

fn kernel_choice() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A random number from the standard library's per-process random hash keys.
fn random() -> u32 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_handed_out_outside_the_ephemeral_range() {
        // (ip_local_port_range, range handed out)
        type Case = ((u16, u16), Option<RangeInclusive<u16>>);
        let cases: &[Case] = &[
            ((32768, 60999), Some(10_000..=32767)),
            ((49152, 65535), Some(10_000..=49151)),
            // No room below: above.
            ((1024, 40000), Some(40001..=65535)),
            // No room on either side: the kernel chooses.
            ((1024, 65000), None),
            ((11000, 65000), None),
        ];
        for (ephemeral, expected) in cases {
            assert_eq!(service_range(*ephemeral), *expected, "{ephemeral:?}");
        }
    }

    #[test]
    fn the_ephemeral_range_is_read_from_the_kernels_text() {
        assert_eq!(parse_ephemeral("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_ephemeral("1024 65535"), Some((1024, 65535)));
        assert_eq!(parse_ephemeral("60999 32768"), None);
        assert_eq!(parse_ephemeral("garbage"), None);
        assert_eq!(parse_ephemeral(""), None);
    }

    #[test]
    fn an_offered_port_is_free_and_outside_this_machines_ephemeral_range() {
        let ephemeral = std::fs::read_to_string(EPHEMERAL_FILE)
            .ok()
            .and_then(|text| parse_ephemeral(&text))
            .unwrap_or(DEFAULT_EPHEMERAL);
        let port = offer().unwrap();
        if let Some(range) = service_range(ephemeral) {
            assert!(range.contains(&port), "{port} outside {range:?}");
        }
        // Free: it can be bound now.
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
