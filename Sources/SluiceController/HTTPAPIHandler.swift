import FoundationEssentials
import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Prometheus
import SluiceAuth
import SluiceBindings
import SluiceConsole
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// The controller's HTTP API: recent logs, health, metrics, and clear JSON
/// errors. Websocket streams are taken by the upgrader before this handler.
final class HTTPAPIHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let egress: Egress
    private let readiness: @Sendable () -> Readiness
    private let bindings: (any BindingStore)?
    private let authorizer: Authorizer?
    /// Why this connection's websocket upgrade was refused, if it was: the
    /// upgrader checked the token, and this handler answers.
    private let refusedUpgrade: RefusedUpgrade?
    private let registry: PrometheusCollectorRegistry?
    private let logger: Logger
    /// When the controller started (for log-cache's `vm_uptime`).
    private let startedAt: Int64
    /// What `/v2/read` streams need; nil: the route answers 503.
    private let events: Events?
    /// The web console's page, its files and its sign-in codes.
    private let console: ConsoleEndpoints
    /// The server-sent-events stream this connection carries, once one
    /// began: the connection is the stream's from then on.
    private var stream: EventStreamReader?
    /// Out of the pipeline: a token check that ends now starts nothing.
    private var removed = false
    private var request: HTTPRequestHead?

    struct Events: Sendable {
        var readers: ReaderAdmission
        var metrics: TailMetrics
        var settings: EventStreamReader.Settings
    }
    private var body = ByteBuffer()
    private var bodyTooLarge = false

    init(
        egress: Egress, bindings: (any BindingStore)?, authorizer: Authorizer? = nil,
        refusedUpgrade: RefusedUpgrade? = nil, registry: PrometheusCollectorRegistry?, logger: Logger,
        startedAt: Int64 = WallClock.nowNanos(), events: Events? = nil, console: ConsoleEndpoints = ConsoleEndpoints(),
        readiness: @escaping @Sendable () -> Readiness = { .ready }
    ) {
        self.console = console
        self.readiness = readiness
        self.startedAt = startedAt
        self.events = events
        self.egress = egress
        self.bindings = bindings
        self.authorizer = authorizer
        self.refusedUpgrade = refusedUpgrade
        self.registry = registry
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // A connection carrying an event stream takes no more requests.
        guard stream == nil else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
            body.clear()
            bodyTooLarge = false
        case .body(var part):
            if body.readableBytes + part.readableBytes > APIRoute.maxBodyBytes {
                bodyTooLarge = true
            } else {
                body.writeBuffer(&part)
            }
        case .end:
            guard let head = request else { return }
            request = nil
            if bodyTooLarge {
                respondError(
                    .init(status: 413, error: "body_too_large",
                          message: "request bodies are limited to \(APIRoute.maxBodyBytes) bytes"),
                    head: head, context: context)
                return
            }
            handle(head, body: body, context: context)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        stream?.writabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stream?.stop()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        removed = true
        stream?.stop()
        // The stream holds this handler's context: let both go.
        stream = nil
    }

    /// Parses the route, checks the token where one is needed (every route
    /// but health and metrics), then serves it.
    private func handle(_ head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        let route: APIRoute
        switch APIRoute.parse(method: head.method.rawValue, uri: console.settings.basePath.strip(head.uri)) {
        case .failure(let failure):
            respondError(failure, head: head, context: context)
            return
        case .success(let parsed):
            route = parsed
        }
        if route.stream != nil, let refused = refusedUpgrade?.take() {
            respondError(refused, head: head, context: context)
            return
        }
        guard let authorizer, route.resource != .open else {
            serve(route, grant: nil, head: head, body: body, context: context)
            return
        }
        let loop = context.eventLoop
        let boundContext = NIOLoopBound(context, eventLoop: loop)
        let bound = NIOLoopBound(self, eventLoop: loop)
        authorizer.check(route, head, on: loop).whenSuccess { outcome in
            if let failure = route.refusal(for: outcome) {
                bound.value.respondError(failure, head: head, context: boundContext.value)
            } else if case .allowed(let grant) = outcome {
                bound.value.serve(route, grant: grant, head: head, body: body, context: boundContext.value)
            }
        }
    }

    /// Serves a route the caller may use; `grant` is nil when no token is
    /// checked (a controller without keys, or an open route).
    private func serve(_ route: APIRoute, grant: Grant?, head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        switch route {
        case .health:
            respond(status: .ok, contentType: "application/json", body: ByteBuffer(string: #"{"status":"ok"}"#),
                    head: head, context: context)
        case .ready:
            let answer = readiness()
            respond(
                status: HTTPResponseStatus(statusCode: answer.status), contentType: "application/json",
                body: ByteBuffer(string: answer.json), head: head, context: context)
        case .metrics:
            let text = registry?.emitToBuffer() ?? []
            respond(status: .ok, contentType: "text/plain; version=0.0.4", body: ByteBuffer(bytes: text),
                    head: head, context: context)
        case .console, .consoleAsset, .loginCode, .login:
            serveConsole(route, grant: grant, head: head, body: body, context: context)
        case .apps:
            let only: Grant? = grant.flatMap { $0.admin ? nil : $0 }
            respondFromMeta(head: head, context: context) { meta in
                ConsoleEndpoints.appsJSON(meta.sources.values.filter { only?.names($0.sourceID) ?? true }, partial: meta.partial)
            }
        case .cluster:
            let zones = egress.zones.map(\.name)
            let zone = console.zone
            respondFromMeta(head: head, context: context) { meta in
                ConsoleEndpoints.clusterJSON(zone: zone, zones: zones, controllers: meta.controllers, partial: meta.partial)
            }
        case .drainStatus(let app):
            respondFromMeta(head: head, context: context) { meta in
                ConsoleEndpoints.drainStatusJSON(
                    meta.drains.filter { $0.value.app.utf8.elementsEqual(app.utf8) }, partial: meta.partial)
            }
        case .stream, .firehose:
            respondError(
                .init(status: 400, error: "websocket_required",
                      message: "\(URIQuery.split(head.uri).path) is a websocket: send a GET with Upgrade: websocket"),
                head: head, context: context)
        case .listDrains(let app):
            // A token that is no admin's sees the drains of its own apps.
            let only: Grant? = grant.flatMap { $0.admin ? nil : $0 }
            drainCall(head, context: context) { store in
                (200, Self.drainsJSON(try await store.list(app: app).filter { only?.names($0.app) ?? true }))
            }
        case .addDrain(let app):
            switch Self.parseAddDrain(body) {
            case .failure(let failure):
                respondError(failure, head: head, context: context)
            case .success(let request):
                let logger = self.logger
                drainCall(head, context: context) { store in
                    let binding = try await store.add(app: app, url: request.text, name: request.name)
                    logger.info(
                        "drain added",
                        metadata: [
                            LogKeys.appID: "\(app)", LogKeys.drain: "\(binding.id)", LogKeys.url: "\(request.url.redacted)",
                        ])
                    return (201, binding.json)
                }
            }
        case .removeDrain(let app, let drain):
            let logger = self.logger
            drainCall(head, context: context) { store in
                let removed = try await store.remove(app: app, idOrName: drain)
                logger.info("drain removed", metadata: [LogKeys.appID: "\(app)", LogKeys.drain: "\(removed.id)"])
                return (204, nil)
            }
        case .logRateLimit(let app):
            drainCall(head, context: context) { store in
                (200, Self.logRateLimitJSON(app: app, bytesPerSecond: try await store.logRateLimit(app: app)))
            }
        case .setLogRateLimit(let app):
            switch Self.parseLogRateLimit(body) {
            case .failure(let failure):
                respondError(failure, head: head, context: context)
            case .success(let limit):
                let logger = self.logger
                drainCall(head, context: context) { store in
                    try await store.setLogRateLimit(app: app, bytesPerSecond: limit)
                    logger.info("app log rate limit set", metadata: [LogKeys.appID: "\(app)", "bytes_per_second": "\(limit)"])
                    return (200, Self.logRateLimitJSON(app: app, bytesPerSecond: limit))
                }
            }
        case .removeLogRateLimit(let app):
            let logger = self.logger
            drainCall(head, context: context) { store in
                try await store.setLogRateLimit(app: app, bytesPerSecond: nil)
                logger.info("app log rate limit removed", metadata: [LogKeys.appID: "\(app)"])
                return (204, nil)
            }
        case .logCacheInfo:
            let uptime = (WallClock.nowNanos() - startedAt) / 1_000_000_000
            respond(
                status: .ok, contentType: "application/json",
                body: ByteBuffer(string: #"{"version":"\#(Self.logCacheVersion)","vm_uptime":"\#(uptime)"}"#), head: head,
                context: context)
        case .logCacheMeta:
            let only: Grant? = grant.flatMap { $0.admin ? nil : $0 }
            let loop = context.eventLoop
            let boundContext = NIOLoopBound(context, eventLoop: loop)
            let bound = NIOLoopBound(self, eventLoop: loop)
            egress.meta(on: loop).whenSuccess { meta in
                let extra = Self.partialHeaders(meta.partial)
                // log-cache's meta names what is held or was let go (not an
                // app whose every line its log rate limit dropped).
                let sources = meta.sources.values.filter {
                    ($0.count > 0 || $0.expired > 0) && (only?.names($0.sourceID) ?? true)
                }
                bound.value.respond(
                    status: .ok, contentType: "application/json", body: ByteBuffer(string: Self.metaJSON(sources)),
                    head: head, context: boundContext.value, extraHeaders: extra)
            }
        case .rlpRead(let query):
            guard let events else {
                respondError(
                    .init(status: 503, error: "streaming_unavailable", message: "this controller serves no event streams"),
                    head: head, context: context)
                return
            }
            // The client may have gone while its token was checked.
            guard !removed, context.channel.isActive else { return }
            let targets: [StreamTarget] =
                query.sourceIDs.isEmpty
                ? [.firehose(subscription: query.shardID.isEmpty ? "rlp-\(UUID().uuidString)" : query.shardID)]
                : query.sourceIDs.map(StreamTarget.app)
            let remote = context.channel.remoteAddress.map { "\($0)" } ?? "?"
            if let failure = events.readers.admit(targets, remote: remote) {
                respondError(failure, head: head, context: context)
                return
            }
            let reader = EventStreamReader(
                targets: targets, egress: egress, selectors: query.selectors, settings: events.settings,
                metrics: events.metrics, logger: logger, context: context)
            stream = reader
            let readers = events.readers
            context.channel.closeFuture.whenComplete { _ in readers.release(targets) }
            reader.start(request: head)
        case .logCacheRead(let query):
            let loop = context.eventLoop
            let boundContext = NIOLoopBound(context, eventLoop: loop)
            let bound = NIOLoopBound(self, eventLoop: loop)
            egress.read(query.request(now: WallClock.nowNanos()), on: loop).whenSuccess { read in
                let extra = Self.partialHeaders(read.partial)
                let body = #"{"envelopes":"# + EnvelopeJSON.batch(query.order(read.envelopes)) + "}"
                bound.value.respond(
                    status: .ok, contentType: "application/json", body: ByteBuffer(string: body), head: head,
                    context: boundContext.value, extraHeaders: extra)
            }
        case .recentLogs(let app, let limit):
            let wantsProtobuf = head.headers["Accept"].contains { $0.lowercased().contains("application/x-protobuf") }
            let loop = context.eventLoop
            let boundContext = NIOLoopBound(context, eventLoop: loop)
            let bound = NIOLoopBound(self, eventLoop: loop)
            egress.recent(app: app, limit: limit, on: loop).whenSuccess { recent in
                let context = boundContext.value
                let handler = bound.value
                let extra = Self.partialHeaders(recent.partial)
                if wantsProtobuf {
                    var body = context.channel.allocator.buffer(
                        capacity: recent.envelopes.reduce(0) { $0 + $1.readableBytes + 6 })
                    for envelope in recent.envelopes { body.writeBatchEntry(envelope) }
                    handler.respond(
                        status: .ok, contentType: "application/x-protobuf", body: body, head: head, context: context,
                        extraHeaders: extra)
                } else {
                    handler.respond(
                        status: .ok, contentType: "application/json",
                        body: ByteBuffer(string: Self.json(recent.envelopes, partial: recent.partial)), head: head,
                        context: context, extraHeaders: extra)
                }
            }
        }
    }

    /// Answers with the JSON `body` makes of the servers' meta answer (one
    /// at most a second old), naming the zones left out.
    private func respondFromMeta(
        head: HTTPRequestHead, context: ChannelHandlerContext,
        _ body: @escaping @Sendable (Egress.MetaAnswer) -> String
    ) {
        let loop = context.eventLoop
        let boundContext = NIOLoopBound(context, eventLoop: loop)
        let bound = NIOLoopBound(self, eventLoop: loop)
        egress.meta(on: loop, reusing: ConsoleEndpoints.metaReuse).whenSuccess { meta in
            bound.value.respond(
                status: .ok, contentType: "application/json", body: ByteBuffer(string: body(meta)), head: head,
                context: boundContext.value, extraHeaders: Self.partialHeaders(meta.partial))
        }
    }

    /// The console's page and files (with their security headers), and
    /// its sign-in codes.
    private func serveConsole(
        _ route: APIRoute, grant: Grant?, head: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext
    ) {
        guard console.settings.enabled else {
            respondError(
                .init(status: 404, error: "not_found", message: "the web console is off on this controller (--no-ui)"),
                head: head, context: context)
            return
        }
        switch route {
        case .console:
            respond(
                status: .ok, contentType: "text/html; charset=utf-8",
                body: ByteBuffer(string: ConsoleAssets.page(base: console.settings.basePath)), head: head,
                context: context, extraHeaders: ConsoleAssets.securityHeaders)
        case .consoleAsset(let path):
            guard let asset = ConsoleAssets.asset(path) else {
                respondError(.init(status: 404, error: "not_found", message: "no such file: \(path)"), head: head, context: context)
                return
            }
            respond(
                status: .ok, contentType: asset.contentType, body: ByteBuffer(string: asset.body), head: head,
                context: context, extraHeaders: ConsoleAssets.securityHeaders)
        case .loginCode:
            guard let grant else {
                respondError(
                    .init(status: 404, error: "no_tokens",
                          message: "this controller checks no tokens (--no-auth): open the console without signing in"),
                    head: head, context: context)
                return
            }
            let code = console.issue(token: grant.token)
            respond(
                status: .created, contentType: "application/json",
                body: ByteBuffer(string: #"{"code":"\#(code)","expires_in":\#(LoginCodes.lifetime / 1_000_000_000)}"#),
                head: head, context: context, extraHeaders: [("Cache-Control", "no-store")])
        case .login:
            guard let request = try? JSONDecoder().decode(ConsoleEndpoints.LoginRequest.self, from: Data(body.readableBytesView))
            else {
                respondError(
                    .init(status: 400, error: "bad_json", message: #"the body must be JSON: {"code": "…"}"#), head: head,
                    context: context)
                return
            }
            guard let token = console.redeem(request.code) else {
                respondError(
                    .init(status: 400, error: "invalid_code",
                          message: "this sign-in link was used already, has expired, or was made by another controller: run sluice ui again"),
                    head: head, context: context)
                return
            }
            respond(
                status: .ok, contentType: "application/json", body: ByteBuffer(string: #"{"token":"\#(jsonEscape(token))"}"#),
                head: head, context: context, extraHeaders: [("Cache-Control", "no-store")])
        default:
            break
        }
    }

    /// Runs a drain API call on the bindings store and answers with what it
    /// gives: (status, JSON body or nil for no content) or a failure.
    private func drainCall(
        _ head: HTTPRequestHead, context: ChannelHandlerContext,
        _ call: @escaping @Sendable (any BindingStore) async throws -> (Int, String?)
    ) {
        guard let bindings else {
            respondError(
                .init(status: 503, error: "no_bindings_store",
                      message: "this controller was started without a bindings store (--bindings)"),
                head: head, context: context)
            return
        }
        let loop = context.eventLoop
        let boundContext = NIOLoopBound(context, eventLoop: loop)
        let bound = NIOLoopBound(self, eventLoop: loop)
        let logger = self.logger
        let storeErrors = registry.map {
            Counter(label: MetricNames.controllerBindingsStoreErrors, factory: PrometheusMetricsFactory(registry: $0))
        }
        Task {
            let outcome: Result<(Int, String?), APIRoute.Failure>
            do {
                outcome = .success(try await call(bindings))
            } catch let error as APIRoute.Failure {
                outcome = .failure(error)
            } catch let error as BindingError {
                switch error {
                case .duplicate(let message): outcome = .failure(.init(status: 409, error: "duplicate", message: message))
                case .notFound(let message): outcome = .failure(.init(status: 404, error: "not_found", message: message))
                case .store(let message):
                    storeErrors?.increment()
                    outcome = .failure(.init(status: 503, error: "store_unavailable", message: message))
                }
            } catch {
                // A full or failing disk under SQLite lands here ("database
                // or disk is full", "disk I/O error"): the drains already
                // bound go on as they are.
                storeErrors?.increment()
                logger.error("bindings store failed", metadata: [LogKeys.error: "\(error)"])
                outcome = .failure(
                    .init(status: 503, error: "store_unavailable", message: "the bindings store failed: \(error)"))
            }
            loop.execute {
                switch outcome {
                case .success((let status, let json)):
                    bound.value.respond(
                        status: HTTPResponseStatus(statusCode: status), contentType: "application/json",
                        body: json.map { ByteBuffer(string: $0) } ?? ByteBuffer(), head: head,
                        context: boundContext.value)
                case .failure(let failure):
                    bound.value.respondError(failure, head: head, context: boundContext.value)
                }
            }
        }
    }

    struct AddDrainRequest: Decodable {
        var url: String
        var name: String?
    }

    static func parseAddDrain(_ body: ByteBuffer) -> Result<(url: DrainURL, text: String, name: String?), APIRoute.Failure> {
        let request: AddDrainRequest
        do {
            request = try JSONDecoder().decode(AddDrainRequest.self, from: Data(body.readableBytesView))
        } catch {
            return .failure(
                .init(status: 400, error: "bad_json",
                      message: #"the body must be JSON: {"url": "syslog://HOST:PORT", "name": "optional"}"#))
        }
        let url: DrainURL
        do {
            url = try DrainURL(parsing: request.url)
        } catch {
            return .failure(.init(status: 422, error: "bad_url", message: error.reason))
        }
        return APIRoute.drainName(request.name).map { (url, request.url, $0) }
    }

    struct LogRateLimitRequest: Decodable {
        var bytes_per_second: Int
    }

    /// `{"bytes_per_second": N}`: N bytes a second, 0 for nothing, -1 for no limit.
    static func parseLogRateLimit(_ body: ByteBuffer) -> Result<Int, APIRoute.Failure> {
        guard let request = try? JSONDecoder().decode(LogRateLimitRequest.self, from: Data(body.readableBytesView)) else {
            return .failure(
                .init(status: 400, error: "bad_json",
                      message: #"the body must be JSON: {"bytes_per_second": N} (0 for nothing, -1 for no limit)"#))
        }
        guard request.bytes_per_second >= -1 else {
            return .failure(
                .init(status: 422, error: "bad_limit",
                      message: "bytes_per_second is a number of bytes, 0 for nothing or -1 for no limit"))
        }
        return .success(request.bytes_per_second)
    }

    /// The app's own limit, or `null` with `"source":"default"` when the
    /// servers' default (`--app-log-rate-limit`) holds for it.
    static func logRateLimitJSON(app: String, bytesPerSecond: Int?) -> String {
        let value = bytesPerSecond.map(String.init) ?? "null"
        return #"{"app":"\#(jsonEscape(app))","bytes_per_second":\#(value),"source":"\#(bytesPerSecond == nil ? "default" : "app")"}"#
    }

    /// `Sluice-Partial: z2,…` naming the zones left out of an answer; none
    /// when every zone answered.
    static func partialHeaders(_ zones: [String]) -> [(String, String)] {
        zones.isEmpty ? [] : [("Sluice-Partial", zones.joined(separator: ","))]
    }

    /// `"partial":["z2",…]`: the zones left out of an answer, in its JSON.
    static func partialField(_ zones: [String]) -> String {
        #""partial":["# + zones.map { "\"\(jsonEscape($0))\"" }.joined(separator: ",") + "]"
    }

    /// The log-cache version `/api/v1/info` gives: clients such as
    /// go-log-cache use the `/api/v1` paths from 2.0.0 on.
    static let logCacheVersion = "3.0.0"

    /// log-cache's meta: `{"meta":{"APP":{"count":"N","expired":"N",
    /// "oldestTimestamp":"T","newestTimestamp":"T"}}}` (its JSON names).
    static func metaJSON(_ sources: some Sequence<Sluice_V1_SourceMeta>) -> String {
        let entries = sources.sorted { $0.sourceID < $1.sourceID }.map { source in
            #""\#(jsonEscape(source.sourceID))":{"count":"\#(source.count)","expired":"\#(source.expired)","oldestTimestamp":"\#(source.oldestTimestamp)","newestTimestamp":"\#(source.newestTimestamp)"}"#
        }
        return #"{"meta":{"# + entries.joined(separator: ",") + "}}"
    }

    static func drainsJSON(_ list: [DrainBinding]) -> String {
        #"{"drains":["# + list.map(\.json).joined(separator: ",") + "]}"
    }

    /// `{"envelopes":{"batch":[…]}}`, each envelope in protobuf's JSON mapping.
    static func json(_ envelopes: [ByteBuffer], partial: [String] = []) -> String {
        var out = #"{"envelopes":{"batch":["#
        var first = true
        for bytes in envelopes {
            guard let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView)),
                let json = try? envelope.jsonString()
            else { continue }
            if !first { out += "," }
            first = false
            out += json
        }
        out += "]}"
        if !partial.isEmpty {
            out += "," + partialField(partial)
        }
        out += "}"
        return out
    }

    private func respondError(_ failure: APIRoute.Failure, head: HTTPRequestHead, context: ChannelHandlerContext) {
        HTTPResponder.error(
            context: context, request: head, status: HTTPResponseStatus(statusCode: failure.status), code: failure.error,
            message: failure.message, headers: failure.challenge.map { [("WWW-Authenticate", $0)] } ?? [],
            close: failure.status == 413)
    }

    private func respond(
        status: HTTPResponseStatus, contentType: String, body: ByteBuffer, head: HTTPRequestHead,
        context: ChannelHandlerContext, extraHeaders: [(String, String)] = []
    ) {
        HTTPResponder.respond(
            context: context, request: head, status: status, contentType: contentType, body: body, headers: extraHeaders)
    }
}

/// Why a connection's websocket upgrade was refused: set by the upgrader,
/// which checked the token, and taken by the HTTP handler, which answers
/// the request the upgrade did not take.
final class RefusedUpgrade: Sendable {
    private let failure = NIOLockedValueBox<APIRoute.Failure?>(nil)

    func set(_ value: APIRoute.Failure) {
        failure.withLockedValue { $0 = value }
    }

    func take() -> APIRoute.Failure? {
        failure.withLockedValue { value in
            defer { value = nil }
            return value
        }
    }
}
