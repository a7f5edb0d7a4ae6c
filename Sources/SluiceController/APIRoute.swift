/// The controller's HTTP routes, parsed from a request's method and URI.
/// Plain logic, no NIO: tested on its own.
enum APIRoute: Equatable {
    case health
    case metrics
    case recentLogs(app: String, limit: Int)
    case stream(app: String, json: Bool)

    struct Failure: Error, Equatable {
        var status: Int
        var error: String
        var message: String
    }

    static let defaultLimit = 1000
    static let maxLimit = 100_000
    static let maxAppIDBytes = 256

    static func parse(method: String, uri: String) -> Result<APIRoute, Failure> {
        let (path, query) = split(uri)
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let route: Result<APIRoute, Failure>
        switch Array(segments) {
        case ["healthz"]:
            route = .success(.health)
        case ["metrics"]:
            route = .success(.metrics)
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "recentlogs":
            route = appID(parts[1]).flatMap { app in
                limit(query["limit"]).map { .recentLogs(app: app, limit: $0) }
            }
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "stream":
            route = appID(parts[1]).flatMap { app in
                switch query["format"] {
                case nil, "protobuf": return .success(.stream(app: app, json: false))
                case "json": return .success(.stream(app: app, json: true))
                case let other?:
                    return .failure(
                        Failure(
                            status: 400, error: "bad_format",
                            message: "format must be json or protobuf, not '\(other)'"))
                }
            }
        default:
            return .failure(Failure(status: 404, error: "not_found", message: "no such endpoint: \(path)"))
        }
        if case .success = route, method != "GET" {
            return .failure(Failure(status: 405, error: "method_not_allowed", message: "\(path) takes GET only"))
        }
        return route
    }

    static func appID(_ raw: Substring) -> Result<String, Failure> {
        guard let decoded = percentDecode(raw) else {
            return .failure(Failure(status: 400, error: "bad_app_id", message: "the app id is not valid percent-encoded UTF-8"))
        }
        guard !decoded.isEmpty else {
            return .failure(Failure(status: 400, error: "bad_app_id", message: "the app id is empty"))
        }
        guard decoded.utf8.count <= maxAppIDBytes else {
            return .failure(
                Failure(status: 400, error: "bad_app_id", message: "the app id is longer than \(maxAppIDBytes) bytes"))
        }
        guard !decoded.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "/" }) else {
            return .failure(
                Failure(status: 400, error: "bad_app_id", message: "the app id has a control character or a slash"))
        }
        return .success(decoded)
    }

    static func limit(_ raw: String?) -> Result<Int, Failure> {
        guard let raw else { return .success(defaultLimit) }
        guard let value = Int(raw), value >= 1, value <= maxLimit else {
            return .failure(
                Failure(
                    status: 400, error: "bad_limit",
                    message: "limit must be a whole number from 1 to \(maxLimit), not '\(raw)'"))
        }
        return .success(value)
    }

    static func split(_ uri: String) -> (path: String, query: [String: String]) {
        guard let mark = uri.firstIndex(of: "?") else { return (uri, [:]) }
        var query: [String: String] = [:]
        for pair in uri[uri.index(after: mark)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = percentDecode(parts[0], plusIsSpace: true) ?? String(parts[0])
            let value = parts.count > 1 ? (percentDecode(parts[1], plusIsSpace: true) ?? String(parts[1])) : ""
            query[key] = value
        }
        return (String(uri[..<mark]), query)
    }

    static func percentDecode(_ text: Substring, plusIsSpace: Bool = false) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    return nil
                }
                bytes.append(high << 4 | low)
            } else if plusIsSpace && byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
