//! Token buckets: how many client events a socket, or a whole tenant, may send per
//! second before the host stops them, so a flood costs the guest nothing.

use std::time::Instant;

/// Allows `rate` events per second, with bursts of up to one second's worth.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32) -> TokenBucket {
        TokenBucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    /// [`TokenBucket::allow`] at `now`, read once for several buckets.
    pub(crate) fn allow_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket {
            rate: 10.0,
            tokens: 10.0,
            last: start,
        };
        assert_eq!((0..15).filter(|_| bucket.allow_at(start)).count(), 10);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..15).filter(|_| bucket.allow_at(later)).count(), 5);
        let much_later = later + Duration::from_secs(60);
        assert_eq!(
            (0..15).filter(|_| bucket.allow_at(much_later)).count(),
            10,
            "bursts are capped"
        );
    }
}
