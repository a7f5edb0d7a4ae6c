import SluiceGRPC
import SluiceProto

/// A gRPC egress request (`EgressRequest` or `EgressBatchRequest`: their
/// field numbers are the same, so both are read as the latter), read into
/// what a reader does: its `EnvelopeSelector`s, the firehose subscription
/// (`shard_id`) and whether tags stay where v2 puts them.
struct EgressQuery: Equatable {
    var selectors: [EnvelopeSelector]
    var shardID: String
    var usePreferredTags: Bool

    /// The source ids read; empty when any selector reads every source.
    var sourceIDs: [String] {
        EnvelopeSelector.sourceIDs(of: selectors)
    }

    /// The request, or why it is refused (`INVALID_ARGUMENT`). Selectors
    /// come from `selectors`, or (old clients) the `legacy_selector`, where
    /// a selector without a type takes every type. A request that selects
    /// nothing is refused rather than served a stream that never carries
    /// anything.
    static func parse(_ request: Loggregator_V2_EgressBatchRequest) -> Result<EgressQuery, GRPCStatus> {
        var selectors: [EnvelopeSelector] = []
        if !request.selectors.isEmpty {
            for (index, selector) in request.selectors.enumerated() {
                guard let kind = kind(of: selector) else {
                    return .failure(
                        GRPCStatus(
                            .invalidArgument,
                            "selector \(index) (source_id '\(selector.sourceID)') names no envelope type: give log, counter, gauge, timer or event"
                        ))
                }
                selectors.append(EnvelopeSelector(sourceID: selector.sourceID, kind: kind))
            }
        } else if request.hasLegacySelector {
            let legacy = request.legacySelector
            let kinds: [EnvelopeSelector.Kind] =
                kind(of: legacy).map { [$0] } ?? [.log, .counter(name: ""), .gauge(names: []), .timer, .event]
            selectors = kinds.map { EnvelopeSelector(sourceID: legacy.sourceID, kind: $0) }
        } else {
            return .failure(GRPCStatus(.invalidArgument, "the request selects nothing: give at least one selector"))
        }
        return .success(
            EgressQuery(selectors: selectors, shardID: request.shardID, usePreferredTags: request.usePreferredTags))
    }

    private static func kind(of selector: Loggregator_V2_Selector) -> EnvelopeSelector.Kind? {
        switch selector.message {
        case .log: .log
        case .counter(let counter): .counter(name: counter.name)
        case .gauge(let gauge): .gauge(names: gauge.names)
        case .timer: .timer
        case .event: .event
        case nil: nil
        }
    }
}
