//! The AWS SDK clients and the one door every request goes through (I/O): credentials from the
//! standard chain, the region of the desired state, an optional endpoint override, the token
//! buckets, the request metric, error classification and retries of refused requests.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use converged_core::ErrorClass;
use converged_core::api::{ApiOutcome, ApiRecorder};
use converged_core::secret::Secret;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::AwsSettings;
use crate::error::{ApiFailure, AwsError};
use crate::operation::Operation;
use crate::ratelimit::RateLimiter;

/// Attempts per request when the answer is "slow down" (each waits for the slowed bucket).
const MAX_ATTEMPTS: u32 = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// An access key pair given explicitly (tests, the sandbox) instead of the standard chain.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

/// The SDK clients for one region.
#[derive(Clone)]
pub(crate) struct Clients {
    region: String,
    pub ec2: aws_sdk_ec2::Client,
    pub route53: aws_sdk_route53::Client,
}

/// Shared by the three AWS reconcilers of a process: one set of clients, one set of buckets.
pub struct AwsContext {
    settings: AwsSettings,
    limiter: RateLimiter,
    recorder: Arc<dyn ApiRecorder>,
    clients: Mutex<Option<Clients>>,
}

impl AwsContext {
    pub fn new(settings: AwsSettings, recorder: Arc<dyn ApiRecorder>) -> Self {
        Self {
            limiter: RateLimiter::new(settings.limits),
            settings,
            recorder,
            clients: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The clients for `region`, built on first use (observation) and kept.
    pub(crate) async fn clients(&self, region: &str) -> Clients {
        let mut slot = self.clients.lock().await;
        if let Some(clients) = slot.as_ref().filter(|c| c.region == region) {
            return clients.clone();
        }
        let clients = self.connect(region).await;
        *slot = Some(clients.clone());
        clients
    }

    /// The clients of the region last observed: actions follow an observation.
    pub(crate) async fn current(&self) -> Result<Clients, AwsError> {
        self.clients
            .lock()
            .await
            .clone()
            .ok_or(AwsError::NotObserved)
    }

    async fn connect(&self, region: &str) -> Clients {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(url) = &self.settings.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(credentials) = &self.settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.expose().to_owned(),
                None,
                None,
                "converged-static",
            ));
        }
        let config = loader.load().await;
        tracing::debug!(
            region,
            endpoint_override = self.settings.endpoint_url.is_some(),
            "connected the AWS clients"
        );
        Clients {
            region: region.to_owned(),
            ec2: aws_sdk_ec2::Client::new(&config),
            route53: aws_sdk_route53::Client::new(&config),
        }
    }

    /// Sends one request through the operation's bucket, records it, and sends it again
    /// while AWS says "slow down" (up to `MAX_ATTEMPTS`) or, for requests safe to repeat, while
    /// it does not answer. Everything else comes back classified.
    pub(crate) async fn call<T, E, Fut>(
        &self,
        operation: Operation,
        mut send: impl FnMut() -> Fut,
    ) -> Result<T, ApiFailure>
    where
        Fut: Future<Output = Result<T, SdkError<E>>>,
        E: ProvideErrorMetadata,
    {
        let bucket = operation.bucket();
        let mut attempt = 1;
        loop {
            self.limiter.acquire(bucket).await;
            let started = Instant::now();
            let result = send().await;
            let seconds = started.elapsed().as_secs_f64();
            let failure = match result {
                Ok(value) => {
                    self.record(operation, ApiOutcome::Success, seconds);
                    return Ok(value);
                }
                Err(err) => classify(operation, &err),
            };
            self.record(operation, failure.outcome, seconds);
            let again = match failure.class {
                ErrorClass::Throttled => {
                    self.limiter.throttled(bucket);
                    true
                }
                ErrorClass::Transient => operation.retry_unanswered(),
                ErrorClass::Invalid | ErrorClass::Unsafe => false,
            };
            if !again || attempt >= MAX_ATTEMPTS {
                return Err(failure);
            }
            tracing::debug!(
                service = operation.service(),
                operation = operation.name(),
                attempt,
                class = failure.class.as_str(),
                "sending again after a refused request"
            );
            attempt += 1;
        }
    }

    fn record(&self, operation: Operation, outcome: ApiOutcome, seconds: f64) {
        self.recorder
            .record(operation.service(), operation.name(), outcome, seconds);
    }
}

const THROTTLING_CODES: [&str; 9] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "SlowDown",
];

/// Answers that mean "not now" rather than "never".
const TRANSIENT_CODES: [&str; 7] = [
    "IncorrectState",
    "IncorrectInstanceState",
    "InsufficientInstanceCapacity",
    "DependencyViolation",
    "InternalError",
    "ServiceUnavailable",
    "Unavailable",
];

/// Classifies an SDK error: throttling codes (or HTTP 429) are throttled, server errors and
/// known "try later" codes transient, anything else AWS answered invalid (access denied, bad
/// parameters), and no answer at all transient.
fn classify<E: ProvideErrorMetadata>(operation: Operation, err: &SdkError<E>) -> ApiFailure {
    let (class, outcome, code, detail) = match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = err.code().map(str::to_owned);
            let message = err.message().unwrap_or("no message");
            let detail = format!(
                "{} (HTTP {status}): {message}",
                code.as_deref().unwrap_or("an error")
            );
            let class = match code.as_deref() {
                Some(code) if THROTTLING_CODES.contains(&code) => ErrorClass::Throttled,
                _ if status == 429 => ErrorClass::Throttled,
                Some(code) if TRANSIENT_CODES.contains(&code) => ErrorClass::Transient,
                _ if status >= 500 => ErrorClass::Transient,
                _ => ErrorClass::Invalid,
            };
            let outcome = if class == ErrorClass::Throttled {
                ApiOutcome::Throttled
            } else {
                ApiOutcome::Error
            };
            (class, outcome, code, detail)
        }
        SdkError::ResponseError(response) => {
            let status = response.raw().status().as_u16();
            let class = if status == 429 {
                ErrorClass::Throttled
            } else {
                ErrorClass::Transient
            };
            let outcome = if class == ErrorClass::Throttled {
                ApiOutcome::Throttled
            } else {
                ApiOutcome::Error
            };
            (
                class,
                outcome,
                None,
                format!("an unreadable response (HTTP {status})"),
            )
        }
        SdkError::TimeoutError(_) => (
            ErrorClass::Transient,
            ApiOutcome::Unreachable,
            None,
            "nothing within the timeout".to_owned(),
        ),
        SdkError::DispatchFailure(failure) => (
            ErrorClass::Transient,
            ApiOutcome::Unreachable,
            None,
            format!(
                "nothing: the request could not be sent ({})",
                if failure.is_timeout() {
                    "timed out"
                } else if failure.is_io() {
                    "connection failed"
                } else {
                    "connector error"
                }
            ),
        ),
        SdkError::ConstructionFailure(_) => (
            ErrorClass::Invalid,
            ApiOutcome::Error,
            None,
            "nothing: the request could not be built".to_owned(),
        ),
        _ => (
            ErrorClass::Transient,
            ApiOutcome::Error,
            None,
            "an unknown SDK error".to_owned(),
        ),
    };
    ApiFailure {
        operation,
        code,
        detail,
        class,
        outcome,
    }
}
