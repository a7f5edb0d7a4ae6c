import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Prometheus
import ServiceLifecycle
import SluiceAuth
import SluiceBindings
import SluiceConsole
import SluiceGRPC
import SluiceTLS
import SluiceTransport
import SluiceWire

/// `sluice controller`: routes ingress to its zone's buffer servers by
/// rendezvous hashing of the app id, and serves recent logs and websocket
/// tails over HTTP.
public final class Controller: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var zone: String
        public var ingress: Endpoint
        public var http: Endpoint
        /// The buffer servers of every zone, this controller's own among them.
        public var zones: [String: [Endpoint]]
        /// Zones whose servers DNS names instead (`ServerDiscovery`); their
        /// `zones` entry is empty.
        public var discoveredZones: [String: ServerSource] = [:]
        /// The DNS server asked (nil: the first `nameserver` of
        /// /etc/resolv.conf), how often, and how many servers a zone found
        /// by DNS may have (its link slots, at most 64).
        public var dnsResolver: Endpoint?
        public var dnsInterval: TimeAmount = .seconds(5)
        public var dnsMaxServers = 16
        public var maxFramePayload: Int
        /// Envelopes waiting for one websocket reader before the oldest drop.
        public var tailQueueLimit: Int
        public var pingInterval: TimeAmount
        /// How long a zone may take to answer a recent request.
        public var zoneTimeout: TimeAmount
        /// Where drain bindings are kept; without one the drain API answers 503.
        public var bindings: (any BindingStore)?
        /// Checks every reader's token; nil serves every reader without one.
        public var authorizer: Authorizer?
        /// The web console (`--no-ui`, `--ui-base-path`).
        public var console = ConsoleEndpoints.Settings()
        /// Mutual TLS on ingress (emitters and agents must show a
        /// certificate from the CA) and on every link to a buffer server.
        public var tls: LinkTLS?
        /// HTTPS on the HTTP API (a certificate, no client certificates).
        public var httpTLS: LinkTLS?
        /// Connections at once on each listener, and how long a message
        /// (a frame, an HTTP request) may take.
        public var connections: ConnectionGuard.Settings
        /// Live readers at once, in all and of one app (or firehose
        /// subscription); past either a new one is answered 429.
        public var maxReaders: Int
        public var maxReadersPerApp: Int
        /// `/v2/read`: a heartbeat event after this long without data, and
        /// the stream closed after `eventStreamTimeout` (the RLP gateway's
        /// 15 s and 14 minutes).
        public var eventHeartbeat: TimeAmount = .seconds(15)
        public var eventStreamTimeout: TimeAmount = .minutes(14)
        /// Loggregator's v2 ingress (`Sender`, `BatchSender`, `Send`) and
        /// egress (`Receiver`, `BatchedReceiver`) over gRPC, with `tls` as
        /// the framed ingress has it. The same address serves both.
        public var grpcIngress: Endpoint?
        public var grpcEgress: Endpoint?
        /// gRPC egress asks no token: a client certificate from the CA
        /// (`tls`) lets a nozzle read every app, as in Loggregator.
        public var grpcEgressByCertificate = false
        /// What each link to an own-zone server keeps of what it
        /// acknowledged, for the stand-ins if it stops.
        public var handover = ServerLink.Handover()
        /// How long a graceful stop waits for what this controller took in
        /// to be acknowledged by its servers (`--shutdown-timeout`).
        public var shutdownTimeout: TimeAmount = .seconds(10)

        public init(
            zone: String = "z1",
            ingress: Endpoint,
            http: Endpoint,
            zones: [String: [Endpoint]],
            maxFramePayload: Int = FrameHeader.defaultMaxPayload,
            tailQueueLimit: Int = 100_000,
            pingInterval: TimeAmount = .seconds(30),
            zoneTimeout: TimeAmount = .seconds(2),
            bindings: (any BindingStore)? = nil,
            authorizer: Authorizer? = nil,
            tls: LinkTLS? = nil,
            httpTLS: LinkTLS? = nil,
            connections: ConnectionGuard.Settings = .init(),
            maxReaders: Int = 10_000,
            maxReadersPerApp: Int = 100
        ) {
            precondition(maxReaders > 0 && maxReadersPerApp > 0)
            self.maxReaders = maxReaders
            self.maxReadersPerApp = maxReadersPerApp
            self.connections = connections
            self.tls = tls
            self.httpTLS = httpTLS
            self.bindings = bindings
            self.authorizer = authorizer
            self.zone = zone
            self.ingress = ingress
            self.http = http
            self.zones = zones
            self.zoneTimeout = zoneTimeout
            self.maxFramePayload = maxFramePayload
            self.tailQueueLimit = tailQueueLimit
            self.pingInterval = pingInterval
        }
    }

    public let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let registry: PrometheusCollectorRegistry?
    private let router: IngressRouter
    private let egress: Egress
    /// The zones whose servers DNS names.
    private let discoveries: [ZoneDiscovery]
    private let tailMetrics: TailMetrics
    private let ingressGuard: ConnectionGuard
    private let httpGuard: ConnectionGuard
    private let ingressChannel = ChannelBox()
    private let httpChannel = ChannelBox()
    /// The gRPC listeners, and whether each takes ingress only.
    private let grpcChannels = NIOLockedValueBox<[(channel: any Channel, ingress: Bool)]>([])
    /// The gRPC ingress calls not answered yet.
    private let grpcCalls = GRPCIngressCalls()
    private let grpcBound = NIOLockedValueBox<(ingress: Endpoint?, egress: Endpoint?)>((nil, nil))
    private let connections = ConnectionSet()
    /// The framed ingress connections (also in `connections`).
    private let ingressConnections = ConnectionSet()
    private let readers: ReaderAdmission
    private let startedAt = WallClock.nowNanos()

    public init(
        configuration: Configuration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "sluice.controller"),
        registry: PrometheusCollectorRegistry? = nil
    ) {
        precondition(
            !(configuration.zones[configuration.zone] ?? []).isEmpty
                || configuration.discoveredZones[configuration.zone] != nil,
            "a controller needs at least one buffer server in its own zone")
        precondition((1...64).contains(configuration.dnsMaxServers), "a zone found by DNS has 1 to 64 slots")
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.registry = registry
        let metrics: any MetricsFactory =
            registry.map { registry in
                var factory = PrometheusMetricsFactory(registry: registry)
                // A batch is usually acknowledged within a few milliseconds.
                factory.durationHistogramBuckets[MetricNames.controllerBatchAckSeconds] = [
                    .microseconds(500), .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10),
                    .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
                    .seconds(1), .milliseconds(2500),
                ]
                return factory
            } ?? MetricsSystem.factory
        // One link per server of every zone, own zone first.
        let zoneNames =
            [configuration.zone]
            + Set(configuration.zones.keys).union(configuration.discoveredZones.keys).filter { $0 != configuration.zone }.sorted()
        let zones = zoneNames.map { name in
            let discovered = configuration.discoveredZones[name] != nil
            // A zone found by DNS: free slots, which servers take as DNS names them.
            let servers: [Endpoint?] =
                discovered
                ? Array(repeating: nil, count: configuration.dnsMaxServers) : configuration.zones[name, default: []]
            let count = ZoneServerCount(zone: name, servers: discovered ? 0 : servers.count, metrics: metrics)
            return ZoneLinks(
                name: name, discovered: discovered,
                links: servers.enumerated().map { index, server in
                    ServerLink(
                        endpoint: server, zone: name, index: index, eventLoop: group.next(), logger: logger,
                        maxPayload: configuration.maxFramePayload,
                        tls: configuration.tls?.dialer(role: "controller-link", logger: logger),
                        // Only the own zone's links carry ingress to hand over;
                        // another zone's controllers hand over what its
                        // servers took, with (it is assumed) the same window.
                        handover: configuration.handover, localZone: configuration.zone, zoneServers: count,
                        metrics: metrics)
                })
        }
        let router = IngressRouter(links: zones[0].links, metrics: metrics)
        self.router = router
        self.egress = Egress(zones: zones, zoneTimeout: configuration.zoneTimeout)
        // resolv.conf is read only by a controller that asks DNS.
        let resolver =
            configuration.discoveredZones.isEmpty
            ? nil
            : DNSResolver(
                server: configuration.dnsResolver ?? DNSResolver.systemServer() ?? Endpoint(host: "127.0.0.1", port: 53),
                group: group)
        self.discoveries = zones.compactMap { zone in
            guard let resolver, let source = configuration.discoveredZones[zone.name] else { return nil }
            return ZoneDiscovery(
                zone: zone, source: source, resolver: resolver, router: zone.name == configuration.zone ? router : nil,
                logger: logger)
        }
        let tailMetrics = TailMetrics(factory: metrics)
        self.tailMetrics = tailMetrics
        self.readers = ReaderAdmission(
            limits: .init(total: configuration.maxReaders, perApp: configuration.maxReadersPerApp), metrics: tailMetrics,
            logger: logger)
        self.ingressGuard = ConnectionGuard(
            role: "controller-ingress", settings: configuration.connections, logger: logger, metrics: metrics)
        self.httpGuard = ConnectionGuard(
            role: "controller-http", settings: configuration.connections, logger: logger, metrics: metrics)
    }

    /// Where the gRPC services listen, once bound.
    public var grpcAddresses: (ingress: Endpoint?, egress: Endpoint?) { grpcBound.withLockedValue { $0 } }

    /// Connections open on the ingress listener now.
    public var openIngressConnections: Int { ingressGuard.openConnections }

    /// Binds ingress and HTTP; returns the bound addresses (port 0 picks one).
    @discardableResult
    public func bind() async throws -> (ingress: Endpoint, http: Endpoint) {
        if let ingress = ingressChannel.channel?.localAddress, let http = httpChannel.channel?.localAddress {
            return (Endpoint(ingress), Endpoint(http))
        }
        for link in egress.zones.flatMap(\.links) { link.start() }
        // The servers DNS names now, before ingress is taken.
        for discovery in discoveries { await discovery.resolve() }
        let router = self.router
        let logger = self.logger
        let connections = self.connections
        let ingressConnections = self.ingressConnections
        let maxPayload = configuration.maxFramePayload
        let ingress = try await Listener.bind(
            configuration.ingress, group: group, connections: connections,
            tls: configuration.tls?.listener(role: "controller-ingress", logger: logger), guard: ingressGuard
        ) { channel in
            ingressConnections.insert(channel)
            try channel.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload)),
                ConnectionGuard.messageSeen(),
                IngressHandler(router: router, logger: logger),
                ConnectionErrorHandler(role: "controller-ingress", logger: logger),
            ])
        }
        ingressChannel.channel = ingress

        let egress = self.egress
        let registry = self.registry
        let tailMetrics = self.tailMetrics
        let readers = self.readers
        let bindings = configuration.bindings
        let authorizer = configuration.authorizer
        let console = ConsoleEndpoints(settings: configuration.console, zone: configuration.zone)
        let startedAt = self.startedAt
        let zone = configuration.zone
        let eventSettings = EventStreamReader.Settings(
            queueLimit: configuration.tailQueueLimit, heartbeat: configuration.eventHeartbeat,
            streamTimeout: configuration.eventStreamTimeout)
        let settings = WebSocketTailHandler.Settings(
            queueLimit: configuration.tailQueueLimit, pingInterval: configuration.pingInterval, json: false)
        let http = try await Listener.bind(
            configuration.http, group: group, connections: connections,
            writeBufferWaterMark: .init(low: 256 * 1024, high: 1024 * 1024),
            tls: configuration.httpTLS?.listener(role: "controller-http", logger: logger), guard: httpGuard
        ) { channel in
            // The reader's handler is made when the upgrade is accepted and
            // put in the pipeline once the 101 response is out.
            let pending = NIOLockedValueBox<WebSocketTailHandler?>(nil)
            let refused = RefusedUpgrade()
            let upgrader = NIOWebSocketServerUpgrader(
                maxFrameSize: 1 << 16,
                automaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    guard
                        case .success(let route) = APIRoute.parse(
                            method: head.method.rawValue, uri: console.settings.basePath.strip(head.uri)),
                        let (target, json) = route.stream
                    else { return channel.eventLoop.makeSucceededFuture(nil) }
                    let upgrade: @Sendable () -> EventLoopFuture<HTTPHeaders?> = {
                        if let failure = readers.admit([target], remote: channel.remoteAddress.map { "\($0)" } ?? "?") {
                            refused.set(failure)
                            return channel.eventLoop.makeSucceededFuture(nil)
                        }
                        channel.closeFuture.whenComplete { _ in readers.release([target]) }
                        var settings = settings
                        settings.json = json
                        let feed = TailFeed(target: target, links: egress.links(for: target), eventLoop: channel.eventLoop)
                        let handler = WebSocketTailHandler(feed: feed, settings: settings, metrics: tailMetrics, logger: logger)
                        pending.withLockedValue { $0 = handler }
                        return handler.start(closeFuture: channel.closeFuture).map { HTTPHeaders?.some(HTTPHeaders()) }
                    }
                    guard let authorizer else { return upgrade() }
                    // The token is checked once, here, for the connection's
                    // life; a refusal is answered by the HTTP handler.
                    return authorizer.check(route, head, on: channel.eventLoop).flatMap { outcome in
                        if let failure = APIRoute.failure(for: outcome) {
                            refused.set(failure)
                            return channel.eventLoop.makeSucceededFuture(nil)
                        }
                        return upgrade()
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        guard let handler = pending.withLockedValue({ $0 }) else { return }
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                })
            let api = HTTPAPIHandler(
                egress: egress, bindings: bindings, authorizer: authorizer, refusedUpgrade: refused, registry: registry,
                logger: logger, startedAt: startedAt,
                events: .init(readers: readers, metrics: tailMetrics, settings: eventSettings), console: console,
                readiness: { Controller.readiness(router: router, zone: zone) })
            let boundAPI = NIOLoopBound(api, eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withServerUpgrade: (
                    upgraders: [upgrader],
                    completionHandler: { context in
                        ConnectionGuard.upgraded(context.pipeline.syncOperations)
                        context.pipeline.syncOperations.removeHandler(boundAPI.value, promise: nil)
                    }
                ))
            try channel.pipeline.syncOperations.addHandler(ConnectionGuard.requestSeen())
            try channel.pipeline.syncOperations.addHandler(api)
        }
        httpChannel.channel = http
        try await bindGRPC()
        let bound = (Endpoint(ingress.localAddress!), Endpoint(http.localAddress!))
        let grpc = grpcAddresses
        logger.info(
            "controller listening",
            metadata: [
                "sluice.ingress": "\(bound.0)", "sluice.http": "\(bound.1)", LogKeys.zone: "\(configuration.zone)",
                "sluice.grpc_ingress": "\(grpc.ingress.map { "\($0)" } ?? "-")",
                "sluice.grpc_egress": "\(grpc.egress.map { "\($0)" } ?? "-")",
            ])
        return bound
    }

    /// The gRPC listeners: one per address named (both services on one
    /// when the addresses are the same).
    private func bindGRPC() async throws {
        var byAddress: [Endpoint: GRPCRoutes] = [:]
        let router = self.router
        let logger = self.logger
        let maxPayload = configuration.maxFramePayload
        let grpcCalls = self.grpcCalls
        if let endpoint = configuration.grpcIngress {
            for method in IngressCall.Method.allCases {
                byAddress[endpoint, default: GRPCRoutes()].add(method.rawValue) { pipeline, _ in
                    try pipeline.addHandlers([
                        GRPCIngressHandler(method: method, maxBatch: maxPayload, calls: grpcCalls),
                        IngressHandler(router: router, logger: logger, readsWhileDraining: method == .send),
                    ])
                }
            }
        }
        if let endpoint = configuration.grpcEgress {
            let setup = GRPCEgressReader.Setup(
                egress: egress, authorizer: configuration.authorizer, readers: readers, metrics: tailMetrics,
                queueLimit: configuration.tailQueueLimit, logger: logger, byCertificate: configuration.grpcEgressByCertificate)
            for method in GRPCEgressReader.Method.allCases {
                byAddress[endpoint, default: GRPCRoutes()].add(method.rawValue) { pipeline, _ in
                    try pipeline.addHandler(GRPCEgressReader(method: method, setup: setup))
                }
            }
        }
        var bound: (ingress: Endpoint?, egress: Endpoint?) = (nil, nil)
        for (endpoint, routes) in byAddress.sorted(by: { $0.key.description < $1.key.description }) {
            let channel = try await GRPCServer.bind(
                endpoint, group: group, routes: routes,
                settings: GRPCServer.Settings(maxMessage: configuration.maxFramePayload), connections: connections,
                tls: configuration.tls?.listener(role: "controller-grpc", logger: logger),
                guard: ConnectionGuard(
                    role: "controller-grpc", settings: configuration.connections, logger: logger,
                    metrics: registry.map { PrometheusMetricsFactory(registry: $0) } ?? MetricsSystem.factory),
                logger: logger)
            let ingressOnly = endpoint == configuration.grpcIngress && endpoint != configuration.grpcEgress
            grpcChannels.withLockedValue { $0.append((channel, ingress: ingressOnly)) }
            let address = Endpoint(channel.localAddress!)
            if endpoint == configuration.grpcIngress { bound.ingress = address }
            if endpoint == configuration.grpcEgress { bound.egress = address }
        }
        grpcBound.withLockedValue { $0 = bound }
    }

    /// Ready for ingress and readers (`GET /readyz`): a server of its own
    /// zone answers and is not leaving, and the controller is not
    /// stopping. Another zone down makes reads partial (told in band), not
    /// the controller unready.
    static func readiness(router: IngressRouter, zone: String) -> Readiness {
        if router.isDraining { return .notReady("stopping") }
        guard !router.liveServers.isEmpty else {
            return .notReady("no buffer server of zone \(zone) answers")
        }
        return .ready
    }

    public func run() async throws {
        try await bind()
        await withTaskGroup(of: Void.self) { group in
            if !discoveries.isEmpty { group.addTask { await self.discover() } }
            try? await gracefulShutdown()
            group.cancelAll()
        }
        await drain()
        try await shutdown()
    }

    /// Until cancelled: asks DNS for the servers of the zones it names
    /// every `dnsInterval`, and soon after one of their links fails; and
    /// frees the slots of servers gone from DNS once their links are down.
    public func discover() async {
        var next = ContinuousClock.now + .nanoseconds(configuration.dnsInterval.nanoseconds)
        while !Task.isCancelled {
            var failed = false
            for discovery in discoveries where discovery.check() { failed = true }
            if failed || ContinuousClock.now >= next {
                for discovery in discoveries { await discovery.resolve() }
                next = ContinuousClock.now + .nanoseconds(configuration.dnsInterval.nanoseconds)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// A graceful stop's first half: takes no new framed ingress
    /// connections and reads no more frames from those open; takes no new
    /// gRPC connections on an ingress-only address, lets each `Send` in
    /// progress finish, ends each ingress stream and refuses each new call
    /// before it takes anything (`GRPCIngressCalls`); then waits (up to
    /// `shutdownTimeout`) until its servers have acknowledged everything it
    /// took in and every gRPC ingress call is answered, so that its
    /// emitters have their acknowledgements and have nothing to send again
    /// when they move to another controller. Readers are served meanwhile.
    public func drain() async {
        guard let listener = ingressChannel.channel else { return }
        try? await listener.close()
        router.isDraining = true
        let open = ingressConnections.all
        for channel in open { channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
        // A listener that serves readers too stays open for them; calls
        // opened on it now are refused.
        for (channel, ingress) in grpcChannels.withLockedValue({ $0 }) where ingress { try? await channel.close() }
        grpcCalls.stopAll()
        let deadline = ContinuousClock.now + .nanoseconds(configuration.shutdownTimeout.nanoseconds)
        while !router.links.allSatisfy(\.isSettled) || grpcCalls.openCount > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let waiting = router.links.filter { !$0.isSettled }.map { "\($0.endpoint)" }
        let calls = grpcCalls.openCount
        if waiting.isEmpty && calls == 0 {
            logger.info("drained: the servers acknowledged everything taken in", metadata: [LogKeys.count: "\(open.count) connections"])
        } else {
            logger.warning(
                "shutdown timeout: batches not acknowledged yet, or gRPC ingress calls not answered; their emitters send them again elsewhere",
                metadata: [LogKeys.server: "\(waiting.joined(separator: ","))", "sluice.grpc_calls": "\(calls)"])
        }
        // Acknowledgements reach each connection's loop before it closes.
        for channel in open { try? await channel.eventLoop.submit {}.get() }
    }

    public func shutdown() async throws {
        if let listener = ingressChannel.channel, listener.isActive { try? await listener.close() }
        try? await httpChannel.channel?.close()
        ingressChannel.channel = nil
        httpChannel.channel = nil
        for (channel, _) in grpcChannels.withLockedValue({ $0 }) { try? await channel.close() }
        await connections.closeAll()
        for link in egress.zones.flatMap(\.links) { link.stop() }
    }
}
