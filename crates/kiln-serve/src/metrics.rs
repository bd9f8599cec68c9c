//! [`Metrics`]: the server's Prometheus metrics, in a registry of its own (two servers in one
//! process, as in the tests, do not share counters). `GET /metrics` renders them as text.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

/// Every metric the server records.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `kiln_requests_total{route, status}`: answered requests.
    pub requests: IntCounterVec,
    /// `kiln_request_duration_seconds{route}`: time from arrival to answer.
    pub request_duration: HistogramVec,
    /// `kiln_queue_duration_seconds`: time a request waited before its first text entered a
    /// forward pass.
    pub queue_duration: Histogram,
    /// `kiln_batch_texts`: texts per forward pass.
    pub batch_texts: Histogram,
    /// `kiln_batch_tokens`: real (unpadded) tokens per forward pass.
    pub batch_tokens: Histogram,
    /// `kiln_tokens_total`: tokens run through the model.
    pub tokens: IntCounter,
    /// `kiln_requests_in_flight`: requests admitted and not yet answered.
    pub in_flight: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        // Fixed, valid names and buckets: a failure here is a bug in this function.
        Self::try_new().expect("the server's metric definitions are valid")
    }

    fn try_new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let seconds = exponential_buckets(0.0005, 2.0, 16)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "kiln_requests_total",
                "Answered requests by route and status",
            ),
            &["route", "status"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "kiln_request_duration_seconds",
                "Time from a request's arrival to its answer",
            )
            .buckets(seconds.clone()),
            &["route"],
        )?;
        let queue_duration = Histogram::with_opts(
            HistogramOpts::new(
                "kiln_queue_duration_seconds",
                "Time a request waited for its first forward pass",
            )
            .buckets(seconds),
        )?;
        let batch_texts = Histogram::with_opts(
            HistogramOpts::new("kiln_batch_texts", "Texts per forward pass")
                .buckets(exponential_buckets(1.0, 2.0, 12)?),
        )?;
        let batch_tokens = Histogram::with_opts(
            HistogramOpts::new("kiln_batch_tokens", "Real tokens per forward pass")
                .buckets(exponential_buckets(8.0, 2.0, 14)?),
        )?;
        let tokens = IntCounter::new("kiln_tokens_total", "Tokens run through the model")?;
        let in_flight = IntGauge::new(
            "kiln_requests_in_flight",
            "Requests admitted and not yet answered",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(queue_duration.clone()))?;
        registry.register(Box::new(batch_texts.clone()))?;
        registry.register(Box::new(batch_tokens.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            registry,
            requests,
            request_duration,
            queue_duration,
            batch_texts,
            batch_tokens,
            tokens,
            in_flight,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, String> {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .map_err(|e| e.to_string())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
