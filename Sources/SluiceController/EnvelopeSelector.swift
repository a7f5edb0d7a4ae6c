import SluiceProto

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
}
