import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import SluiceGRPC
import SluiceTLS
import SluiceTransport
import SluiceShipping
import SluiceSyslog
import SluiceWire

/// `sluice agent`: the source agent on every host. It takes envelopes from
/// local emitters (the framed protocol), syslog over TCP and UDP, and
/// logplex-1 over HTTP, and ships them in batches to its controllers with
/// acknowledged delivery. It never pushes back on a source: its buffer is
/// bounded, and what it must drop it counts and tells each app in band.
public final class Agent: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var zone: String
        /// Controllers' ingress addresses, own zone first.
        public var controllers: [Endpoint]
        /// The framed envelope protocol (`sluice emit`, `sluice run`, `SluiceEmitter`).
        public var listen: Endpoint
        public var syslogTCP: Endpoint?
        public var syslogUDP: Endpoint?
        /// `POST /logs`, `/healthz`, `/metrics`.
        public var http: Endpoint?
        /// Memory for envelopes not yet delivered.
        public var bufferBytes: Int
        /// The app of syslog lines that cannot be parsed or name no app;
        /// without one they are counted and dropped.
        public var defaultApp: String?
        /// The largest syslog message, frame payload or HTTP body taken.
        public var maxMessageBytes: Int
        /// The host the agent serves (`--hostname`; in Kubernetes the node
        /// name): the `hostname` tag of syslog lines that name no HOSTNAME.
        /// Nil leaves such lines without one.
        public var hostname: String?
        /// Lines over this are split into several envelopes.
        public var maxLineBytes: Int
        /// Cloud Foundry's per-instance log rate limit, in bytes of log
        /// payload per second for each (app, instance); nil for none.
        public var instanceLogRateLimit: Int?
        /// Mutual TLS to the controllers (the local inputs stay plain).
        public var tls: LinkTLS?
        /// Syslog over TLS (RFC 5425: octet-counted, or newline-framed as
        /// some senders do) and HTTPS for `POST /logs`, with `inputTLS`.
        public var syslogTLS: Endpoint?
        public var https: Endpoint?
        /// Loggregator's v2 ingress over gRPC (`Sender`, `BatchSender`,
        /// `Send`; Loggregator's agent listens on 3458). With `inputTLS` it
        /// is served over TLS (mutual with its CA), else plain.
        public var grpc: Endpoint?
        /// The certificate the TLS inputs show; with a CA, senders must
        /// show a certificate from it too.
        public var inputTLS: LinkTLS?
        /// Connections at once on each listener, and how long a message
        /// (a frame, a syslog message, an HTTP request) may take.
        public var connections = ConnectionGuard.Settings()
        /// How long a graceful stop gives what is queued to be delivered
        /// and acknowledged (`--shutdown-timeout`).
        public var shutdownTimeout: TimeAmount = .seconds(10)
        /// The spool (`--spool DIR`): what is acknowledged to sources and
        /// not yet to the agent by a controller is kept there, across a
        /// crash. Nil: in memory only.
        public var spool: Spool?
        /// Apps with a drop counter of their own (`LogShipper.Configuration.appSeriesLimit`).
        public var appSeriesLimit = 100

        public init(
            zone: String = "z1", controllers: [Endpoint], listen: Endpoint, syslogTCP: Endpoint? = nil,
            syslogUDP: Endpoint? = nil, http: Endpoint? = nil, bufferBytes: Int = 64 * 1024 * 1024,
            defaultApp: String? = nil, maxMessageBytes: Int = FrameHeader.defaultMaxPayload,
            maxLineBytes: Int = LineSplitter.defaultMaxLineBytes, instanceLogRateLimit: Int? = nil,
            hostname: String? = nil
        ) {
            self.hostname = hostname
            self.zone = zone
            self.controllers = controllers
            self.listen = listen
            self.syslogTCP = syslogTCP
            self.syslogUDP = syslogUDP
            self.http = http
            self.bufferBytes = bufferBytes
            self.defaultApp = defaultApp
            self.maxMessageBytes = maxMessageBytes
            self.maxLineBytes = maxLineBytes
            self.instanceLogRateLimit = instanceLogRateLimit
        }
    }

    /// Where the agent listens, once bound.
    public struct Addresses: Sendable {
        public var listen: Endpoint
        public var syslogTCP: Endpoint?
        public var syslogUDP: Endpoint?
        public var http: Endpoint?
        public var syslogTLS: Endpoint?
        public var https: Endpoint?
        public var grpc: Endpoint?
    }

    public let configuration: Configuration
    public let shipper: LogShipper
    private let group: any EventLoopGroup
    private let logger: Logger
    private let registry: PrometheusCollectorRegistry?
    private let metrics: AgentMetrics
    private let intake: SyslogIntake
    private let bound = NIOLockedValueBox<Addresses?>(nil)
    private let listeners = ConnectionSet()
    private let connections = ConnectionSet()
    private let metricsFactory: any MetricsFactory

    public init(
        configuration: Configuration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "sluice.agent"),
        registry: PrometheusCollectorRegistry? = nil
    ) {
        precondition(!configuration.controllers.isEmpty, "an agent needs at least one controller")
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.registry = registry
        let factory: any MetricsFactory = registry.map { PrometheusMetricsFactory(registry: $0) } ?? MetricsSystem.factory
        self.metrics = AgentMetrics(factory: factory)
        self.metricsFactory = factory
        var shipping = LogShipper.Configuration(endpoints: configuration.controllers, bufferBytes: configuration.bufferBytes)
        shipping.instanceLogRateLimit = configuration.instanceLogRateLimit
        shipping.tls = configuration.tls
        shipping.appSeriesLimit = configuration.appSeriesLimit
        self.shipper = LogShipper(
            configuration: shipping, logger: logger, metrics: factory, group: group, spool: configuration.spool)
        self.intake = SyslogIntake(
            shipper: shipper, defaultApp: configuration.defaultApp, maxLineBytes: configuration.maxLineBytes,
            metrics: metrics, hostname: configuration.hostname)
    }

    /// Binds every input; returns the bound addresses (port 0 picks one).
    @discardableResult
    public func bind() async throws -> Addresses {
        if let addresses = bound.withLockedValue({ $0 }) { return addresses }
        let shipper = self.shipper
        let metrics = self.metrics
        let logger = self.logger
        let intake = self.intake
        let connections = self.connections
        let maxMessage = configuration.maxMessageBytes

        func connectionGuard(_ role: String) -> ConnectionGuard {
            ConnectionGuard(role: role, settings: configuration.connections, logger: logger, metrics: metricsFactory)
        }
        let listen = try await Listener.bind(
            configuration.listen, group: group, connections: connections, guard: connectionGuard("agent-ingress")
        ) { channel in
            try channel.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(FrameDecoder(maxPayload: maxMessage)),
                ConnectionGuard.messageSeen(),
                AgentIngressHandler(shipper: shipper, metrics: metrics, logger: logger),
                ConnectionErrorHandler(role: "agent-ingress", logger: logger),
            ])
        }
        listeners.insert(listen)
        var addresses = Addresses(listen: Endpoint(listen.localAddress!))

        func bindSyslogStream(_ endpoint: Endpoint, tls: TLSLayer?) async throws -> Endpoint {
            let role = tls == nil ? "agent-syslog" : "agent-syslog-tls"
            let channel = try await Listener.bind(
                endpoint, group: group, connections: connections, tls: tls, guard: connectionGuard(role)
            ) { channel in
                try channel.pipeline.syncOperations.addHandlers([
                    ByteToMessageHandler(SyslogFrameDecoder(maxMessageBytes: maxMessage)),
                    ConnectionGuard.messageSeen(),
                    SyslogStreamHandler(intake: intake),
                    ConnectionErrorHandler(role: role, logger: logger),
                ])
            }
            listeners.insert(channel)
            return Endpoint(channel.localAddress!)
        }
        if let endpoint = configuration.syslogTCP {
            addresses.syslogTCP = try await bindSyslogStream(endpoint, tls: nil)
        }
        if let endpoint = configuration.syslogTLS {
            guard let inputTLS = configuration.inputTLS else { throw MissingInputTLS(input: "syslog over TLS") }
            addresses.syslogTLS = try await bindSyslogStream(
                endpoint, tls: inputTLS.listener(role: "agent-syslog-tls", logger: logger))
        }

        if let endpoint = configuration.syslogUDP {
            let channel = try await DatagramBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 * 1024 * 1024)
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 65_536))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(SyslogDatagramHandler(intake: intake))
                    }
                }
                .bind(host: endpoint.host, port: endpoint.port).get()
            listeners.insert(channel)
            addresses.syslogUDP = Endpoint(channel.localAddress!)
        }

        let registry = self.registry
        func bindHTTP(_ endpoint: Endpoint, tls: TLSLayer?) async throws -> Endpoint {
            let channel = try await Listener.bind(
                endpoint, group: group, connections: connections, tls: tls,
                guard: connectionGuard(tls == nil ? "agent-http" : "agent-https")
            ) { channel in
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandler(ConnectionGuard.requestSeen())
                try channel.pipeline.syncOperations.addHandler(
                    AgentHTTPHandler(intake: intake, registry: registry, maxBodyBytes: maxMessage))
            }
            listeners.insert(channel)
            return Endpoint(channel.localAddress!)
        }
        if let endpoint = configuration.http {
            addresses.http = try await bindHTTP(endpoint, tls: nil)
        }
        if let endpoint = configuration.https {
            guard let inputTLS = configuration.inputTLS else { throw MissingInputTLS(input: "HTTPS") }
            addresses.https = try await bindHTTP(endpoint, tls: inputTLS.listener(role: "agent-https", logger: logger))
        }
        if let endpoint = configuration.grpc {
            let role = "agent-grpc"
            var routes = GRPCRoutes()
            for method in IngressCall.Method.allCases {
                routes.add(method.rawValue) { pipeline, _ in
                    let intake = EnvelopeIntake(shipper: shipper, metrics: metrics, logger: logger, input: .grpc)
                    try pipeline.addHandler(AgentGRPCIngress(method: method, intake: intake, maxBatch: maxMessage))
                }
            }
            let channel = try await GRPCServer.bind(
                endpoint, group: group, routes: routes, settings: GRPCServer.Settings(maxMessage: maxMessage),
                connections: connections, tls: configuration.inputTLS?.listener(role: role, logger: logger),
                guard: connectionGuard(role), logger: logger)
            listeners.insert(channel)
            addresses.grpc = Endpoint(channel.localAddress!)
        }
        logger.info(
            "agent listening",
            metadata: [
                "sluice.listen": "\(addresses.listen)",
                "sluice.syslog_tcp": "\(addresses.syslogTCP.map { "\($0)" } ?? "-")",
                "sluice.syslog_udp": "\(addresses.syslogUDP.map { "\($0)" } ?? "-")",
                "sluice.http": "\(addresses.http.map { "\($0)" } ?? "-")",
                "sluice.syslog_tls": "\(addresses.syslogTLS.map { "\($0)" } ?? "-")",
                "sluice.https": "\(addresses.https.map { "\($0)" } ?? "-")",
                "sluice.grpc": "\(addresses.grpc.map { "\($0)\(configuration.inputTLS == nil ? "" : " (TLS)")" } ?? "-")",
                LogKeys.zone: "\(configuration.zone)",
                "sluice.hostname": "\(configuration.hostname ?? "-")",
                "sluice.controllers": "\(configuration.controllers.map(\.description).joined(separator: ","))",
            ])
        bound.withLockedValue { $0 = addresses }
        return addresses
    }

    public func run() async throws {
        try await bind()
        try? await gracefulShutdown()
        try await shutdown(timeout: configuration.shutdownTimeout)
    }

    /// Stops taking input, then gives what is queued up to `timeout` to be
    /// delivered and acknowledged.
    public func shutdown(timeout: TimeAmount = .seconds(5)) async throws {
        await listeners.closeAll()
        // With a spool, what sources sent is written, and their
        // acknowledgements go out, before their connections close: else
        // they would send it again to the next agent.
        if shipper.spool != nil {
            // No more is read (what was read is taken in first), all of it
            // is written, and the acknowledgements have a moment to go.
            for channel in connections.all { try? await channel.setOption(.autoRead, value: false).get() }
            // Not past a spool with no room: a stop must end.
            let written = NIOLockedValueBox(false)
            shipper.whenSpooled(on: group.next()).whenComplete { _ in written.withLockedValue { $0 = true } }
            let deadline = NIODeadline.now() + min(timeout, .seconds(2))
            while !written.withLockedValue({ $0 }), NIODeadline.now() < deadline {
                try? await Task.sleep(for: .milliseconds(10))
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        await connections.closeAll()
        let (unsent, acknowledged) = await shipper.finish(timeout: timeout)
        if unsent > 0 || !acknowledged {
            logger.warning(
                "stopped with envelopes not delivered",
                metadata: [LogKeys.count: "\(unsent)", "sluice.acknowledged": "\(acknowledged)"])
        }
    }
}

/// A TLS input named without the certificate it must show.
public struct MissingInputTLS: Error, CustomStringConvertible {
    public var input: String
    public var description: String { "\(input) needs a certificate and key (--input-tls-cert, --input-tls-key)" }
}
