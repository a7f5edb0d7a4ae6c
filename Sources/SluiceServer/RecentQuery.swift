import SluiceProto
import SluiceWire
import SwiftProtobuf

/// What a recent request asks of an app's envelopes: a time range, how
/// many, the oldest or the newest of them, and which kinds (log-cache's
/// `envelope_types` and `name_filter`). A plain recent request is the
/// newest `limit` of any time and kind.
public struct RecentQuery {
    public var range: Range<Int64>
    public var limit: Int
    /// The oldest `limit` of the range rather than the newest.
    public var oldestFirst: Bool
    /// The `Envelope.message` field numbers wanted (log 4, counter 5, gauge
    /// 6, timer 7, event 10); empty: any.
    public var messageFields: Set<UInt64>
    /// Only counters, timers and gauges with a name it matches anywhere in.
    public var nameFilter: Regex<AnyRegexOutput>?

    public init(
        range: Range<Int64> = Int64.min..<Int64.max, limit: Int, oldestFirst: Bool = false,
        messageFields: Set<UInt64> = [], nameFilter: Regex<AnyRegexOutput>? = nil
    ) {
        self.range = range
        self.limit = limit
        self.oldestFirst = oldestFirst
        self.messageFields = messageFields
        self.nameFilter = nameFilter
    }

    /// The query a RECENT_REQUEST carries; `defaultLimit` when it gives none.
    /// Nil for one that can match nothing (an end before its start, or a
    /// name filter that is not a regular expression: the controller checks
    /// it first, so that a reader is told).
    public init?(_ request: Sluice_V1_StreamRequest, defaultLimit: Int) {
        let end = request.endTime == 0 ? Int64.max : request.endTime
        guard request.startTime < end else { return nil }
        var filter: Regex<AnyRegexOutput>? = nil
        if !request.nameFilter.isEmpty {
            guard let regex = try? Regex(request.nameFilter) else { return nil }
            filter = regex
        }
        self.init(
            range: request.startTime..<end, limit: request.limit == 0 ? defaultLimit : Int(request.limit),
            oldestFirst: request.oldestFirst, messageFields: Set(request.messageFields.map(UInt64.init)),
            nameFilter: filter)
    }

    /// Whether an envelope is one of those asked for (its time apart).
    func admits(_ envelope: UnsafeRawBufferPointer) -> Bool {
        if !messageFields.isEmpty {
            guard let field = EnvelopeFields.messageField(of: envelope), messageFields.contains(field) else { return false }
        }
        guard let nameFilter else { return true }
        guard let decoded = try? Loggregator_V2_Envelope(serializedBytes: Array(envelope)) else { return false }
        return Self.names(of: decoded).contains { Self.matches(nameFilter, $0) }
    }

    /// An envelope as it is answered: a gauge with a name filter keeps only
    /// the metrics whose names match (as log-cache answers); nil: as stored.
    func rewritten(_ envelope: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let nameFilter, EnvelopeFields.messageField(of: envelope) == 6,
            var decoded = try? Loggregator_V2_Envelope(serializedBytes: Array(envelope))
        else { return nil }
        let all = decoded.gauge.metrics
        decoded.gauge.metrics = all.filter { Self.matches(nameFilter, $0.key) }
        guard decoded.gauge.metrics.count != all.count else { return nil }
        return try? decoded.serializedBytes()
    }

    private static func matches(_ regex: Regex<AnyRegexOutput>, _ name: String) -> Bool {
        (try? regex.firstMatch(in: name)) != nil
    }

    /// The names a name filter is matched against; none for logs and events.
    private static func names(of envelope: Loggregator_V2_Envelope) -> [String] {
        switch envelope.message {
        case .counter(let counter): [counter.name]
        case .timer(let timer): [timer.name]
        case .gauge(let gauge): Array(gauge.metrics.keys)
        case .log, .event, nil: []
        }
    }
}
