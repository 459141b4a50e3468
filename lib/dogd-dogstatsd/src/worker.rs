//! Parser workers: packets in, samples out. Each worker owns its context resolver, so the hot
//! path takes no lock; samples of one batch go to the sink together.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::ContextResolver;
use crate::enrich::{NameRules, SpecialTags, extract_special_tags};
use crate::listener::{Packet, PacketBatch};
use crate::mapper::Mapper;
use crate::parse::{self, Line, Message, MetricValues, ParseOptions};
use crate::sample::{
    Event, MessageOrigin, Sample, SampleBatch, SampleSink, SampleValue, ServiceCheck,
};
use crate::stats::MetricStats;
use crate::telemetry::DsdTelemetry;

/// Contexts idle for this many seconds are forgotten by the resolver (the agent's
/// `dogstatsd_context_expiry_seconds`).
const CONTEXT_IDLE_SECONDS: u32 = 20;

/// What every worker shares.
pub(crate) struct Shared {
    pub(crate) options: ParseOptions,
    pub(crate) eol_required_udp: bool,
    pub(crate) eol_required_uds: bool,
    pub(crate) hostname: Arc<str>,
    pub(crate) extra_tags: Vec<String>,
    pub(crate) names: NameRules,
    pub(crate) mapper: Option<Mapper>,
    pub(crate) origin_optout: bool,
    pub(crate) entity_id_precedence: bool,
    pub(crate) quiet_parse_errors: bool,
    pub(crate) sink: Arc<dyn SampleSink>,
    pub(crate) telemetry: DsdTelemetry,
    pub(crate) stats: MetricStats,
}

/// Runs one worker until its queue closes or `shutdown` fires (then drains what is queued).
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut queue: mpsc::Receiver<PacketBatch>,
    shutdown: CancellationToken,
) {
    let mut worker = Worker {
        shared,
        resolver: ContextResolver::new(),
        tag_buffer: Vec::new(),
    };
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            batch = queue.recv() => match batch {
                Some(batch) => worker.process(batch).await,
                None => break,
            },
            _ = ticker.tick() => {
                worker.resolver.tick();
                worker.resolver.expire(CONTEXT_IDLE_SECONDS);
            }
            () = shutdown.cancelled() => {
                // Everything a listener accepted is parsed and handed on before stopping.
                queue.close();
                while let Some(batch) = queue.recv().await {
                    worker.process(batch).await;
                }
                break;
            }
        }
    }
}

/// Gives an empty vector's allocation a new element lifetime, so one tag buffer serves every
/// message without reallocating (the collect reuses the allocation: same size and alignment).
fn recycle<'b>(mut tags: Vec<&str>) -> Vec<&'b str> {
    tags.clear();
    tags.into_iter().map(|_| "").collect()
}

struct Worker {
    shared: Arc<Shared>,
    resolver: ContextResolver,
    /// One message's tags; kept between messages for its allocation only.
    tag_buffer: Vec<&'static str>,
}

impl Worker {
    async fn process(&mut self, batch: PacketBatch) {
        let mut out = SampleBatch::default();
        for packet in &batch {
            self.process_packet(packet, &mut out);
        }
        if !out.is_empty() {
            self.shared.telemetry.samples.add(out.samples.len() as u64);
            self.shared.sink.accept(out).await;
        }
    }

    fn process_packet(&mut self, packet: &Packet, out: &mut SampleBatch) {
        let eol_required = packet
            .transport
            .eol_required(self.shared.eol_required_udp, self.shared.eol_required_uds);
        for line in parse::split_messages(&packet.data, eol_required) {
            let message = match line {
                Line::Message(message) => message,
                Line::Unterminated(_) => {
                    self.shared.telemetry.unterminated.inc();
                    continue;
                }
            };
            match parse::parse_message(message, &self.shared.options) {
                Ok(parsed) => self.handle(parsed, packet, out),
                Err(error) => self.reject(message, &error),
            }
        }
    }

    fn reject(&self, message: &[u8], error: &parse::ParseError) {
        let shared = &self.shared;
        shared.telemetry.failed(error.message_type()).inc();
        shared
            .telemetry
            .parse_error(error.message_type(), error.reason())
            .inc();
        let text = String::from_utf8_lossy(message);
        if shared.quiet_parse_errors {
            tracing::debug!(
                "Dogstatsd: error parsing {} message {text:?}: {error}",
                error.message_type()
            );
        } else {
            tracing::error!(
                "Dogstatsd: error parsing {} message {text:?}: {error}",
                error.message_type()
            );
        }
    }

    fn handle(&mut self, message: Message<'_>, packet: &Packet, out: &mut SampleBatch) {
        let Self {
            shared,
            resolver,
            tag_buffer,
        } = self;
        match message {
            Message::Metric(metric) => {
                // The agent's order: map the name as sent, then apply the namespace and the
                // blocklist to the result.
                let mapped = shared
                    .mapper
                    .as_ref()
                    .and_then(|mapper| mapper.map(metric.name));
                let mapped_name: &str = mapped
                    .as_deref()
                    .map_or(metric.name, |mapped| mapped.name.as_str());
                let Some(name) = shared.names.apply(mapped_name) else {
                    return;
                };
                let name: &str = &name;
                // Counted per sample (each packed value), blocked metrics not at all.
                shared.telemetry.metrics_ok.add(metric.values.len() as u64);
                let mut tags = recycle(std::mem::take(tag_buffer));
                let mapped_tags = mapped
                    .iter()
                    .flat_map(|mapped| mapped.tags.iter().map(String::as_str));
                let special = extract_special_tags(
                    metric.tags.iter().chain(mapped_tags),
                    metric.cardinality,
                    &mut tags,
                );
                tags.extend(shared.extra_tags.iter().map(String::as_str));
                let host = special.host.unwrap_or(&shared.hostname);
                let (key, context) = resolver.resolve(name, &tags, host);
                *tag_buffer = recycle(tags);
                let origin = origin_of(
                    shared,
                    packet,
                    metric.local_data,
                    metric.external_data,
                    &special,
                );
                shared.telemetry.metric_type(metric.metric_type).inc();
                if shared.stats.enabled() {
                    shared.stats.record(key.0, &context.name, &context.tags);
                }
                let sample = |value| Sample {
                    key,
                    context: context.clone(),
                    metric_type: metric.metric_type,
                    value,
                    sample_rate: metric.sample_rate,
                    timestamp: metric.timestamp,
                    origin: origin.clone(),
                };
                match metric.values {
                    MetricValues::Set(member) => out
                        .samples
                        .push(sample(SampleValue::SetMember(Arc::from(member)))),
                    values => out.samples.extend(
                        values
                            .iter()
                            .map(|value| sample(SampleValue::Number(value))),
                    ),
                }
            }
            Message::Event(event) => {
                shared.telemetry.events_ok.inc();
                let (tags, special) = owned_tags(shared, event.tags.iter(), event.cardinality);
                out.events.push(Event {
                    title: event.title.into_owned(),
                    text: event.text.into_owned(),
                    timestamp: event.timestamp,
                    host: message_host(shared, event.hostname, &special),
                    aggregation_key: event.aggregation_key.map(str::to_owned),
                    priority: event.priority.as_str().to_owned(),
                    source_type_name: event.source_type_name.map(str::to_owned),
                    alert_type: event.alert_type.as_str().to_owned(),
                    tags,
                    origin: origin_of(
                        shared,
                        packet,
                        event.local_data,
                        event.external_data,
                        &special,
                    ),
                });
            }
            Message::ServiceCheck(check) => {
                shared.telemetry.service_checks_ok.inc();
                let (tags, special) = owned_tags(shared, check.tags.iter(), check.cardinality);
                out.service_checks.push(ServiceCheck {
                    name: check.name.to_owned(),
                    status: check.status.as_u8(),
                    timestamp: check.timestamp,
                    host: message_host(shared, check.hostname, &special),
                    message: check.message.unwrap_or_default().to_owned(),
                    tags,
                    origin: origin_of(
                        shared,
                        packet,
                        check.local_data,
                        check.external_data,
                        &special,
                    ),
                });
            }
        }
    }
}

/// An event's or service check's tags (ordinary ones plus `dogstatsd_tags`) and special tags.
fn owned_tags<'a>(
    shared: &Shared,
    tags: impl IntoIterator<Item = &'a str>,
    cardinality: Option<&'a str>,
) -> (Vec<String>, SpecialTags<'a>) {
    let mut ordinary = Vec::new();
    let special = extract_special_tags(tags, cardinality, &mut ordinary);
    let mut owned: Vec<String> = ordinary.into_iter().map(str::to_owned).collect();
    owned.extend(shared.extra_tags.iter().cloned());
    (owned, special)
}

/// `h:` when given and non-empty, else the `host:` tag, else the agent's hostname.
fn message_host(shared: &Shared, field: Option<&str>, special: &SpecialTags<'_>) -> String {
    field
        .filter(|host| !host.is_empty())
        .or(special.host)
        .unwrap_or(&shared.hostname)
        .to_owned()
}

/// Combines the socket origin with the client's fields, following the agent's precedence rules.
fn origin_of(
    shared: &Shared,
    packet: &Packet,
    local_data: Option<&str>,
    external_data: Option<&str>,
    special: &SpecialTags<'_>,
) -> Option<Arc<MessageOrigin>> {
    let cardinality = special.cardinality;
    // `card:none` opts the message out of origin tagging altogether.
    if shared.origin_optout && cardinality == Some("none") {
        return None;
    }
    let entity_id = special
        .entity_id
        .filter(|id| *id != "none" && !id.is_empty());
    // The socket origin is used unless the client names its pod and that takes precedence.
    let use_socket = !(entity_id.is_some() && shared.entity_id_precedence);
    let socket = packet.origin.as_deref().filter(|_| use_socket);
    if socket.is_none()
        && local_data.is_none()
        && external_data.is_none()
        && entity_id.is_none()
        && cardinality.is_none()
    {
        return None;
    }
    Some(Arc::new(MessageOrigin {
        pid: socket.and_then(|origin| origin.pid),
        container_id: socket.and_then(|origin| origin.container_id.clone()),
        local_data: local_data.map(Arc::from),
        external_data: external_data.map(Arc::from),
        cardinality: cardinality.map(Arc::from),
        entity_id: entity_id.map(Arc::from),
    }))
}
