//! The per-socket message rate limit: a token bucket on tokio's clock, so
//! tests drive it with `tokio::time::pause()`/`advance()`.

use std::time::Duration;

use tokio::time::Instant;

/// Refills `rate` tokens a second up to `burst`; every message takes one.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32) -> Self {
        TokenBucket {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    pub fn try_take(&mut self) -> Result<(), Duration> {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.rate;
            Err(Duration::from_secs_f64(wait).max(Duration::from_millis(1)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let mut b = TokenBucket::new(10.0, 20);
        for i in 0..20 {
            assert!(b.try_take().is_ok(), "message {i} of the burst");
        }
        let wait = b.try_take().unwrap_err();
        assert_eq!(wait.as_millis(), 100, "one token every 100 ms at 10/s");
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(b.try_take().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn refill_is_capped_at_the_burst() {
        let mut b = TokenBucket::new(10.0, 5);
        for _ in 0..5 {
            b.try_take().unwrap();
        }
        tokio::time::advance(Duration::from_secs(3600)).await;
        for _ in 0..5 {
            assert!(b.try_take().is_ok());
        }
        assert!(
            b.try_take().is_err(),
            "an hour of silence buys only the burst"
        );
    }
}
