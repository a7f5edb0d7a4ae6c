import CoreMetrics
import NIOCore
import SluiceTransport
import SluiceShipping
import SluiceSyslog
import SluiceWire

/// Turns syslog messages into Log envelopes for the shipper:
///
/// - APP-NAME is the app (`source_id`), unless the input names one;
/// - PROCID `[TYPE/INDEX]` gives `tags.source_type` and `instance_id`; any
///   other PROCID is the instance, with source type `SYSLOG`;
/// - severity 0–3 is ERR, the rest OUT;
/// - HOSTNAME is the tag `hostname` (a line with none, `-` or a BSD line
///   without one, gets the agent's own `hostname`, if set), the facility's
///   keyword the tag
///   `facility` (`user`, `local0`, …), MSGID (unless `-`) the tag `msgid`;
/// - each structured-data parameter is a tag: `name` for elements whose
///   id begins `tags@` (as Cloud Foundry's drains write them), `id.name`
///   for the others;
/// - the message's own timestamp, or the time it arrived if it has none.
///
/// A message that cannot be parsed (or names no app) becomes, whole, a
/// line of `defaultApp`; with no default app it is counted and dropped.
public struct SyslogIntake: Sendable {
    public static let hostnameTag = "hostname"
    public static let facilityTag = "facility"
    public static let msgIDTag = "msgid"

    let shipper: LogShipper
    let defaultApp: String?
    let maxLineBytes: Int
    let metrics: AgentMetrics
    /// The agent's host (`--hostname`: the node it serves), for lines that
    /// name none; nil leaves them without the tag.
    var hostname: String? = nil

    /// Takes one message. `app` (from an HTTP request) wins over APP-NAME.
    public func take(_ bytes: UnsafeRawBufferPointer, input: AgentMetrics.Input, app: String? = nil) {
        metrics.received(input)
        guard let message = SyslogMessage.parse(bytes), let app = app ?? message.appName, !app.isEmpty else {
            guard let defaultApp else {
                metrics.unparsed(dropped: true)
                return
            }
            metrics.unparsed(dropped: false)
            var end = bytes.count
            while end > 0, bytes[end - 1] == 0x0A || bytes[end - 1] == 0x0D { end -= 1 }
            let fields = LogEnvelopeFields(sourceID: defaultApp, instanceID: "", sourceType: "SYSLOG")
            ship(
                UnsafeRawBufferPointer(rebasing: bytes[0..<end]), fields: fields, timestamp: WallClock.nowNanos(),
                tags: hostname.map { [LogTag(Self.hostnameTag, $0)] } ?? [])
            return
        }
        var fields = LogEnvelopeFields(sourceID: app, instanceID: message.procID ?? "", sourceType: "SYSLOG")
        if let (sourceType, instance) = message.sourceTypeAndInstance {
            fields.sourceType = sourceType
            fields.instanceID = instance
        }
        fields.isError = message.isError
        // Who sent the line, so that a relay forwarding many hosts' lines
        // into one app keeps them apart; structured data after, so that a
        // tag of the same name there wins.
        var tags: [LogTag] = []
        tags.reserveCapacity(3 + message.structuredData.count)
        if let hostname = message.hostname ?? hostname { tags.append(LogTag(Self.hostnameTag, hostname)) }
        tags.append(LogTag(Self.facilityTag, message.facilityName))
        if let msgID = message.msgID { tags.append(LogTag(Self.msgIDTag, msgID)) }
        for parameter in message.structuredData {
            tags.append(
                LogTag(parameter.id.hasPrefix("tags@") ? parameter.name : "\(parameter.id).\(parameter.name)", parameter.value))
        }
        ship(
            UnsafeRawBufferPointer(rebasing: bytes[message.message]), fields: fields,
            timestamp: message.timestamp ?? WallClock.nowNanos(), tags: tags)
    }

    private func ship(_ payload: UnsafeRawBufferPointer, fields: LogEnvelopeFields, timestamp: Int64, tags: [LogTag]) {
        LineSplitter.split(payload, maxLineBytes: maxLineBytes) { piece, part in
            shipper.appendLog(fields, timestamp: timestamp, payload: piece, extraTags: part.map { tags + [$0] } ?? tags)
        }
    }

    public func take(_ buffer: ByteBuffer, input: AgentMetrics.Input, app: String? = nil) {
        buffer.withUnsafeReadableBytes { take($0, input: input, app: app) }
    }
}

/// The agent's counters.
public struct AgentMetrics: Sendable {
    public enum Input: String, Sendable, CaseIterable {
        case framed
        case syslogTCP = "syslog_tcp"
        case syslogUDP = "syslog_udp"
        case http
        /// Loggregator's v2 ingress over gRPC (`--grpc-listen`).
        case grpc
    }

    private let receivedCounters: [Input: Counter]
    private let unparsedKept: Counter
    private let unparsedDropped: Counter
    let unroutable: Counter

    public init(factory: any MetricsFactory) {
        var counters: [Input: Counter] = [:]
        for input in Input.allCases {
            counters[input] = Counter(
                label: MetricNames.agentReceived, dimensions: [("input", input.rawValue)], factory: factory)
        }
        receivedCounters = counters
        unparsedKept = Counter(
            label: MetricNames.agentSyslogUnparsed, dimensions: [("outcome", "default_app")], factory: factory)
        unparsedDropped = Counter(
            label: MetricNames.agentSyslogUnparsed, dimensions: [("outcome", "dropped")], factory: factory)
        unroutable = Counter(
            label: MetricNames.agentDropped, dimensions: [("reason", "no_source_id")], factory: factory)
    }

    func received(_ input: Input, count: Int = 1) {
        receivedCounters[input]!.increment(by: count)
    }

    func unparsed(dropped: Bool) {
        (dropped ? unparsedDropped : unparsedKept).increment()
    }
}
