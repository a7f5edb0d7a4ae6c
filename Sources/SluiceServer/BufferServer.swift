import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle
import SluiceTLS
import SluiceTransport
import SluiceWire

/// `sluice server`: keeps the recent envelopes of the apps it owns and feeds
/// controllers' recent dumps and live subscriptions.
public final class BufferServer: Service, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var zone: String
        public var listen: Endpoint
        public var limits: EnvelopeStore.Limits
        public var maxFramePayload: Int
        /// Mutual TLS on the listener: only controllers with a certificate
        /// from the CA (and an allowed name, if any are listed) get in.
        public var tls: LinkTLS?
        /// Connections at once, and how long a frame may take.
        public var connections: ConnectionGuard.Settings
        /// How long a graceful stop waits for the zone's controllers to
        /// take this server's apps and history (`--shutdown-timeout`).
        public var shutdownTimeout: TimeAmount = .seconds(10)

        public init(
            zone: String = "z1",
            listen: Endpoint,
            limits: EnvelopeStore.Limits = .init(),
            maxFramePayload: Int = FrameHeader.defaultMaxPayload,
            tls: LinkTLS? = nil,
            connections: ConnectionGuard.Settings = .init()
        ) {
            self.connections = connections
            self.zone = zone
            self.listen = listen
            self.limits = limits
            self.maxFramePayload = maxFramePayload
            self.tls = tls
        }
    }

    /// Room past `maxFramePayload` for an IDENTIFIED frame's parts.
    public static let partsAllowance = 64 * 1024

    public let configuration: Configuration
    public let store: EnvelopeStore
    private let group: any EventLoopGroup
    private let logger: Logger
    private let channelBox = ChannelBox()
    private let connections = ConnectionSet()
    private let noticeTimer = NIOLockedValueBox<RepeatedTask?>(nil)
    private let connectionGuard: ConnectionGuard
    private let roster: ControllerRoster

    public init(
        configuration: Configuration,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "sluice.server"),
        metrics: any MetricsFactory = MetricsSystem.factory
    ) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.store = EnvelopeStore(limits: configuration.limits, metrics: metrics)
        self.roster = ControllerRoster(zone: configuration.zone)
        self.connectionGuard = ConnectionGuard(
            role: "server", settings: configuration.connections, logger: logger, metrics: metrics)
    }

    /// Binds the listening socket; returns the bound address (port 0 picks one).
    @discardableResult
    public func bind() async throws -> Endpoint {
        if let bound = channelBox.channel?.localAddress { return Endpoint(bound) }
        let store = self.store
        let logger = self.logger
        // A controller's link frame is an ingress frame's envelopes (at most
        // the same limit) plus the parts that say where they came from.
        let maxPayload = configuration.maxFramePayload + Self.partsAllowance
        let connections = self.connections
        let roster = self.roster
        let channel = try await Listener.bind(
            configuration.listen, group: group, connections: connections,
            writeBufferWaterMark: .init(low: 8 * 1024 * 1024, high: 32 * 1024 * 1024),
            tls: configuration.tls?.listener(role: "server", logger: logger), guard: connectionGuard
        ) { channel in
            try channel.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload)),
                ConnectionGuard.messageSeen(),
                ServerConnectionHandler(store: store, roster: roster, logger: logger),
                ConnectionErrorHandler(role: "server", logger: logger),
            ])
        }
        channelBox.channel = channel
        // Rate limit drops are told within a quarter second of being due.
        let timer = group.next().scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { _ in
            store.tellRateLimitDrops()
        }
        noticeTimer.withLockedValue { $0 = timer }
        let endpoint = Endpoint(channel.localAddress!)
        logger.info(
            "buffer server listening",
            metadata: [LogKeys.address: "\(endpoint)", LogKeys.zone: "\(configuration.zone)"])
        return endpoint
    }

    public func run() async throws {
        try await bind()
        try? await gracefulShutdown()
        await leave()
        try await shutdown()
    }

    /// Ready for controllers (`GET /readyz` on `--metrics`): listening, and
    /// not leaving.
    public var readiness: Readiness {
        if roster.isLeaving { return .notReady("leaving: its apps are moving to the other servers") }
        guard let listener = channelBox.channel, listener.isActive else { return .notReady("not listening yet") }
        return .ready
    }

    /// A graceful stop: takes no new connections, tells every controller it
    /// is leaving (LEAVING), and waits up to `shutdownTimeout` for its own
    /// zone's controllers to route its apps elsewhere, take its history to
    /// the servers that take them (HANDOVER_REQUEST) and close. Meanwhile
    /// it serves as ever: acknowledges, streams, answers reads.
    public func leave() async {
        guard let listener = channelBox.channel, listener.isActive else { return }
        try? await listener.close()
        roster.startLeaving()
        let open = connections.all
        for channel in open {
            channel.writeAndFlush(ByteBuffer.emptyFrame(.leaving, sequence: 0, allocator: channel.allocator), promise: nil)
        }
        let totals = store.totals
        logger.info(
            "leaving: the zone's controllers take this server's apps and history",
            metadata: [
                "sluice.controllers": "\(roster.count)", LogKeys.count: "\(totals.envelopes)",
                "sluice.apps": "\(totals.apps)",
            ])
        let deadline = ContinuousClock.now + .nanoseconds(configuration.shutdownTimeout.nanoseconds)
        while roster.count > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if roster.count > 0 {
            logger.warning(
                "shutdown timeout: controllers did not finish taking over; what they did not take is lost",
                metadata: ["sluice.controllers": "\(roster.count)"])
        } else {
            logger.info("left: every controller of the zone took over")
        }
    }

    /// Stops listening and closes every connection.
    public func shutdown() async throws {
        guard let channel = channelBox.channel else { return }
        noticeTimer.withLockedValue {
            $0?.cancel()
            $0 = nil
        }
        if channel.isActive { try? await channel.close() }
        channelBox.channel = nil
        await connections.closeAll()
    }
}
