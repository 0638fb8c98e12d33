//! Prometheus metrics (prefix `converged_`, bounded labels only) and their text exposition.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::error::DaemonError;

const NAMESPACE: &str = "converged";

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub cycles_total: IntCounter,
    pub cycle_duration_seconds: Histogram,
    pub reconcile_total: IntCounterVec,
    pub actions_total: IntCounterVec,
    pub resources: IntGaugeVec,
    pub drift_detected_total: IntCounterVec,
    pub api_requests_total: IntCounterVec,
    pub api_request_duration_seconds: HistogramVec,
    pub desired_state_valid: IntGauge,
    pub desired_state_revision_timestamp_seconds: Gauge,
    pub last_successful_cycle_timestamp_seconds: Gauge,
    pub paused: IntGauge,
    pub audit_log_writable: IntGauge,
    pub audit_unrecorded_outcomes: IntGauge,
    pub audit_write_failures_total: IntCounterVec,
    log_lines_dropped_total: DroppedLogLines,
}

impl Metrics {
    pub fn new() -> Result<Self, DaemonError> {
        let registry = Registry::new();
        let opts = |name: &'static str, help: &str| Opts::new(name, help).namespace(NAMESPACE);
        let metrics = Self {
            cycles_total: IntCounter::with_opts(opts("cycles_total", "Reconcile cycles run."))
                .map_err(register_error("cycles_total"))?,
            cycle_duration_seconds: Histogram::with_opts(
                HistogramOpts::new("cycle_duration_seconds", "Wall time of a reconcile cycle.")
                    .namespace(NAMESPACE)
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            )
            .map_err(register_error("cycle_duration_seconds"))?,
            reconcile_total: IntCounterVec::new(
                opts("reconcile_total", "Observe-and-plan passes per kind, by result."),
                &["kind", "result"],
            )
            .map_err(register_error("reconcile_total"))?,
            actions_total: IntCounterVec::new(
                opts("actions_total", "Actions applied, by kind, action and result."),
                &["kind", "action", "result"],
            )
            .map_err(register_error("actions_total"))?,
            resources: IntGaugeVec::new(
                opts("resources", "Resources by kind and condition after the last cycle."),
                &["kind", "condition"],
            )
            .map_err(register_error("resources"))?,
            drift_detected_total: IntCounterVec::new(
                opts("drift_detected_total", "Resources found out of sync after having been in sync."),
                &["kind"],
            )
            .map_err(register_error("drift_detected_total"))?,
            api_requests_total: IntCounterVec::new(
                opts("api_requests_total", "Requests to external APIs, by service, operation and outcome."),
                &["service", "operation", "outcome"],
            )
            .map_err(register_error("api_requests_total"))?,
            api_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new("api_request_duration_seconds", "Latency of requests to external APIs.")
                    .namespace(NAMESPACE),
                &["service"],
            )
            .map_err(register_error("api_request_duration_seconds"))?,
            desired_state_valid: IntGauge::with_opts(opts(
                "desired_state_valid",
                "1 when the desired state on disk is valid, 0 when the last good one is in force.",
            ))
            .map_err(register_error("desired_state_valid"))?,
            desired_state_revision_timestamp_seconds: Gauge::with_opts(opts(
                "desired_state_revision_timestamp_seconds",
                "When the desired-state revision in force was first loaded (Unix time).",
            ))
            .map_err(register_error("desired_state_revision_timestamp_seconds"))?,
            last_successful_cycle_timestamp_seconds: Gauge::with_opts(opts(
                "last_successful_cycle_timestamp_seconds",
                "When the last cycle with a valid desired state and no observe error ended (Unix time).",
            ))
            .map_err(register_error("last_successful_cycle_timestamp_seconds"))?,
            paused: IntGauge::with_opts(opts("paused", "1 while acting is paused."))
                .map_err(register_error("paused"))?,
            audit_log_writable: IntGauge::with_opts(opts(
                "audit_log_writable",
                "1 while the audit log takes writes; 0 while it does not and actions are refused.",
            ))
            .map_err(register_error("audit_log_writable"))?,
            audit_unrecorded_outcomes: IntGauge::with_opts(opts(
                "audit_unrecorded_outcomes",
                "Outcomes of actions that ran but are not in the audit log yet.",
            ))
            .map_err(register_error("audit_unrecorded_outcomes"))?,
            audit_write_failures_total: IntCounterVec::new(
                opts("audit_write_failures_total", "Audit lines that could not be written, by event (attempt, outcome)."),
                &["event"],
            )
            .map_err(register_error("audit_write_failures_total"))?,
            log_lines_dropped_total: DroppedLogLines::new(opts(
                "log_lines_dropped_total",
                "Log lines that could not be written (stderr closed, disk full) and were dropped.",
            ))
            .map_err(register_error("log_lines_dropped_total"))?,
            registry,
        };
        metrics.register_all()?;
        // Writable until a write fails; both events counted from zero.
        metrics.audit_log_writable.set(1);
        for event in ["attempt", "outcome"] {
            metrics
                .audit_write_failures_total
                .with_label_values(&[event]);
        }
        Ok(metrics)
    }

    fn register_all(&self) -> Result<(), DaemonError> {
        let collectors: [(&'static str, Box<dyn prometheus::core::Collector>); 16] = [
            ("cycles_total", Box::new(self.cycles_total.clone())),
            (
                "cycle_duration_seconds",
                Box::new(self.cycle_duration_seconds.clone()),
            ),
            ("reconcile_total", Box::new(self.reconcile_total.clone())),
            ("actions_total", Box::new(self.actions_total.clone())),
            ("resources", Box::new(self.resources.clone())),
            (
                "drift_detected_total",
                Box::new(self.drift_detected_total.clone()),
            ),
            (
                "api_requests_total",
                Box::new(self.api_requests_total.clone()),
            ),
            (
                "api_request_duration_seconds",
                Box::new(self.api_request_duration_seconds.clone()),
            ),
            (
                "desired_state_valid",
                Box::new(self.desired_state_valid.clone()),
            ),
            (
                "desired_state_revision_timestamp_seconds",
                Box::new(self.desired_state_revision_timestamp_seconds.clone()),
            ),
            (
                "last_successful_cycle_timestamp_seconds",
                Box::new(self.last_successful_cycle_timestamp_seconds.clone()),
            ),
            ("paused", Box::new(self.paused.clone())),
            (
                "audit_log_writable",
                Box::new(self.audit_log_writable.clone()),
            ),
            (
                "audit_unrecorded_outcomes",
                Box::new(self.audit_unrecorded_outcomes.clone()),
            ),
            (
                "audit_write_failures_total",
                Box::new(self.audit_write_failures_total.clone()),
            ),
            (
                "log_lines_dropped_total",
                Box::new(self.log_lines_dropped_total.clone()),
            ),
        ];
        for (name, collector) in collectors {
            self.registry
                .register(collector)
                .map_err(register_error(name))?;
        }
        #[cfg(target_os = "linux")]
        self.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .map_err(register_error("process"))?;
        Ok(())
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(err) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %err, "failed to encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// A counter whose count lives in `telemetry`: logging starts, and may drop lines, before any
/// `Metrics` exists, so the value is read at each scrape.
#[derive(Clone)]
struct DroppedLogLines {
    opts: Opts,
    desc: Desc,
}

impl DroppedLogLines {
    fn new(opts: Opts) -> Result<Self, prometheus::Error> {
        let desc = IntCounter::with_opts(opts.clone())?
            .desc()
            .into_iter()
            .next()
            .cloned()
            .ok_or_else(|| prometheus::Error::Msg("a counter without a description".into()))?;
        Ok(Self { opts, desc })
    }
}

impl Collector for DroppedLogLines {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // The options were checked in `new`, so building the counter again cannot fail.
        IntCounter::with_opts(self.opts.clone())
            .map(|counter| {
                counter.inc_by(crate::telemetry::dropped_lines());
                counter.collect()
            })
            .unwrap_or_default()
    }
}

fn register_error(name: &'static str) -> impl Fn(prometheus::Error) -> DaemonError {
    move |source| DaemonError::RegisterMetric { name, source }
}

impl converged_core::api::ApiRecorder for Metrics {
    fn record(
        &self,
        service: &'static str,
        operation: &'static str,
        outcome: converged_core::api::ApiOutcome,
        seconds: f64,
    ) {
        self.api_requests_total
            .with_label_values(&[service, operation, outcome.as_str()])
            .inc();
        self.api_request_duration_seconds
            .with_label_values(&[service])
            .observe(seconds);
    }
}

#[cfg(test)]
mod tests {
    use converged_core::api::{ApiOutcome, ApiRecorder};

    use super::*;

    #[test]
    fn dropped_log_lines_are_exposed_without_labels() {
        let text = Metrics::new().unwrap().render();
        assert!(
            text.contains(&format!(
                "converged_log_lines_dropped_total {}",
                crate::telemetry::dropped_lines()
            )),
            "{text}"
        );
    }

    #[test]
    fn api_requests_are_counted_with_bounded_labels() {
        let metrics = Metrics::new().unwrap();
        metrics.record("marathon", "list_apps", ApiOutcome::Success, 0.02);
        metrics.record("marathon", "list_apps", ApiOutcome::Throttled, 0.01);
        let text = metrics.render();
        assert!(text.contains(
            "converged_api_requests_total{operation=\"list_apps\",outcome=\"success\",service=\"marathon\"} 1"
        ), "{text}");
        assert!(
            text.contains("converged_api_request_duration_seconds_count{service=\"marathon\"} 2"),
            "{text}"
        );
    }
}
