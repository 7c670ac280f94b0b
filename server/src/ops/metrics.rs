//! What the server counts, for `GET /metrics` (Prometheus text format,
//! encoded by `prometheus-client`) and for the `/admin` stats, which read
//! the same counters.
//!
//! One [`Metrics`] per server instance (tests run several servers in one
//! process, each with its own counts). The chat code calls one method per
//! event; on the hot path (messages, deliveries) that is one atomic add on
//! a counter resolved when the server starts, never a label lookup.
//!
//! Gauges that describe the present (users online, rooms) are read from
//! [`ChatState`] when scraped, and the process's memory and CPU from the
//! kernel, so nothing has to keep them up to date.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_shared::{ErrorCode, MessageKind};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::live::ChatState;
use crate::store::StoreError;

/// One label: name and value, both known at compile time.
type Label = [(&'static str, &'static str); 1];

/// What the store was doing when it failed.
#[derive(Debug, Clone, Copy)]
pub enum StoreOp {
    /// Writing a message (its commit failed or it could not be queued).
    Message,
    /// Writing a session.
    Session,
    /// Reading missed messages for a resumed session.
    Replay,
    /// Reading history (a `history` page or the history of a join).
    History,
    /// Deleting messages past the retention.
    Prune,
}

impl StoreOp {
    fn as_str(self) -> &'static str {
        match self {
            StoreOp::Message => "message",
            StoreOp::Session => "session",
            StoreOp::Replay => "replay",
            StoreOp::History => "history",
            StoreOp::Prune => "prune",
        }
    }
}

/// Every counter of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    users: Gauge,
    rooms: Gauge,
    /// room, dm, global, broadcast: in [`kind_index`] order.
    messages: [Counter; 4],
    deliveries: Counter,
    dropped: Counter,
    fell_behind: Counter,
    /// fresh, recovered, truncated.
    connects: [Counter; 3],
    refusals: Family<Label, Counter>,
    errors: Family<Label, Counter>,
    disconnects: Family<Label, Counter>,
    store_write: Histogram,
    store_errors: Family<Label, Counter>,
    history_reads: Counter,
    replay_reads: Counter,
    /// ok, failed.
    tls_reloads: [Counter; 2],
    /// (v3) HTTP API requests by route (its template) and status.
    api_requests: Family<[(&'static str, String); 2], Counter>,
}

fn kind_index(kind: MessageKind) -> usize {
    match kind {
        MessageKind::Room => 0,
        MessageKind::Dm => 1,
        MessageKind::Global => 2,
        MessageKind::Broadcast => 3,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        // `chat_` in front of ours; the process metrics keep their
        // conventional names.
        let chat = registry.sub_registry_with_prefix("chat");
        chat.register(
            "build",
            "The running chat-server's version",
            prometheus_client::metrics::info::Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let users = Gauge::default();
        chat.register(
            "users_connected",
            "Users connected to /chat now",
            users.clone(),
        );
        let rooms = Gauge::default();
        chat.register("rooms", "Rooms with at least one member now", rooms.clone());

        let by_kind: Family<Label, Counter> = Family::default();
        let messages = ["room", "dm", "global", "broadcast"]
            .map(|kind| by_kind.get_or_create(&[("kind", kind)]).clone());
        chat.register(
            "messages",
            "Messages accepted (stored and acknowledged), by kind",
            by_kind,
        );
        let deliveries = Counter::default();
        chat.register(
            "deliveries",
            "Messages handed to a recipient's socket queue (one per recipient), \
             dropped ones included",
            deliveries.clone(),
        );
        let dropped = Counter::default();
        chat.register(
            "dropped_packets",
            "Packets that did not fit a socket's full queue (that socket is then \
             disconnected and resumes)",
            dropped.clone(),
        );
        let fell_behind = Counter::default();
        chat.register(
            "sockets_fell_behind",
            "Sockets disconnected because they read too slowly",
            fell_behind.clone(),
        );
        let by_session: Family<Label, Counter> = Family::default();
        let connects = ["fresh", "recovered", "truncated"]
            .map(|s| by_session.get_or_create(&[("session", s)]).clone());
        chat.register(
            "connects",
            "Accepted connects by session outcome: fresh (a new session), recovered \
             (resumed with every missed message), truncated (resumed, some missed \
             messages no longer kept)",
            by_session,
        );
        let refusals = Family::default();
        chat.register(
            "connect_refusals",
            "Refused connects, by error code",
            refusals.clone(),
        );
        let errors = Family::default();
        chat.register(
            "errors",
            "Refused requests (chat:error), by error code",
            errors.clone(),
        );
        let disconnects = Family::default();
        chat.register("disconnects", "Disconnects by reason", disconnects.clone());
        // 0.25 ms to about 4 s: a group commit with fsync is a few ms.
        let store_write = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        chat.register(
            "store_write_seconds",
            "Time from queueing a message for the store to its commit",
            store_write.clone(),
        );
        let store_errors = Family::default();
        chat.register(
            "store_errors",
            "Store operations that failed, by operation",
            store_errors.clone(),
        );
        let history_reads = Counter::default();
        chat.register(
            "history_reads",
            "History pages read from the store (history requests and joins)",
            history_reads.clone(),
        );
        let replay_reads = Counter::default();
        chat.register(
            "replay_reads",
            "Missed messages read from the store for a resumed session",
            replay_reads.clone(),
        );
        let by_result: Family<Label, Counter> = Family::default();
        let tls_reloads =
            ["ok", "failed"].map(|r| by_result.get_or_create(&[("result", r)]).clone());
        chat.register(
            "tls_reloads",
            "Certificate reloads on SIGHUP, by result (a failed one keeps the \
             previous certificate)",
            by_result,
        );
        let api_requests = Family::default();
        chat.register(
            "api_requests",
            "HTTP API requests, by route (as /api/v1/rooms/{room}/messages; \
             unknown for no route) and status",
            api_requests.clone(),
        );
        registry.register_collector(Box::new(ProcessCollector::new()));
        Metrics {
            registry,
            users,
            rooms,
            messages,
            deliveries,
            dropped,
            fell_behind,
            connects,
            refusals,
            errors,
            disconnects,
            store_write,
            store_errors,
            history_reads,
            replay_reads,
            tls_reloads,
            api_requests,
        }
    }

    /// (v3) An HTTP API request to `route` (a route template, so the
    /// label values stay few) was answered `status`.
    pub fn api_request(&self, route: &str, status: u16) {
        self.api_requests
            .get_or_create(&[("route", route.to_owned()), ("status", status.to_string())])
            .inc();
    }

    /// A certificate reload on SIGHUP succeeded or failed.
    pub fn tls_reloaded(&self, ok: bool) {
        self.tls_reloads[usize::from(!ok)].inc();
    }

    /// A message was stored and acknowledged.
    pub fn message(&self, kind: MessageKind) {
        self.messages[kind_index(kind)].inc();
    }

    /// `n` recipients were handed a message.
    pub fn delivered(&self, n: usize) {
        self.deliveries.inc_by(n as u64);
    }

    /// A packet did not fit a socket's queue.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// A socket's transport was ended because it fell behind.
    pub fn fell_behind(&self) {
        self.fell_behind.inc();
    }

    /// A connect was accepted; `recovered` if it resumed a session,
    /// `truncated` if some missed messages were no longer kept.
    pub fn connected(&self, recovered: bool, truncated: bool) {
        let i = match (recovered, truncated) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        self.connects[i].inc();
    }

    /// A connect was refused with `code`.
    pub fn refused(&self, code: ErrorCode) {
        self.refusals
            .get_or_create(&[("code", code.as_str())])
            .inc();
    }

    /// A request was refused with `code` (`chat:error`).
    pub fn error(&self, code: ErrorCode) {
        self.errors.get_or_create(&[("code", code.as_str())]).inc();
    }

    /// A socket left, for `reason` (the contract's reason strings).
    pub fn disconnected(&self, reason: &'static str) {
        self.disconnects.get_or_create(&[("reason", reason)]).inc();
    }

    /// A message write queued at `queued` finished with `result`.
    pub fn store_write(&self, queued: Instant, result: &Result<(), StoreError>) {
        match result {
            Ok(()) => self.store_write.observe(queued.elapsed().as_secs_f64()),
            Err(_) => self.store_error(StoreOp::Message),
        }
    }

    pub fn store_error(&self, op: StoreOp) {
        self.store_errors
            .get_or_create(&[("op", op.as_str())])
            .inc();
    }

    pub fn history_read(&self) {
        self.history_reads.inc();
    }

    pub fn replay_read(&self) {
        self.replay_reads.inc();
    }

    /// Messages accepted since start, all kinds: `admin:stats`'s
    /// `messagesTotal`.
    pub fn messages_total(&self) -> u64 {
        self.messages.iter().map(Counter::get).sum()
    }

    /// Refused requests since start: `admin:stats`'s `errorsTotal`.
    pub fn errors_total(&self) -> u64 {
        let mut total = 0;
        for code in ErrorCode::ALL {
            if let Some(c) = self.errors.get(&[("code", code.as_str())]) {
                total += c.get();
            }
        }
        total
    }

    /// The Prometheus text exposition of every metric, with the gauges
    /// read from `state` now.
    pub fn render(&self, state: &ChatState) -> String {
        self.users
            .set(i64::try_from(state.online()).unwrap_or(i64::MAX));
        self.rooms
            .set(i64::try_from(state.room_count()).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(8 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics encoding: {e}");
        }
        out
    }
}

/// The process's resident memory, CPU time, open descriptors and start
/// time, read from `/proc` at each scrape (Linux; nothing elsewhere).
#[derive(Debug)]
struct ProcessCollector {
    start_time: f64,
}

impl ProcessCollector {
    fn new() -> Self {
        let start_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        ProcessCollector { start_time }
    }
}

/// Resident set size in bytes, from `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User plus system CPU time of the whole process, in seconds.
fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: getrusage only writes into the struct we pass, which is
        // large enough and lives for the call.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: getrusage returned 0, so it filled the struct.
        let usage = unsafe { usage.assume_init() };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Some(secs(usage.ru_utime) + secs(usage.ru_stime))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        fn gauge(
            encoder: &mut DescriptorEncoder,
            name: &str,
            help: &str,
            value: f64,
        ) -> Result<(), std::fmt::Error> {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
        }
        if let Some(rss) = resident_bytes() {
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                rss as f64,
            )?;
        }
        if let Some(cpu) = cpu_seconds() {
            let c = ConstCounter::new(cpu);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                None,
                c.metric_type(),
            )?)?;
        }
        if let Some(fds) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                fds as f64,
            )?;
        }
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            self.start_time,
        )
    }
}

/// `GET /metrics`.
pub async fn handler(
    axum::extract::State((metrics, state)): axum::extract::State<(Arc<Metrics>, Arc<ChatState>)>,
) -> impl axum::response::IntoResponse {
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(&state),
    )
}
