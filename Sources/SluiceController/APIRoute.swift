import SluiceAuth
import SluiceWire

/// The controller's HTTP routes, parsed from a request's method and URI.
/// Plain logic, no NIO: tested on its own.
enum APIRoute: Equatable {
    case health
    case ready
    case metrics
    case recentLogs(app: String, limit: Int)
    case stream(app: String, json: Bool)
    /// `GET /firehose/{subscription_id}`: every app's envelopes, shared
    /// among the readers of one subscription id.
    case firehose(subscription: String, json: Bool)
    /// `GET /drains` (app nil) or `GET /apps/{app}/drains`.
    case listDrains(app: String?)
    /// `POST /apps/{app}/drains`.
    case addDrain(app: String)
    /// `DELETE /apps/{app}/drains/{id or name}`.
    case removeDrain(app: String, drain: String)
    /// `GET /apps/{app}/log-rate-limit`.
    case logRateLimit(app: String)
    /// `PUT /apps/{app}/log-rate-limit`.
    case setLogRateLimit(app: String)
    /// `DELETE /apps/{app}/log-rate-limit`: back to the servers' default.
    case removeLogRateLimit(app: String)
    /// log-cache's `GET /api/v1/info`.
    case logCacheInfo
    /// log-cache's `GET /api/v1/meta`: what is held of each app.
    case logCacheMeta
    /// log-cache's `GET /api/v1/read/{source_id}`.
    case logCacheRead(LogCacheQuery)
    /// The RLP gateway's `GET /v2/read`: server-sent events.
    case rlpRead(RLPQuery)
    /// The web console's page: `GET /` (or `/index.html`).
    case console
    /// The console's script or style sheet: `GET /ui/console.js|css`.
    case consoleAsset(String)
    /// `POST /ui/login-codes`: a one-time sign-in code for the caller's
    /// token (`sluice ui`).
    case loginCode
    /// `POST /ui/login`: the token of a sign-in code, once.
    case login
    /// `GET /apps`: the apps the token may read, with what the servers
    /// hold of each (the console's list).
    case apps
    /// `GET /apps/{app}/drain-status`: how each drain of the app stands at
    /// the servers (the console's drains page).
    case drainStatus(app: String)
    /// `GET /cluster`: this controller's zone, and each zone's controllers
    /// as its servers see them (the console's cluster page).
    case cluster

    struct Failure: Error, Equatable {
        var status: Int
        var error: String
        var message: String
        /// A 401's `WWW-Authenticate` value.
        var challenge: String? = nil
    }

    /// What the route reads or changes, for the access rules.
    var resource: Resource {
        switch self {
        case .health, .ready, .metrics, .logCacheInfo, .console, .consoleAsset, .login, .cluster: .open
        case .loginCode, .apps: .everyApp
        case .recentLogs(let app, _), .stream(let app, _), .addDrain(let app), .removeDrain(let app, _),
            .logRateLimit(let app), .drainStatus(let app):
            .app(app)
        case .logCacheRead(let query): .app(query.sourceID)
        case .listDrains(let app): app.map(Resource.app) ?? .everyApp
        case .logCacheMeta: .everyApp
        case .rlpRead(let query):
            switch query.sourceIDs.count {
            case 0: .firehose
            case 1: .app(query.sourceIDs[0])
            default: .apps(query.sourceIDs)
            }
        case .firehose: .firehose
        case .setLogRateLimit(let app), .removeLogRateLimit(let app): .appAdmin(app)
        }
    }

    /// How a refused request on this route is answered: as `failure(for:)`
    /// says, but the Cloud Foundry APIs (log-cache, the RLP gateway) answer
    /// every refusal of access with 404 (REFERENCE §8), so that no one can
    /// tell an app they may not read from one that does not exist.
    func refusal(for outcome: AccessOutcome) -> Failure? {
        guard let failure = Self.failure(for: outcome) else { return nil }
        switch self {
        case .logCacheInfo, .logCacheMeta, .logCacheRead, .rlpRead:
            return failure.status == 503 ? failure : Failure(status: 404, error: "not_found", message: "resource not found")
        default:
            return failure
        }
    }

    /// Whether a token may come as `?access_token=` (a browser cannot set
    /// headers on a websocket).
    var takesQueryToken: Bool {
        switch self {
        case .stream, .firehose: true
        default: false
        }
    }

    /// What a websocket on this route reads, and in which form, if it is one.
    var stream: (target: StreamTarget, json: Bool)? {
        switch self {
        case .stream(let app, let json): (.app(app), json)
        case .firehose(let subscription, let json): (.firehose(subscription: subscription), json)
        default: nil
        }
    }

    /// The bearer token of a request: `Authorization: Bearer TOKEN` (any
    /// case, as the cf CLI writes `bearer`), else, where the route takes
    /// one, `?access_token=TOKEN`.
    static func token(authorization: [String], uri: String, takesQueryToken: Bool) -> String? {
        for value in authorization {
            let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return String(parts[1])
            }
        }
        guard takesQueryToken else { return nil }
        return URIQuery.split(uri).query["access_token"]
    }

    /// How a refused request is answered (REFERENCE §2, §8): 401 with a
    /// `WWW-Authenticate: Bearer` challenge (and the reason for a bad
    /// token), 404 as log-cache words it, 403, or 503.
    static func failure(for outcome: AccessOutcome) -> Failure? {
        switch outcome {
        case .allowed:
            return nil
        case .unauthorized(nil):
            return Failure(
                status: 401, error: "unauthorized",
                message: "a token is needed: send Authorization: Bearer TOKEN (a websocket may give ?access_token=TOKEN)",
                challenge: #"Bearer realm="sluice""#)
        case .unauthorized(let given?):
            // A reason may quote the token's header: nothing unprintable
            // goes into a response header, and not too much of it.
            let reason = String(String.UnicodeScalarView(given.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(200)))
            let quoted = reason.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"")
            return Failure(
                status: 401, error: "invalid_token", message: reason,
                challenge: #"Bearer realm="sluice", error="invalid_token", error_description="\#(quoted)""#)
        case .notFound:
            return Failure(status: 404, error: "not_found", message: "resource not found")
        case .forbidden(let message):
            return Failure(status: 403, error: "forbidden", message: message)
        case .unavailable(let message):
            return Failure(status: 503, error: "authorization_unavailable", message: message)
        }
    }

    /// A reader past `--max-readers` or `--max-readers-per-app`: 429, as
    /// for any client that should come back later (or try another
    /// controller).
    static func tooManyReaders(_ refusal: ReaderCounts.Refusal, target: StreamTarget, readers: Int) -> Failure {
        let message =
            switch (refusal, target) {
            case (.total, _):
                "this controller serves \(readers) readers, its limit (--max-readers): try again later or another controller"
            case (.perApp, .app(let app)):
                "app \(app) has \(readers) readers, the limit (--max-readers-per-app)"
            case (.perApp, .firehose(let subscription)):
                "firehose subscription \(subscription) has \(readers) readers, the limit (--max-readers-per-app)"
            }
        return Failure(status: 429, error: "too_many_readers", message: message)
    }

    static let defaultLimit = 1000
    static let maxLimit = 100_000
    static let maxAppIDBytes = 256

    static func parse(method: String, uri: String) -> Result<APIRoute, Failure> {
        let (path, pairs) = URIQuery.pairs(uri)
        let query = Dictionary(pairs, uniquingKeysWith: { _, last in last })
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let route: Result<APIRoute, Failure>
        var methods = ["GET"]
        switch Array(segments) {
        case [""], ["index.html"]:
            route = .success(.console)
        case ["ui", "console.js"], ["ui", "console.css"]:
            route = .success(.consoleAsset(segments.joined(separator: "/")))
        case ["ui", "login-codes"]:
            methods = ["POST"]
            route = .success(.loginCode)
        case ["ui", "login"]:
            methods = ["POST"]
            route = .success(.login)
        case ["apps"]:
            route = .success(.apps)
        case ["cluster"]:
            route = .success(.cluster)
        case ["healthz"]:
            route = .success(.health)
        case ["readyz"]:
            route = .success(.ready)
        case ["metrics"]:
            route = .success(.metrics)
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "recentlogs":
            route = appID(parts[1]).flatMap { app in
                limit(query["limit"]).map { .recentLogs(app: app, limit: $0) }
            }
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "stream":
            route = appID(parts[1]).flatMap { app in format(query["format"]).map { .stream(app: app, json: $0) } }
        case let parts where parts.count == 2 && parts[0] == "firehose":
            // A subscription id is named as an app id is.
            route = appID(parts[1])
                .mapError { Failure(status: 400, error: "bad_subscription_id", message: $0.message.replacing("app id", with: "subscription id")) }
                .flatMap { id in format(query["format"]).map { .firehose(subscription: id, json: $0) } }
        case ["drains"]:
            route = .success(.listDrains(app: nil))
        case ["v2", "read"]:
            // The gateway answers another method with 405 before it reads the query.
            guard method == "GET" else {
                return .failure(
                    Failure(status: 405, error: "method_not_allowed", message: "\(path) takes GET, not \(method)"))
            }
            route = RLPQuery.parse(pairs).map(APIRoute.rlpRead)
        case ["api", "v1", "info"]:
            route = .success(.logCacheInfo)
        case ["api", "v1", "meta"]:
            route = .success(.logCacheMeta)
        case let parts where parts.count == 4 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "read":
            route = appID(parts[3]).flatMap { LogCacheQuery.parse(sourceID: $0, pairs: pairs).map(APIRoute.logCacheRead) }
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "drains":
            methods = ["GET", "POST"]
            route = appID(parts[1]).map { method == "POST" ? .addDrain(app: $0) : .listDrains(app: $0) }
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "drain-status":
            route = appID(parts[1]).map { .drainStatus(app: $0) }
        case let parts where parts.count == 3 && parts[0] == "apps" && parts[2] == "log-rate-limit":
            methods = ["GET", "PUT", "DELETE"]
            route = appID(parts[1]).map { app in
                switch method {
                case "PUT": .setLogRateLimit(app: app)
                case "DELETE": .removeLogRateLimit(app: app)
                default: .logRateLimit(app: app)
                }
            }
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

    /// `?format=`: json, else protobuf (binary).
    static func format(_ raw: String?) -> Result<Bool, Failure> {
        switch raw {
        case nil, "protobuf": .success(false)
        case "json": .success(true)
        case let other?:
            .failure(Failure(status: 400, error: "bad_format", message: "format must be json or protobuf, not '\(other)'"))
        }
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
