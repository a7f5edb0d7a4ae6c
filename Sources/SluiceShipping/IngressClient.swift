import CoreMetrics
import DequeModule
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceTLS
import SluiceTransport
import SluiceWire

/// An emitter's connection to controllers, with acknowledged delivery.
///
/// It says HELLO with a random sender id, numbers its frames, and keeps each
/// one until the controller acknowledges it (which a controller does once
/// the buffer servers have taken it in). If the connection dies it connects
/// to the first controller of its list that answers (the list is in order
/// of preference: own zone first) and sends again everything not
/// acknowledged); servers and readers drop what they already had. `send`
/// waits while the unacknowledged window is full: backpressure, not loss.
///
/// A controller that stops answering without closing its socket (hung,
/// or its host cut off by a silent partition) is taken for dead once an
/// acknowledgement is `liveness.silence` (5 s) late (`LinkLiveness`), and
/// the client moves to the next. An idle link is not probed: nothing is
/// owed on it, and the next frame finds out.
public final class IngressClient: @unchecked Sendable {
    public let senderID: UInt64
    public let endpoints: [Endpoint]
    private let loop: any EventLoop
    private let maxWindow: Int
    private let logger: Logger
    private let tls: TLSLayer?

    // All below on `loop`.
    private var channel: (any Channel)?
    private var connecting = false
    private var closing = false
    /// Frames sent and not acknowledged, with their envelope counts.
    private var window: AckWindow<(frame: ByteBuffer, envelopes: Int)>
    private var spaceWaiters: [EventLoopPromise<Void>] = []
    private var drainWaiters: [EventLoopPromise<Void>] = []
    private var backoff = TimeAmount.milliseconds(100)
    private var connectedTo: Endpoint?
    /// Some controller took a connection at some time.
    private var everConnected = false
    private var liveness = LinkLiveness(IngressClient.liveness, now: .now())
    private var watchdog: RepeatedTask?

    /// A controller acknowledges once its servers have a frame, which a
    /// server's failover (about 2 s) can hold up: 5 s without one while
    /// frames wait is a controller gone.
    public static let liveness = LinkLiveness.Settings(
        heartbeat: .seconds(1), silence: .seconds(5), checkInterval: .milliseconds(250))

    /// A controller that refused our certificate after the TLS handshake
    /// (TLS 1.3): the next round tries it last, so that a list with a
    /// controller that takes us fails over to it.
    private var tryLast: Endpoint?
    /// The last such refusal, for the error `close` gives.
    private var lastRefusal: TLSRefusal?

    public struct Unreachable: Error, CustomStringConvertible {
        public var endpoints: [Endpoint]
        /// Why the last one did not.
        public var lastError: (any Error)?
        public var description: String {
            "no controller answered at \(endpoints.map(\.description).joined(separator: ", "))"
        }
    }

    public struct Unacknowledged: Error, CustomStringConvertible {
        public var frames: Int
        /// Why the controller refused this client's TLS, if it did.
        public var refusal: TLSRefusal?
        public var description: String {
            "\(frames) batch\(frames == 1 ? " was" : "es were") not acknowledged by any controller in time"
                + (refusal.map { ": the TLS handshake failed: \($0)" } ?? "")
        }
    }

    /// Called on the client's loop with each new acknowledgement.
    private var onAcknowledged: (@Sendable (UInt64) -> Void)?
    /// Counts each time the window fills, so that sending waits
    /// (`sluice_agent_ack_window_full_total` for an agent).
    private var windowFull: Counter?

    private init(
        endpoints: [Endpoint], loop: any EventLoop, maxWindow: Int, logger: Logger, tls: TLSLayer?,
        senderID: UInt64? = nil, firstSequence: UInt64 = 1
    ) {
        self.tls = tls
        self.senderID = senderID ?? UInt64.random(in: 1...UInt64.max)
        self.endpoints = endpoints
        self.loop = loop
        self.maxWindow = maxWindow
        self.logger = logger
        self.window = AckWindow(maxBytes: maxWindow, firstSequence: firstSequence)
    }

    /// Connects to the first controller that answers; throws if none does.
    /// With `tls`, every connection is mutual TLS and counts as answered
    /// only once its handshake is done.
    public static func connect(
        to endpoints: [Endpoint], maxWindow: Int = 16 * 1024 * 1024, logger: Logger = .quiet, tls: TLSLayer? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> IngressClient {
        precondition(!endpoints.isEmpty, "an ingress client needs at least one controller")
        let client = IngressClient(
            endpoints: endpoints, loop: group.next(), maxWindow: maxWindow, logger: logger, tls: tls)
        try await client.loop.flatSubmit { client.connectRound() }.get()
        return client
    }

    /// Starts connecting in the background and returns at once: frames sent
    /// before a controller answers wait in the window. For agents and
    /// emitters that must start whether or not anything downstream is up.
    /// `senderID` and `firstSequence` carry on a sender's numbering from an
    /// earlier life (the agent's spool); by default a new random id.
    public static func start(
        to endpoints: [Endpoint], maxWindow: Int = 16 * 1024 * 1024, logger: Logger = .quiet, tls: TLSLayer? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, senderID: UInt64? = nil,
        firstSequence: UInt64 = 1, onAcknowledged: (@Sendable (UInt64) -> Void)? = nil, windowFull: Counter? = nil
    ) -> IngressClient {
        precondition(!endpoints.isEmpty, "an ingress client needs at least one controller")
        let client = IngressClient(
            endpoints: endpoints, loop: group.next(), maxWindow: maxWindow, logger: logger, tls: tls,
            senderID: senderID, firstSequence: firstSequence)
        client.onAcknowledged = onAcknowledged
        client.windowFull = windowFull
        client.loop.execute {
            client.connectRound().whenFailure { _ in
                if !client.closing { client.scheduleReconnect() }
            }
        }
        return client
    }

    /// Whether a controller is connected now.
    public var isConnected: Bool {
        get async { (try? await connectedNow().get()) ?? false }
    }

    /// Whether a controller is connected now, without waiting (an HTTP
    /// handler answering `/readyz`).
    public func connectedNow() -> EventLoopFuture<Bool> {
        loop.submit { self.channel != nil }
    }

    /// Whether a controller is connected now or a connection is being
    /// made: a caller that ends soon waits for the one in progress.
    public var isConnectedOrConnecting: Bool {
        get async { (try? await loop.submit { self.channel != nil || self.connecting }.get()) ?? false }
    }

    /// Whether a controller ever took a connection (it may be gone now).
    public var hasConnected: Bool {
        get async { (try? await loop.submit { self.everConnected }.get()) ?? false }
    }

    public static func connect(to endpoint: Endpoint) async throws -> IngressClient {
        try await connect(to: [endpoint])
    }

    /// The controller connected to now, if any.
    public var currentController: Endpoint? {
        get async { try? await loop.submit { self.connectedTo }.get() }
    }

    /// Sends a frame built with `BatchFrameBuilder` (its sequence is set
    /// here), once the window has room for it. `envelopes`, if given, is
    /// counted in `unacknowledgedEnvelopes` until the frame is acknowledged.
    public func send(frame: ByteBuffer, envelopes: Int = 0) async throws {
        try await loop.flatSubmit { self.enqueue(frame, envelopes: envelopes, sequence: nil) }.get()
    }

    /// Sends a frame already numbered `sequence` (by the agent's spool),
    /// which must be past every number sent so far.
    public func send(frame: ByteBuffer, envelopes: Int, sequence: UInt64) async throws {
        try await loop.flatSubmit { self.enqueue(frame, envelopes: envelopes, sequence: sequence) }.get()
    }

    /// Envelopes (as counted by `send`) sent and not yet acknowledged.
    public var unacknowledgedEnvelopes: Int {
        get async { (try? await loop.submit { self.window.entries.reduce(0) { $0 + $1.item.envelopes } }.get()) ?? 0 }
    }

    /// Waits until every frame sent is acknowledged (or `timeout` passes),
    /// then closes.
    public func close(timeout: TimeAmount = .seconds(30)) async throws {
        let drained = loop.flatSubmit { () -> EventLoopFuture<Void> in
            if self.window.isEmpty { return self.loop.makeSucceededVoidFuture() }
            let promise = self.loop.makePromise(of: Void.self)
            self.drainWaiters.append(promise)
            self.loop.scheduleTask(in: timeout) {
                promise.fail(Unacknowledged(frames: self.window.count, refusal: self.lastRefusal))
            }
            return promise.futureResult
        }
        defer { abort() }
        try await drained.get()
    }

    /// Closes at once: frames not acknowledged are given up, and a `send`
    /// waiting for room fails.
    public func abort() {
        loop.execute {
            self.closing = true
            self.watchdog?.cancel()
            self.watchdog = nil
            self.channel?.close(promise: nil)
            self.failWaiters(ChannelError.ioOnClosedChannel)
        }
    }

    // MARK: on the loop

    private func enqueue(_ frame: ByteBuffer, envelopes: Int, sequence: UInt64?) -> EventLoopFuture<Void> {
        guard !closing else { return loop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
        guard window.hasRoom else {
            if spaceWaiters.isEmpty { windowFull?.increment() }
            let promise = loop.makePromise(of: Void.self)
            spaceWaiters.append(promise)
            return promise.futureResult.flatMap { self.enqueue(frame, envelopes: envelopes, sequence: sequence) }
        }
        if let sequence { window.skip(to: sequence) }
        var frame = frame
        frame.setFrameSequence(window.nextSequence)
        let now = NIODeadline.now()
        if window.isEmpty { liveness.startedWaiting(now: now) }
        if channel != nil { liveness.sent(now: now) }
        if window.send((frame, envelopes), bytes: frame.readableBytes) != nil {
            channel?.writeAndFlush(frame, promise: nil)
        }
        return loop.makeSucceededVoidFuture()
    }

    fileprivate func acknowledged(upTo sequence: UInt64) {
        // A connection that gets acknowledgements is healthy: reconnect
        // quickly again next time. (Not on connect alone: a controller that
        // accepts and then rejects a frame must not be hammered.)
        backoff = .milliseconds(100)
        lastRefusal = nil
        liveness.heard(now: .now())
        guard !window.acknowledge(upTo: sequence).isEmpty else { return }
        onAcknowledged?(sequence)
        if window.hasRoom {
            let waiters = spaceWaiters
            spaceWaiters = []
            for waiter in waiters { waiter.succeed() }
        }
        if window.isEmpty {
            let waiters = drainWaiters
            drainWaiters = []
            for waiter in waiters { waiter.succeed() }
        }
    }

    fileprivate func lost(_ lostChannel: any Channel) {
        guard channel === lostChannel else { return }
        channel = nil
        watchdog?.cancel()
        watchdog = nil
        if let refusal = TLSLayer.refusal(of: lostChannel) {
            tryLast = connectedTo
            lastRefusal = refusal
        }
        connectedTo = nil
        window.connectionLost()
        guard !closing else { return }
        logger.warning("lost the controller; connecting again", metadata: [LogKeys.count: "\(window.count)"])
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        let delay = backoff
        backoff = min(backoff * 2, .seconds(2))
        loop.scheduleTask(in: delay) {
            self.connectRound().whenFailure { _ in
                if !self.closing { self.scheduleReconnect() }
            }
        }
    }

    /// Tries each controller in order; the first that answers gets a HELLO
    /// and every frame not yet acknowledged.
    private func connectRound() -> EventLoopFuture<Void> {
        guard channel == nil, !connecting, !closing else { return loop.makeSucceededVoidFuture() }
        connecting = true
        let order = tryLast.map { last in endpoints.filter { $0 != last } + [last] } ?? endpoints
        tryLast = nil
        return tryEndpoint(0, of: order).always { _ in self.connecting = false }
    }

    private func tryEndpoint(_ index: Int, of order: [Endpoint], lastError: (any Error)? = nil) -> EventLoopFuture<Void> {
        guard index < order.count else {
            return loop.makeFailedFuture(Unreachable(endpoints: endpoints, lastError: lastError))
        }
        let endpoint = order[index]
        let tls = self.tls
        return ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try tls?.add(to: channel, host: endpoint.host)
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder()),
                        AckHandler(client: self),
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .flatMap { TLSLayer.established($0) }
            .flatMap { channel -> EventLoopFuture<Void> in
                // Aborted while connecting: this connection is not wanted.
                guard !self.closing else { return channel.close() }
                self.connected(channel, to: endpoint)
                return self.loop.makeSucceededVoidFuture()
            }
            .flatMapError { self.tryEndpoint(index + 1, of: order, lastError: $0) }
    }

    private func connected(_ channel: any Channel, to endpoint: Endpoint) {
        self.channel = channel
        connectedTo = endpoint
        everConnected = true
        liveness.connected(now: .now())
        watchdog?.cancel()
        let interval = liveness.settings.checkInterval
        watchdog = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [weak self] _ in
            self?.checkSilence()
        }
        var hello = channel.allocator.buffer(capacity: FrameHeader.size + 8)
        hello.writeFrameHeader(type: .hello, sequence: 0, length: 8)
        hello.writeInteger(senderID)
        channel.write(hello, promise: nil)
        let resend = window.connected()
        for entry in resend { channel.write(entry.item.frame, promise: nil) }
        channel.flush()
        if !resend.isEmpty {
            logger.info(
                "sending unacknowledged batches again", metadata: [LogKeys.count: "\(resend.count)", LogKeys.address: "\(endpoint)"])
        }
    }

    /// Frames wait and the controller has said nothing for too long: it
    /// is closed, and the next round of controllers gets them.
    private func checkSilence() {
        guard let channel else { return }
        guard case .dead(let silent) = liveness.check(now: .now(), waiting: !window.isEmpty) else { return }
        logger.warning(
            "controller stopped acknowledging; taking it for dead",
            metadata: [
                LogKeys.address: "\(connectedTo.map { "\($0)" } ?? "?")", LogKeys.count: "\(window.count)",
                "sluice.silent_ms": "\(silent.nanoseconds / 1_000_000)",
            ])
        tryLast = connectedTo
        channel.close(promise: nil)
    }

    private func failWaiters(_ error: any Error) {
        let waiters = spaceWaiters + drainWaiters
        spaceWaiters = []
        drainWaiters = []
        for waiter in waiters { waiter.fail(error) }
    }
}

/// Reads the controller's ACK frames.
private final class AckHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    private let client: IngressClient

    init(client: IngressClient) {
        self.client = client
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.header.type == .ack { client.acknowledged(upTo: frame.header.sequence) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.lost(context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
