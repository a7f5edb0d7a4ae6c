/// The name of every metric Sluice exports, in one place (Prometheus
/// style: `sluice_ROLE_…`, counters ending `_total`). Dimensions are few and
/// of low cardinality: `reason`, `input`, `outcome`, a drain's id, and the
/// app of an emitter's drop counter.
public enum MetricNames {
    // The source agent (and any emitter: `sluice run` and SluiceEmitter use
    // the same names under their own prefix).
    public static let agentReceived = "sluice_agent_envelopes_received_total"
    public static let agentDropped = "sluice_agent_envelopes_dropped_total"
    public static let agentSyslogUnparsed = "sluice_agent_syslog_unparsed_total"
    /// The spool (`--spool`): bytes of segments on disk, failed reads and
    /// writes (`op`), and damaged records found at a start.
    public static let agentSpoolBytes = "sluice_agent_spool_bytes"
    /// When the soonest certificate a TLS setting uses expires (Unix
    /// seconds), by `use`: `--tls`, `--http-tls`, `--input-tls`.
    public static let tlsCertificateExpiry = "sluice_tls_certificate_expiry_timestamp_seconds"
    /// The spool's bound (`--spool-max`), for an alert on it filling.
    public static let agentSpoolMaxBytes = "sluice_agent_spool_max_bytes"
    public static let agentSpoolErrors = "sluice_agent_spool_errors_total"
    public static let agentSpoolDamagedRecords = "sluice_agent_spool_damaged_records_total"

    /// `PREFIX_envelopes_dropped_total` of an emitter's buffer.
    public static func emitterDropped(_ prefix: String) -> String { "\(prefix)_envelopes_dropped_total" }
    /// `PREFIX_app_envelopes_dropped_total`, per app.
    public static func emitterAppDropped(_ prefix: String) -> String { "\(prefix)_app_envelopes_dropped_total" }
    /// Cloud Foundry's `AppInstanceExceededLogRateLimitCount`: seconds in
    /// which an instance went over its log rate limit.
    public static func emitterRateLimitExceeded(_ prefix: String) -> String {
        "\(prefix)_app_instance_exceeded_log_rate_limit_total"
    }
    /// `PREFIX_batches_sent_total`.
    public static func emitterBatchesSent(_ prefix: String) -> String { "\(prefix)_batches_sent_total" }
    /// Times the link to a controller had its whole acknowledgement window
    /// outstanding, so that shipping waited.
    public static func emitterAckWindowFull(_ prefix: String) -> String { "\(prefix)_ack_window_full_total" }

    // Links between parts (every role).
    /// TLS handshakes refused or failed, by `role` (the listener or link).
    public static let tlsRefused = "sluice_tls_handshakes_refused_total"
    /// Connections a listener closed for its limits, by `role` and `reason`
    /// (`max_connections`, `stalled`).
    public static let connectionsClosed = "sluice_connections_closed_total"

    // The traffic controller.
    public static let controllerReceived = "sluice_controller_envelopes_received_total"
    public static let controllerDropped = "sluice_controller_envelopes_dropped_total"
    /// Writes to the drain bindings store that failed (a full or failing
    /// disk under SQLite, PostgreSQL down): the API answered 503.
    public static let controllerBindingsStoreErrors = "sluice_controller_bindings_store_errors_total"
    /// 1 while a buffer server answers its link, by `server` and `zone`.
    public static let controllerServerUp = "sluice_controller_buffer_server_up"
    /// Buffer servers a controller knows in a zone, and of those, the ones
    /// that answer (by `zone`): none up is a zone whose reads are partial.
    public static let controllerZoneServers = "sluice_controller_zone_servers"
    public static let controllerZoneServersUp = "sluice_controller_zone_servers_up"
    /// Times a link to a buffer server had its whole window outstanding,
    /// so that ingress waited (by `zone`).
    public static let controllerAckWindowFull = "sluice_controller_ack_window_full_total"
    /// Seconds from a batch's first send to a buffer server until its
    /// acknowledgement (a histogram, by `zone`).
    public static let controllerBatchAckSeconds = "sluice_controller_batch_ack_seconds"
    /// Envelopes a stopped buffer server had acknowledged lately, by
    /// `outcome`: `handed_over` to the servers standing in (for reads), or
    /// `no_server` up to take them.
    public static let controllerHistory = "sluice_controller_history_envelopes_total"
    public static let streamReaders = "sluice_controller_stream_readers"
    public static let streamSent = "sluice_controller_stream_envelopes_sent_total"
    public static let streamDropped = "sluice_controller_stream_envelopes_dropped_total"
    /// Readers refused a websocket by `--max-readers` (`reason="total"`)
    /// or `--max-readers-per-app` (`reason="per_app"`).
    public static let streamRefused = "sluice_controller_stream_readers_refused_total"

    // The buffer server.
    public static let serverStored = "sluice_server_envelopes_stored_total"
    public static let serverStoredBytes = "sluice_server_stored_bytes"
    public static let serverEvicted = "sluice_server_envelopes_evicted_total"
    public static let serverDropped = "sluice_server_envelopes_dropped_total"
    public static let serverDuplicates = "sluice_server_duplicate_envelopes_skipped_total"

    // Drains (run by buffer servers).
    /// Reads of the drain bindings that failed; drains go on as last read.
    public static let serverBindingsStoreErrors = "sluice_server_bindings_store_errors_total"
    public static let drainSent = "sluice_server_drain_envelopes_sent_total"
    public static let drainDropped = "sluice_server_drain_envelopes_dropped_total"
    /// A leaving server's drain lines handed to the server that takes the
    /// app next (its endpoint was down), and those taken in there.
    public static let drainHandedOff = "sluice_server_drain_envelopes_handed_off_total"
    public static let drainTakenOver = "sluice_server_drain_envelopes_taken_over_total"
    public static let drainUp = "sluice_server_drain_up"
    public static let drainQueued = "sluice_server_drain_queued_envelopes"
}
