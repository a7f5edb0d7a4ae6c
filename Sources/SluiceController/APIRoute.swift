import SluiceWire

/// The controller's HTTP routes, parsed from a request's method and URI.
/// Plain logic, no NIO: tested on its own.
enum APIRoute: Equatable {
    case health
    case metrics
    case recentLogs(app: String, limit: Int)
    case stream(app: String, json: Bool)
    /// `GET /drains` (app nil) or `GET /apps/{app}/drains`.
    case listDrains(app: String?)
    /// `POST /apps/{app}/drains`.
    case addDrain(app: String)
    /// `DELETE /apps/{app}/drains/{id or name}`.
    case removeDrain(app: String, drain: String)

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
        var methods = ["GET"]
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
        case ["drains"]:
            route = .success(.listDrains(app: nil))
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "drains":
            methods = ["GET", "POST"]
            route = appID(parts[1]).map { method == "POST" ? .addDrain(app: $0) : .listDrains(app: $0) }
        case let parts where parts.count == 4 && parts[0] == "apps" && parts[2] == "drains":
            methods = ["DELETE"]
            route = appID(parts[1]).flatMap { app in
                guard let drain = URIQuery.percentDecode(parts[3]), !drain.isEmpty else {
                    return .failure(
                        Failure(status: 400, error: "bad_drain", message: "the drain id or name is empty or not UTF-8"))
                }
                return .success(.removeDrain(app: app, drain: drain))
            }
        default:
            return .failure(Failure(status: 404, error: "not_found", message: "no such endpoint: \(path)"))
        }
        if case .success = route, !methods.contains(method) {
            return .failure(
                Failure(
                    status: 405, error: "method_not_allowed",
                    message: "\(path) takes \(methods.joined(separator: " or ")), not \(method)"))
        }
        return route
    }

    /// The largest request body taken (a drain binding is a few hundred bytes).
    static let maxBodyBytes = 64 * 1024
    static let maxDrainNameBytes = 128

    /// A drain name: printable, no slash (it goes in a URL path), not too long.
    static func drainName(_ name: String?) -> Result<String?, Failure> {
        guard let name else { return .success(nil) }
        if name.isEmpty || name.utf8.count > maxDrainNameBytes
            || name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F || $0 == "/" })
        {
            return .failure(
                Failure(
                    status: 422, error: "bad_name",
                    message: "a drain name is 1 to \(maxDrainNameBytes) bytes, with no control character or slash"))
        }
        return .success(name)
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
