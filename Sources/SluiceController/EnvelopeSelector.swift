import SluiceProto
import SluiceWire
import SwiftProtobuf

/// One of Loggregator's `Selector`s (REFERENCE §8): which envelopes of
/// which source a reader wants. An empty source id is every source. The
/// RLP gateway's query is a list of them; so is a gRPC egress request.
struct EnvelopeSelector: Equatable, Sendable {
    enum Kind: Equatable, Sendable {
        case log
        /// A counter; with a name, only counters of that name.
        case counter(name: String)
        /// A gauge; with names, only gauges that have every one of them.
        case gauge(names: [String])
        case timer
        case event
    }

    var sourceID: String
    var kind: Kind

    /// Whether the envelope is of this selector's kind (its source apart:
    /// the reader subscribed by source already).
    func matches(_ envelope: Loggregator_V2_Envelope) -> Bool {
        switch (kind, envelope.message) {
        case (.log, .log?), (.timer, .timer?), (.event, .event?): true
        case (.counter(let name), .counter(let counter)?): name.isEmpty || counter.name == name
        case (.gauge(let names), .gauge(let gauge)?): names.allSatisfy { gauge.metrics[$0] != nil }
        default: false
        }
    }

    /// Whether any of `selectors` for the envelope's source (or for every
    /// source) takes it.
    static func any(_ selectors: [EnvelopeSelector], take envelope: Loggregator_V2_Envelope) -> Bool {
        selectors.contains { ($0.sourceID.isEmpty || $0.sourceID == envelope.sourceID) && $0.matches(envelope) }
    }

    /// The envelope's message field this selector's kind is (Log 4,
    /// Counter 5, Gauge 6, Timer 7, Event 10).
    var field: UInt64 {
        switch kind {
        case .log: 4
        case .counter: 5
        case .gauge: 6
        case .timer: 7
        case .event: 10
        }
    }

    /// Whether telling needs more than the envelope's type: a counter's
    /// name, a gauge's metric names.
    var readsMessage: Bool {
        switch kind {
        case .counter(let name): !name.isEmpty
        case .gauge(let names): !names.isEmpty
        default: false
        }
    }

    /// `any(_:take:)` on an envelope's bytes: its type and source id are
    /// read where they lie; it is decoded only for a selector that names a
    /// counter or gauge metrics.
    static func any(_ selectors: [EnvelopeSelector], takeBytes envelope: UnsafeRawBufferPointer) -> Bool {
        guard let field = EnvelopeFields.messageField(of: envelope) else { return false }
        var source: UnsafeRawBufferPointer?? = nil
        var decoded: Loggregator_V2_Envelope?? = nil
        for selector in selectors where selector.field == field {
            if !selector.sourceID.isEmpty {
                if source == nil {
                    source = (try? EnvelopeFields.scan(envelope)).map { UnsafeRawBufferPointer(rebasing: envelope[$0.sourceID]) }
                }
                guard let bytes = source ?? nil, bytes.elementsEqual(selector.sourceID.utf8) else { continue }
            }
            if selector.readsMessage {
                if decoded == nil { decoded = try? Loggregator_V2_Envelope(serializedBytes: Array(envelope)) }
                guard let envelope = decoded ?? nil, selector.matches(envelope) else { continue }
            }
            return true
        }
        return false
    }

    /// The source ids `selectors` read, each once, in order; empty when any
    /// of them reads every source.
    static func sourceIDs(of selectors: [EnvelopeSelector]) -> [String] {
        guard !selectors.contains(where: { $0.sourceID.isEmpty }) else { return [] }
        var seen: [String] = []
        for selector in selectors where !seen.contains(selector.sourceID) { seen.append(selector.sourceID) }
        return seen
    }
}
