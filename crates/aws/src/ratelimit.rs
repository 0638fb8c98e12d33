//! Token buckets shaped like AWS's published API limits, shared by every reconciler of the
//! process. The bucket arithmetic is pure (time is passed in); `RateLimiter::acquire` is the
//! only part that sleeps.
//!
//! A throttling answer empties the bucket it came from and halves its refill rate (down to a
//! sixteenth); every quiet `RECOVERY_STEP` doubles it back towards the configured rate. So one
//! `RequestLimitExceeded` slows every caller of that API, not just the one that saw it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::operation::Bucket;

/// How long the rate must stay free of throttling answers before it doubles back.
pub const RECOVERY_STEP: Duration = Duration::from_secs(5);
/// The slowest a bucket gets after repeated throttling: this share of its configured rate.
const MIN_SLOWDOWN: f64 = 1.0 / 16.0;

/// One bucket: up to `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketShape {
    pub burst: f64,
    pub per_second: f64,
}

impl BucketShape {
    pub const fn new(burst: f64, per_second: f64) -> Self {
        Self { burst, per_second }
    }

    fn scaled(self, share: f64) -> Self {
        Self {
            burst: (self.burst * share).max(1.0),
            per_second: self.per_second * share,
        }
    }
}

/// The rate each bucket allows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    pub ec2_describe: BucketShape,
    pub ec2_mutate: BucketShape,
    pub ec2_run_instances: BucketShape,
    pub route53: BucketShape,
}

impl RateLimits {
    /// AWS's published account limits: EC2 describe 100 burst / 20 per s, mutating 50 / 5,
    /// RunInstances 5 / 2; Route 53 as 50 / 10.
    pub const AWS_PUBLISHED: RateLimits = RateLimits {
        ec2_describe: BucketShape::new(100.0, 20.0),
        ec2_mutate: BucketShape::new(50.0, 5.0),
        ec2_run_instances: BucketShape::new(5.0, 2.0),
        route53: BucketShape::new(50.0, 10.0),
    };

    /// Every bucket at `share` of the published limits (a burst of at least one request).
    pub fn share_of_published(share: f64) -> RateLimits {
        let published = Self::AWS_PUBLISHED;
        RateLimits {
            ec2_describe: published.ec2_describe.scaled(share),
            ec2_mutate: published.ec2_mutate.scaled(share),
            ec2_run_instances: published.ec2_run_instances.scaled(share),
            route53: published.route53.scaled(share),
        }
    }

    fn shape(&self, bucket: Bucket) -> BucketShape {
        match bucket {
            Bucket::Ec2Describe => self.ec2_describe,
            Bucket::Ec2Mutate => self.ec2_mutate,
            Bucket::Ec2RunInstances => self.ec2_run_instances,
            Bucket::Route53 => self.route53,
        }
    }
}

impl Default for RateLimits {
    /// Half of the published limits: the other half is left for people and other tools using
    /// the same account.
    fn default() -> Self {
        Self::share_of_published(0.5)
    }
}

/// A bucket's state at a point in time.
#[derive(Debug, Clone, PartialEq)]
struct BucketState {
    shape: BucketShape,
    tokens: f64,
    /// The share of `shape.per_second` in force: 1 normally, halved by each throttle.
    slowdown: f64,
    refilled_at: Instant,
    /// When the slowdown last changed (a throttle, or a recovery step).
    slowed_at: Instant,
}

impl BucketState {
    fn new(shape: BucketShape, now: Instant) -> Self {
        Self {
            shape,
            tokens: shape.burst,
            slowdown: 1.0,
            refilled_at: now,
            slowed_at: now,
        }
    }

    fn rate(&self) -> f64 {
        self.shape.per_second * self.slowdown
    }

    fn refill(&mut self, now: Instant) {
        if self.slowdown < 1.0 {
            let quiet = now.saturating_duration_since(self.slowed_at);
            let steps = (quiet.as_secs_f64() / RECOVERY_STEP.as_secs_f64()).floor();
            if steps >= 1.0 {
                self.slowdown = (self.slowdown * 2f64.powf(steps)).min(1.0);
                self.slowed_at = now;
            }
        }
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate()).min(self.shape.burst);
        self.refilled_at = now;
    }

    /// Takes a token, or says how long until one is available.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err(Duration::from_secs_f64(missing / self.rate().max(1e-3)))
    }

    fn throttled(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
        self.slowdown = (self.slowdown / 2.0).max(MIN_SLOWDOWN);
        self.slowed_at = now;
    }
}

/// The buckets of one process.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    buckets: Mutex<HashMap<Bucket, BucketState>>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn with_bucket<T>(&self, bucket: Bucket, f: impl FnOnce(&mut BucketState) -> T) -> T {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = buckets
            .entry(bucket)
            .or_insert_with(|| BucketState::new(self.limits.shape(bucket), Instant::now()));
        f(state)
    }

    /// Waits until the bucket has a token, and takes it.
    pub async fn acquire(&self, bucket: Bucket) {
        loop {
            let now = Instant::now();
            match self.with_bucket(bucket, |state| state.try_take(now)) {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// A throttling answer came back from this bucket's API: slow everyone down.
    pub fn throttled(&self, bucket: Bucket) {
        let now = Instant::now();
        self.with_bucket(bucket, |state| state.throttled(now));
    }

    /// The share of the configured rate in force (1 when not slowed down).
    pub fn slowdown(&self, bucket: Bucket) -> f64 {
        let now = Instant::now();
        self.with_bucket(bucket, |state| {
            state.refill(now);
            state.slowdown
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Replays `steps` (offset from start, event) on one bucket; returns the outcome of each
    /// take as Ok or the wait it was told, rounded to milliseconds.
    fn replay(shape: BucketShape, steps: &[(u64, &str)]) -> Vec<Result<(), u128>> {
        let start = Instant::now();
        let mut state = BucketState::new(shape, start);
        let mut outcomes = Vec::new();
        for (at, event) in steps {
            let now = start + ms(*at);
            match *event {
                "take" => outcomes.push(state.try_take(now).map_err(|wait| wait.as_millis())),
                "throttle" => state.throttled(now),
                other => panic!("unknown event {other}"),
            }
        }
        outcomes
    }

    #[test]
    fn buckets_allow_the_burst_then_the_rate() {
        type Case = (
            &'static str,
            BucketShape,
            Vec<(u64, &'static str)>,
            Vec<Result<(), u128>>,
        );
        let cases: [Case; 4] = [
            (
                "burst of two, then wait for the refill",
                BucketShape::new(2.0, 10.0),
                vec![(0, "take"), (0, "take"), (0, "take"), (100, "take")],
                vec![Ok(()), Ok(()), Err(100), Ok(())],
            ),
            (
                "a throttle empties the bucket and halves the rate",
                BucketShape::new(5.0, 10.0),
                vec![(0, "throttle"), (0, "take"), (200, "take")],
                vec![Err(200), Ok(())],
            ),
            (
                "repeated throttles slow down to a sixteenth, no further",
                BucketShape::new(5.0, 16.0),
                vec![
                    (0, "throttle"),
                    (0, "throttle"),
                    (0, "throttle"),
                    (0, "throttle"),
                    (0, "throttle"),
                    (0, "take"),
                ],
                vec![Err(1000)],
            ),
            (
                "a quiet recovery step doubles the rate back",
                BucketShape::new(1.0, 10.0),
                vec![(0, "throttle"), (5000, "take"), (5000, "take")],
                vec![Ok(()), Err(100)],
            ),
        ];
        for (name, shape, steps, want) in cases {
            assert_eq!(replay(shape, &steps), want, "{name}");
        }
    }

    #[test]
    fn defaults_leave_half_of_the_published_limits() {
        let limits = RateLimits::default();
        assert_eq!(limits.ec2_describe, BucketShape::new(50.0, 10.0));
        assert_eq!(limits.ec2_mutate, BucketShape::new(25.0, 2.5));
        assert_eq!(limits.ec2_run_instances, BucketShape::new(2.5, 1.0));
        assert_eq!(limits.route53, BucketShape::new(25.0, 5.0));
        assert_eq!(
            RateLimits::share_of_published(0.01).ec2_run_instances.burst,
            1.0,
            "a burst never drops below one request"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_slows_every_caller_of_the_bucket() {
        let limiter = RateLimiter::new(RateLimits {
            ec2_describe: BucketShape::new(1.0, 10.0),
            ..RateLimits::AWS_PUBLISHED
        });
        limiter.acquire(Bucket::Ec2Describe).await;
        limiter.throttled(Bucket::Ec2Describe);
        assert_eq!(limiter.slowdown(Bucket::Ec2Describe), 0.5);
        assert_eq!(
            limiter.slowdown(Bucket::Route53),
            1.0,
            "other APIs are unaffected"
        );
        let started = Instant::now();
        limiter.acquire(Bucket::Ec2Describe).await;
        limiter.acquire(Bucket::Ec2Describe).await;
        assert!(started.elapsed() >= ms(400), "{:?}", started.elapsed());
        tokio::time::sleep(RECOVERY_STEP).await;
        assert_eq!(limiter.slowdown(Bucket::Ec2Describe), 1.0);
    }
}
