//! How provider clients report their requests to external APIs, so the daemon can count them
//! in `converged_api_requests_total` without the clients depending on a metrics crate.

/// The result of one request, as a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiOutcome {
    Success,
    /// The peer answered with an error (4xx, or an API error code).
    Error,
    /// The peer asked us to slow down.
    Throttled,
    /// No answer: connection refused, reset or timed out.
    Unreachable,
}

impl ApiOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Error => "error",
            Self::Throttled => "throttled",
            Self::Unreachable => "unreachable",
        }
    }
}

/// Receives one record per request. `service` (`ec2`, `route53`, `marathon`, ...) and
/// `operation` (`DescribeInstances`, `list_apps`, ...) must be compile-time constants: they
/// become metric labels.
pub trait ApiRecorder: Send + Sync {
    fn record(
        &self,
        service: &'static str,
        operation: &'static str,
        outcome: ApiOutcome,
        seconds: f64,
    );
}
