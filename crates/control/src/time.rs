//! Injected time. The state machines only ever see [`Instant`] values handed to them.

use std::time::Duration;

/// A point in (virtual or real) time, in milliseconds since an arbitrary epoch chosen by the
/// driver. Tests start at 0 and advance by hand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// Milliseconds since the driver's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_and_since() {
        let t = Instant(1_000) + Duration::from_millis(2_500);
        assert_eq!(t, Instant(3_500));
        assert_eq!(
            t.saturating_since(Instant(1_000)),
            Duration::from_millis(2_500)
        );
        assert_eq!(Instant(5).saturating_since(t), Duration::ZERO);
    }
}
