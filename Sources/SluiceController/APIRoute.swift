import SluiceWire

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
        let (path, query) = URIQuery.split(uri)
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
        guard let decoded = URIQuery.percentDecode(raw) else {
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
}
