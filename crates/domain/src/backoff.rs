//! Exponential restart backoff for crashed services.

use std::time::Duration;

/// Delay before restarting a crashed process: `initial * 2^(failures-1)`, capped at `max`. A
/// process that stayed up for `stable_after` is considered healthy again and its count resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The wait before restart number `consecutive_failures` (1 for the first crash).
    pub fn delay(&self, consecutive_failures: u32) -> Duration {
        let exponent = consecutive_failures.saturating_sub(1).min(20);
        self.initial.saturating_mul(1u32 << exponent).min(self.max)
    }

    /// The failure count after a process that ran for `uptime` exited.
    pub fn next_failures(&self, previous_failures: u32, uptime: Duration) -> u32 {
        if uptime >= self.stable_after {
            1
        } else {
            previous_failures.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let backoff = Backoff::default();
        let delays: Vec<u128> = (1..=10).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff.delay(u32::MAX), backoff.max);
    }

    #[test]
    fn a_stable_run_resets_the_count() {
        let backoff = Backoff::default();
        assert_eq!(backoff.next_failures(5, Duration::from_secs(1)), 6);
        assert_eq!(backoff.next_failures(5, Duration::from_secs(120)), 1);
    }
}
