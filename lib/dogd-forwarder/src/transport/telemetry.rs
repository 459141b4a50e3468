//! The forwarder's internal metrics, named as the agent's (`transactions__*` from
//! `transaction.go` and `telemetry.go`, `transaction_container__*` and `file_storage__*` from
//! `internal/retry/telemetry.go`), with the agent's `domain` and `endpoint` labels.

use dogd_telemetry::{Counter, CounterVec, Gauge, Registry};

use super::Endpoint;
use super::error::ForwarderError;

/// Per-endpoint handles, resolved once.
#[derive(Debug)]
pub(crate) struct EndpointMetrics {
    pub(crate) input_count: Counter,
    pub(crate) input_bytes: Counter,
    pub(crate) success: Counter,
    pub(crate) success_bytes: Counter,
    pub(crate) retries: Counter,
    pub(crate) requeued: Counter,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    domain: String,
    pub(crate) endpoints: [EndpointMetrics; 4],
    dropped: CounterVec,
    errors: CounterVec,
    http_errors: CounterVec,
    pub(crate) retry_queue_size: Gauge,
    pub(crate) retry_queue_bytes: Gauge,
    pub(crate) retry_queue_evicted: Counter,
    pub(crate) disk_bytes: Gauge,
    pub(crate) disk_files: Gauge,
    pub(crate) disk_files_removed: Counter,
    pub(crate) disk_corrupt_files: Counter,
    pub(crate) disk_reloaded_files: Gauge,
}

impl Metrics {
    pub(crate) fn register(registry: &Registry, domain: &str) -> Result<Self, ForwarderError> {
        let per_endpoint = ["domain", "endpoint"];
        let input_count = registry.counter(
            "transactions__input_count",
            "Incoming transaction count",
            &per_endpoint,
        )?;
        let input_bytes = registry.counter(
            "transactions__input_bytes",
            "Incoming transaction sizes in bytes",
            &per_endpoint,
        )?;
        let success = registry.counter(
            "transactions__success",
            "Successful transaction count",
            &per_endpoint,
        )?;
        let success_bytes = registry.counter(
            "transactions__success_bytes",
            "Successful transaction sizes in bytes",
            &per_endpoint,
        )?;
        let retries = registry.counter(
            "transactions__retries",
            "Transaction retry count",
            &per_endpoint,
        )?;
        let requeued = registry.counter(
            "transactions__requeued",
            "Transaction requeue count",
            &per_endpoint,
        )?;
        let dropped = registry.counter(
            "transactions__dropped",
            "Transaction drop count, by reason",
            &["domain", "endpoint", "reason"],
        )?;
        let errors = registry.counter(
            "transactions__errors",
            "Count of transactions errored grouped by type of error",
            &["domain", "endpoint", "error_type"],
        )?;
        let http_errors = registry.counter(
            "transactions__http_errors",
            "Count of transactions http errors per http code",
            &["domain", "endpoint", "code"],
        )?;
        let by_domain = ["domain"];
        let labels = [domain];
        let retry_queue_size = registry
            .gauge(
                "transactions__retry_queue_size",
                "Retry queue size",
                &by_domain,
            )?
            .with(&labels);
        let retry_queue_bytes = registry
            .gauge(
                "transaction_container__current_mem_size_in_bytes",
                "The retry queue size",
                &by_domain,
            )?
            .with(&labels);
        let retry_queue_evicted = registry
            .counter(
                "transaction_container__transactions_dropped_count",
                "The number of transactions dropped because the retry queue is full",
                &by_domain,
            )?
            .with(&labels);
        let disk_bytes = registry
            .gauge(
                "file_storage__current_size_in_bytes",
                "The number of bytes used to store transactions on the disk",
                &by_domain,
            )?
            .with(&labels);
        let disk_files = registry
            .gauge(
                "file_storage__files_count",
                "The number of files",
                &by_domain,
            )?
            .with(&labels);
        let disk_files_removed = registry
            .counter(
                "file_storage__files_removed_count",
                "The number of files removed because the disk limit was reached",
                &by_domain,
            )?
            .with(&labels);
        let disk_corrupt_files = registry
            .counter(
                "file_storage__deserialize_errors_count",
                "The number of errors during deserialization",
                &by_domain,
            )?
            .with(&labels);
        let disk_reloaded_files = registry
            .gauge(
                "file_storage__startup_reloaded_retry_files_count",
                "The number of files reloaded from a previous run of the Agent",
                &by_domain,
            )?
            .with(&labels);
        let endpoints = Endpoint::ALL.map(|endpoint| {
            let labels = [domain, endpoint.name()];
            EndpointMetrics {
                input_count: input_count.with(&labels),
                input_bytes: input_bytes.with(&labels),
                success: success.with(&labels),
                success_bytes: success_bytes.with(&labels),
                retries: retries.with(&labels),
                requeued: requeued.with(&labels),
            }
        });
        Ok(Self {
            domain: domain.to_owned(),
            endpoints,
            dropped,
            errors,
            http_errors,
            retry_queue_size,
            retry_queue_bytes,
            retry_queue_evicted,
            disk_bytes,
            disk_files,
            disk_files_removed,
            disk_corrupt_files,
            disk_reloaded_files,
        })
    }

    pub(crate) fn endpoint(&self, endpoint: Endpoint) -> &EndpointMetrics {
        &self.endpoints[endpoint.index()]
    }

    /// `endpoint` is an endpoint's name, or `unknown` for transactions lost inside a disk queue
    /// file (the file is removed without being read).
    pub(crate) fn dropped(&self, endpoint: &str, reason: &str, count: u64) {
        self.dropped
            .with(&[&self.domain, endpoint, reason])
            .add(count);
    }

    pub(crate) fn error(&self, endpoint: Endpoint, error_type: &str) {
        self.errors
            .with(&[&self.domain, endpoint.name(), error_type])
            .inc();
    }

    pub(crate) fn http_error(&self, endpoint: Endpoint, code: u16) {
        self.http_errors
            .with(&[&self.domain, endpoint.name(), &code.to_string()])
            .inc();
    }
}
