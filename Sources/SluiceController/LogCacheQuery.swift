import SluiceProto

/// The parameters of log-cache's `GET /api/v1/read/{source_id}`
/// (REFERENCE §8), checked as log-cache checks them. Plain logic.
struct LogCacheQuery: Equatable {
    var sourceID: String
    /// Unix nanoseconds, inclusive.
    var startTime: Int64 = 0
    /// Unix nanoseconds, exclusive; nil: the time of the read.
    var endTime: Int64? = nil
    /// `Envelope.message` field numbers (log 4, counter 5, gauge 6, timer 7,
    /// event 10); empty: any.
    var messageFields: [UInt32] = []
    var limit = LogCacheQuery.defaultLimit
    /// Newest first (and the newest `limit` of the range).
    var descending = false
    var nameFilter: String? = nil

    static let defaultLimit = 100
    static let maxLimit = 1000

    /// `envelope_types` values and the message field each stands for (ANY: all).
    static let envelopeTypes: [String: UInt32?] = [
        "LOG": 4, "COUNTER": 5, "GAUGE": 6, "TIMER": 7, "EVENT": 10, "ANY": nil,
    ]

    static func parse(sourceID: String, pairs: [(name: String, value: String)]) -> Result<LogCacheQuery, APIRoute.Failure> {
        var query = LogCacheQuery(sourceID: sourceID)
        for (name, value) in pairs {
            switch name {
            case "start_time":
                guard let time = Int64(value) else { return .failure(bad("start_time", value, "Unix nanoseconds")) }
                query.startTime = time
            case "end_time":
                guard let time = Int64(value) else { return .failure(bad("end_time", value, "Unix nanoseconds")) }
                // 0 is log-cache's "now", as is no end_time at all.
                query.endTime = time == 0 ? nil : time
            case "limit":
                guard let limit = Int(value), limit >= 0 else {
                    return .failure(bad("limit", value, "a whole number"))
                }
                guard limit <= maxLimit else {
                    return .failure(invalid("limit (\(limit)) must be \(maxLimit) or less"))
                }
                query.limit = limit == 0 ? defaultLimit : limit
            case "descending":
                guard let descending = boolean(value) else { return .failure(bad("descending", value, "true or false")) }
                query.descending = descending
            case "envelope_types":
                guard let field = envelopeTypes[value.uppercased()] else {
                    return .failure(bad("envelope_types", value, "LOG, COUNTER, GAUGE, TIMER, EVENT or ANY"))
                }
                // ANY alone is every type; beside others, log-cache leaves it out.
                if let field { query.messageFields.append(field) }
            case "name_filter":
                guard !value.isEmpty else { continue }
                if let refusal = unsafePattern(value) { return .failure(invalid("name_filter: \(refusal)")) }
                guard (try? Regex(value)) != nil else {
                    return .failure(invalid("name_filter '\(value)' is not a regular expression"))
                }
                query.nameFilter = value
            default:
                // log-cache ignores what it does not know (the cf CLI sends
                // nothing else); so does Sluice.
                continue
            }
        }
        // An end at or before the start is an empty range, answered with
        // an empty batch: the cf CLI's walk starts a second before the
        // newest envelope and reads up to two seconds ago, so its first
        // reads have such a range.
        return .success(query)
    }

    static let maxPatternBytes = 512

    /// Why a name filter is refused though it is a regular expression: a
    /// buffer server matches it with Swift's backtracking `Regex`, and a
    /// repeated group (`(a|aa)*`) or a backreference can take exponential
    /// time on a short name, where log-cache's RE2 takes linear time. Nil:
    /// it may be used.
    static func unsafePattern(_ pattern: String) -> String? {
        guard pattern.utf8.count <= maxPatternBytes else { return "longer than \(maxPatternBytes) bytes" }
        let characters = Array(pattern)
        var index = 0
        var inClass = false
        while index < characters.count {
            let character = characters[index]
            if character == "\\" {
                if index + 1 < characters.count, let digit = characters[index + 1].wholeNumberValue, digit > 0 {
                    return "backreferences (\\\(digit)) are not taken"
                }
                index += 2
                continue
            }
            if inClass {
                if character == "]" { inClass = false }
            } else if character == "[" {
                inClass = true
            } else if character == ")", index + 1 < characters.count, "*+?{".contains(characters[index + 1]) {
                return "a repeated group ('\(String(characters[...(index + 1)].suffix(12)))') is not taken: its matching time can grow exponentially"
            }
            index += 1
        }
        return nil
    }

    /// What the buffer servers are asked, `now` standing for a missing end.
    func request(now: Int64) -> Sluice_V1_StreamRequest {
        var request = Sluice_V1_StreamRequest()
        request.sourceID = sourceID
        request.limit = UInt32(limit)
        request.startTime = startTime
        request.endTime = endTime ?? now
        request.oldestFirst = !descending
        request.messageFields = messageFields
        request.nameFilter = nameFilter ?? ""
        return request
    }

    /// The answer's envelopes, given the merged range read oldest first.
    func order<T>(_ ascending: [T]) -> [T] {
        descending ? Array(ascending.suffix(limit).reversed()) : Array(ascending.prefix(limit))
    }

    /// Go's `strconv.ParseBool`, which log-cache's gateway reads booleans with.
    static func boolean(_ text: String) -> Bool? {
        switch text {
        case "1", "t", "T", "true", "TRUE", "True": true
        case "0", "f", "F", "false", "FALSE", "False": false
        default: nil
        }
    }

    private static func bad(_ name: String, _ value: String, _ wanted: String) -> APIRoute.Failure {
        invalid("\(name) must be \(wanted), not '\(value)'")
    }

    private static func invalid(_ message: String) -> APIRoute.Failure {
        APIRoute.Failure(status: 400, error: "invalid_argument", message: message)
    }
}
