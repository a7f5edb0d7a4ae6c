/// The RLP gateway's `GET /v2/read` query (REFERENCE §8), read as the
/// gateway reads it: valueless type flags (`log`, `counter`, `gauge`,
/// `timer`, `event`), `counter.name` (repeatable) and `gauge.name`
/// (repeatable, names split on commas) in place of their flags, crossed
/// with each `source_id`; `shard_id` names the shared subscription.
struct RLPQuery: Equatable {
    var selectors: [EnvelopeSelector]
    var shardID: String
    var deterministicName: String

    /// The source ids read; empty when any selector reads every source.
    var sourceIDs: [String] {
        EnvelopeSelector.sourceIDs(of: selectors)
    }

    static func parse(_ pairs: [(name: String, value: String)]) -> Result<RLPQuery, APIRoute.Failure> {
        guard !pairs.isEmpty else {
            return .failure(APIRoute.Failure(status: 400, error: "empty_query", message: "query cannot be empty"))
        }
        var values: [String: [String]] = [:]
        for (name, value) in pairs { values[name, default: []].append(value) }
        var kinds: [EnvelopeSelector.Kind] = []
        if values["log"] != nil { kinds.append(.log) }
        if let names = values["counter.name"] {
            guard !names.contains(where: \.isEmpty) else {
                return .failure(
                    APIRoute.Failure(
                        status: 400, error: "missing_counter_name", message: "counter.name is invalid without value"))
            }
            kinds += names.map { .counter(name: $0) }
        } else if values["counter"] != nil {
            kinds.append(.counter(name: ""))
        }
        if let lists = values["gauge.name"] {
            guard !lists.contains(where: \.isEmpty) else {
                return .failure(
                    APIRoute.Failure(status: 400, error: "missing_gauge_name", message: "gauge.name is invalid without value"))
            }
            // As Go's strings.Split: "a,,b" has an empty name, which no gauge has.
            kinds += lists.map { .gauge(names: $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)) }
        } else if values["gauge"] != nil {
            kinds.append(.gauge(names: []))
        }
        if values["timer"] != nil { kinds.append(.timer) }
        if values["event"] != nil { kinds.append(.event) }
        guard !kinds.isEmpty else {
            return .failure(
                APIRoute.Failure(
                    status: 400, error: "missing_envelope_type", message: "query must provide at least one envelope type"))
        }
        let sources = values["source_id"] ?? [""]
        var selectors: [EnvelopeSelector] = []
        for source in sources {
            if source.utf8.count > APIRoute.maxAppIDBytes
                || source.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "/" })
            {
                return .failure(
                    APIRoute.Failure(
                        status: 400, error: "bad_source_id",
                        message: "a source_id is at most \(APIRoute.maxAppIDBytes) bytes, with no control character or slash"))
            }
            for kind in kinds { selectors.append(EnvelopeSelector(sourceID: source, kind: kind)) }
        }
        return .success(
            RLPQuery(
                selectors: selectors, shardID: values["shard_id"]?.first ?? "",
                deterministicName: values["deterministic_name"]?.first ?? ""))
    }
}
