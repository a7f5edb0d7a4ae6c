import DequeModule
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// What a live subscription at a buffer server feeds: a websocket tail.
public protocol LinkSubscriber: AnyObject, Sendable {
    /// A STREAM frame's batch arrived, with the sender frames its envelopes
    /// came from (empty if the server did not say). Called on the link's
    /// event loop.
    func deliver(batch: ByteBuffer, parts: [BatchPart])
    /// The link to a server went down or came back.
    func linkChanged(_ link: ServerLink)
}

public struct LinkUnavailable: Error, CustomStringConvertible {
    public var server: String
    public var description: String { "buffer server \(server) is not reachable" }
}

/// A controller's one connection to one buffer server. It carries ingest
/// frames out and recent dumps and subscriptions in, reconnects with backoff,
/// and re-subscribes after a reconnect. All its state lives on `eventLoop`.
public final class ServerLink: @unchecked Sendable {
    public let endpoint: Endpoint
    /// The zone of the server at the other end.
    public let zone: String
    public let eventLoop: any EventLoop
    private let logger: Logger
    private let maxPayload: Int
    /// Ingest frames kept while disconnected, in bytes; past it ingress is
    /// paused (backpressure) and, if still more arrives, frames are dropped.
    private let maxBacklog: Int

    private var channel: (any Channel)?
    private var connecting = false
    private var stopped = false
    /// Whether the link has ever been up (before that, frames just wait).
    private var wasUp = false
    /// Whether the server has answered on the current connection.
    private var confirmed = false
    /// When the server last sent anything; a server that holds frames and
    /// says nothing for `silenceLimit` is taken for dead.
    private var lastHeard = NIODeadline.now()
    /// When the window last went from empty to holding a frame.
    private var waitingSince = NIODeadline.now()
    private var watchdog: RepeatedTask?
    static let silenceLimit = TimeAmount.seconds(1)
    private var backoff = TimeAmount.milliseconds(100)
    /// Frames waiting for a connection.
    private var backlog: Deque<OutFrame> = []
    private var backlogBytes = 0
    /// Frames sent and not yet acknowledged, oldest first, by sequence.
    private var window: Deque<(sequence: UInt64, frame: OutFrame)> = []
    private var windowBytes = 0
    private var nextSequence: UInt64 = 1
    /// One upstream subscription per app, shared by every local reader of it.
    private var subscriptions: [UInt64: Subscription] = [:]
    private var subscriptionByApp: [String: UInt64] = [:]
    private var readerSubscription: [UInt64: UInt64] = [:]
    private var requests: [UInt64: (parts: [ByteBuffer], promise: EventLoopPromise<[ByteBuffer]>)] = [:]
    private var writableWaiters: [@Sendable () -> Void] = []
    private let writable = NIOLockedValueBox(true)
    private let onDrop: @Sendable (Int) -> Void
    private let up = NIOLockedValueBox(false)
    /// Called on the link's event loop when the connection is lost, with the
    /// ingest frames the server had not acknowledged and those waiting to go
    /// out, oldest first: the router sends them to the servers that stand in.
    private let onDown = NIOLockedValueBox<(@Sendable ([OutFrame]) -> Void)?>(nil)
    /// Called (on the link's loop) when the link goes up or down.
    private let onStateChange = NIOLockedValueBox<(@Sendable (Bool) -> Void)?>(nil)

    public init(
        endpoint: Endpoint,
        zone: String = "z1",
        eventLoop: any EventLoop,
        logger: Logger,
        maxPayload: Int = FrameHeader.defaultMaxPayload,
        maxBacklog: Int = 64 * 1024 * 1024,
        onDrop: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.endpoint = endpoint
        self.zone = zone
        self.eventLoop = eventLoop
        self.logger = logger
        self.maxPayload = maxPayload
        self.maxBacklog = maxBacklog
        self.onDrop = onDrop
    }

    /// Whether the connection to the server is up; read from any thread.
    public var isUp: Bool { up.withLockedValue { $0 } }

    /// Sets what happens to waiting ingest frames when the link goes down.
    func whenDown(_ handler: @escaping @Sendable ([OutFrame]) -> Void) {
        onDown.withLockedValue { $0 = handler }
    }

    /// Sets a callback for the link going up (true) or down (false).
    func whenStateChanges(_ handler: @escaping @Sendable (Bool) -> Void) {
        onStateChange.withLockedValue { $0 = handler }
    }

    /// Whether ingress may keep sending; read from any thread.
    public var isWritable: Bool { writable.withLockedValue { $0 } }

    public func start() {
        eventLoop.execute { self.connect() }
    }

    public func stop() {
        eventLoop.execute {
            self.stopped = true
            self.watchdog?.cancel()
            self.channel?.close(promise: nil)
            self.failRequests()
        }
    }

    // MARK: ingest

    /// Sends a finished ENVELOPES frame; its sequence number is set here.
    /// It is kept until the server acknowledges it.
    func send(_ frame: OutFrame) {
        if eventLoop.inEventLoop {
            sendOnLoop(frame)
        } else {
            eventLoop.execute { self.sendOnLoop(frame) }
        }
    }

    private func sendOnLoop(_ frame: OutFrame) {
        // Routed here just before the link went down: the router sends it
        // to a stand-in, or gives it back with `keep` if there is none.
        if channel == nil, wasUp, !stopped, let reroute = onDown.withLockedValue({ $0 }) {
            reroute([frame])
            return
        }
        keep(frame)
    }

    /// Sends a frame now if connected; otherwise holds it until the server
    /// is back (no other server can stand in).
    func keep(_ frame: OutFrame) {
        guard eventLoop.inEventLoop else {
            eventLoop.execute { self.keep(frame) }
            return
        }
        var frame = frame
        if let channel, backlog.isEmpty {
            transmit(&frame, on: channel)
            channel.flush()
            updateWritable()
            return
        }
        if backlogBytes + frame.bytes.readableBytes > 2 * maxBacklog {
            let count = frame.bytes.envelopeCountUnchecked
            onDrop(count)
            frame.acknowledged()  // nothing more will come of it
            logger.warning(
                "dropping envelopes: buffer server unreachable and backlog full",
                metadata: [LogKeys.server: "\(endpoint)", LogKeys.count: "\(count)"])
            return
        }
        backlog.append(frame)
        backlogBytes += frame.bytes.readableBytes
        updateWritable()
    }

    /// Numbers a frame, writes it, and keeps it until acknowledged.
    private func transmit(_ frame: inout OutFrame, on channel: any Channel) {
        let sequence = nextSequence
        nextSequence &+= 1
        frame.bytes.setFrameSequence(sequence)
        channel.write(frame.bytes, promise: nil)
        if window.isEmpty { waitingSince = .now() }
        window.append((sequence, frame))
        windowBytes += frame.bytes.readableBytes
    }

    private func acknowledge(upTo sequence: UInt64) {
        while let first = window.first, first.sequence <= sequence {
            window.removeFirst()
            windowBytes -= first.frame.bytes.readableBytes
            first.frame.acknowledged()
        }
        updateWritable()
    }

    /// Runs `action` once this link may take more ingest.
    public func whenWritable(_ action: @escaping @Sendable () -> Void) {
        eventLoop.execute {
            if self.computeWritable() {
                action()
            } else {
                self.writableWaiters.append(action)
            }
        }
    }

    private func computeWritable() -> Bool {
        if channel != nil { return windowBytes < maxBacklog && backlog.isEmpty }
        return backlogBytes < maxBacklog
    }

    fileprivate func updateWritable() {
        let now = computeWritable()
        writable.withLockedValue { $0 = now }
        if now && !writableWaiters.isEmpty {
            let waiters = writableWaiters
            writableWaiters = []
            for waiter in waiters { waiter() }
        }
    }

    // MARK: egress

    /// Adds a live reader of `app`; returns the reader's id. Readers of the
    /// same app share one subscription at the server, so the server sends
    /// each envelope to this controller once however many read it.
    public func subscribe(app: String, subscriber: any LinkSubscriber) -> EventLoopFuture<UInt64> {
        eventLoop.submit {
            let readerID = self.nextSequence
            self.nextSequence &+= 1
            let upstream: UInt64
            if let existing = self.subscriptionByApp[app] {
                upstream = existing
            } else {
                upstream = self.nextSequence
                self.nextSequence &+= 1
                self.subscriptions[upstream] = Subscription(app: app)
                self.subscriptionByApp[app] = upstream
                if let channel = self.channel {
                    channel.writeAndFlush(
                        Self.requestFrame(.subscribe, app: app, limit: 0, sequence: upstream), promise: nil)
                }
            }
            self.subscriptions[upstream]!.readers[readerID] = subscriber
            self.readerSubscription[readerID] = upstream
            return readerID
        }
    }

    /// Removes a reader; the server subscription ends with its last reader.
    public func unsubscribe(id readerID: UInt64) {
        eventLoop.execute {
            guard let upstream = self.readerSubscription.removeValue(forKey: readerID) else { return }
            self.subscriptions[upstream]?.readers[readerID] = nil
            guard let subscription = self.subscriptions[upstream], subscription.readers.isEmpty else { return }
            self.subscriptions[upstream] = nil
            self.subscriptionByApp[subscription.app] = nil
            self.channel?.writeAndFlush(
                Self.requestFrame(.unsubscribe, app: subscription.app, limit: 0, sequence: upstream), promise: nil)
        }
    }

    /// The newest `limit` envelopes of `app` held by this server, as batch
    /// payloads, oldest first.
    public func recent(app: String, limit: Int) -> EventLoopFuture<[ByteBuffer]> {
        eventLoop.flatSubmit {
            guard let channel = self.channel else {
                return self.eventLoop.makeFailedFuture(LinkUnavailable(server: "\(self.endpoint)"))
            }
            let id = self.nextSequence
            self.nextSequence &+= 1
            let promise = self.eventLoop.makePromise(of: [ByteBuffer].self)
            self.requests[id] = ([], promise)
            channel.writeAndFlush(Self.requestFrame(.recentRequest, app: app, limit: limit, sequence: id), promise: nil)
            return promise.futureResult
        }
    }

    static func requestFrame(_ type: FrameType, app: String, limit: Int, sequence: UInt64) -> ByteBuffer {
        var request = Sluice_V1_StreamRequest()
        request.sourceID = app
        request.limit = UInt32(clamping: limit)
        let bytes: [UInt8] = (try? request.serializedBytes()) ?? []
        var frame = ByteBuffer()
        frame.writeFrameHeader(type: type, sequence: sequence, length: bytes.count)
        frame.writeBytes(bytes)
        return frame
    }

    // MARK: connection

    private func connect() {
        guard !stopped, channel == nil, !connecting else { return }
        connecting = true
        let maxPayload = self.maxPayload
        ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.connectTimeout, value: .seconds(2))
            .channelOption(.writeBufferWaterMark, value: .init(low: 1024 * 1024, high: 4 * 1024 * 1024))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(FrameDecoder(maxPayload: maxPayload)),
                        LinkHandler(link: self),
                        ConnectionErrorHandler(role: "controller-link", logger: self.logger),
                    ])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenComplete { result in
                self.connecting = false
                switch result {
                case .success(let channel):
                    if self.stopped {
                        channel.close(promise: nil)
                        return
                    }
                    self.connected(channel)
                case .failure(let error):
                    self.logger.debug(
                        "buffer server not reachable yet",
                        metadata: [LogKeys.server: "\(self.endpoint)", LogKeys.reason: "\(error)"])
                    self.scheduleReconnect()
                }
            }
    }

    /// A new connection counts as up only once the server has answered on
    /// it: a hung process's kernel still accepts connections.
    private func connected(_ channel: any Channel) {
        self.channel = channel
        confirmed = false
        lastHeard = .now()
        watchdog?.cancel()
        watchdog = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) {
            [weak self] _ in self?.checkSilence()
        }
        backoff = .milliseconds(100)
        for (id, subscription) in subscriptions {
            channel.write(Self.requestFrame(.subscribe, app: subscription.app, limit: 0, sequence: id), promise: nil)
        }
        // An empty batch, which the server acknowledges: its answer confirms
        // the connection, and the watchdog covers it if none comes.
        var empty = BatchFrameBuilder(capacity: FrameHeader.size)
        var probe = OutFrame(bytes: empty.finish(type: .envelopes, sequence: 0, allowEmpty: true)!, origins: [])
        transmit(&probe, on: channel)
        while var frame = backlog.popFirst() {
            transmit(&frame, on: channel)
        }
        backlogBytes = 0
        channel.flush()
        updateWritable()
    }

    /// The server answered on a new connection: the link is up.
    private func confirm() {
        confirmed = true
        wasUp = true
        up.withLockedValue { $0 = true }
        onStateChange.withLockedValue { $0 }?(true)
        logger.info("connected to buffer server", metadata: [LogKeys.server: "\(endpoint)"])
        for reader in subscriptions.values.flatMap(\.readers.values) {
            reader.linkChanged(self)
        }
    }

    /// A server that stops answering without closing its socket (hung, or
    /// cut off) is noticed within about a second while frames wait for it.
    private func checkSilence() {
        guard let channel, let oldest = window.first,
            NIODeadline.now() - max(lastHeard, waitingSince) > Self.silenceLimit
        else { return }
        logger.warning(
            "buffer server stopped acknowledging; taking it for dead",
            metadata: [LogKeys.server: "\(endpoint)", LogKeys.count: "\(window.count)", "sluice.oldest": "\(oldest.sequence)"])
        channel.close(promise: nil)
    }

    fileprivate func disconnected(_ channel: any Channel) {
        guard self.channel === channel else { return }
        self.channel = nil
        watchdog?.cancel()
        watchdog = nil
        up.withLockedValue { $0 = false }
        onStateChange.withLockedValue { $0 }?(false)
        failRequests()
        // What the server did not acknowledge, and what was waiting, goes
        // to the servers standing in for it, oldest first.
        let unacknowledged = window.map(\.frame) + Array(backlog)
        window.removeAll()
        windowBytes = 0
        backlog.removeAll()
        backlogBytes = 0
        if !unacknowledged.isEmpty {
            if let reroute = onDown.withLockedValue({ $0 }), !stopped {
                reroute(unacknowledged)
            } else {
                backlog.append(contentsOf: unacknowledged)
                backlogBytes = unacknowledged.reduce(0) { $0 + $1.bytes.readableBytes }
            }
        }
        updateWritable()
        guard !stopped else { return }
        logger.warning("lost buffer server; reconnecting", metadata: [LogKeys.server: "\(endpoint)"])
        for reader in subscriptions.values.flatMap(\.readers.values) {
            reader.linkChanged(self)
        }
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        guard !stopped else { return }
        let delay = backoff
        backoff = min(backoff * 2, .seconds(5))
        eventLoop.scheduleTask(in: delay) { self.connect() }
    }

    private func failRequests() {
        let pending = requests
        requests = [:]
        for entry in pending.values { entry.promise.fail(LinkUnavailable(server: "\(endpoint)")) }
    }

    fileprivate func received(_ frame: Frame) throws {
        lastHeard = .now()
        if !confirmed { confirm() }
        switch frame.header.type {
        case .stream:
            guard let readers = subscriptions[frame.header.sequence]?.readers.values else { return }
            let (batch, parts) = try frame.batchAndParts()
            for reader in readers { reader.deliver(batch: batch, parts: parts) }
        case .ack:
            acknowledge(upTo: frame.header.sequence)
        case .recentResponse:
            guard var entry = requests[frame.header.sequence] else { return }
            entry.parts.append(frame.payload)
            if frame.header.flags.contains(.final) {
                requests[frame.header.sequence] = nil
                entry.promise.succeed(entry.parts)
            } else {
                requests[frame.header.sequence] = entry
            }
        default:
            throw WireError(.unexpectedFrame, "a controller does not take \(frame.header.type) frames from a server")
        }
    }
}

/// A server subscription and the local readers it feeds.
private struct Subscription {
    var app: String
    var readers: [UInt64: any LinkSubscriber] = [:]
}

/// The pipeline end of a `ServerLink`'s connection.
private final class LinkHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    private let link: ServerLink

    init(link: ServerLink) {
        self.link = link
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try link.received(unwrapInboundIn(data))
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        link.updateWritable()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.disconnected(context.channel)
        context.fireChannelInactive()
    }
}

extension ByteBuffer {
    /// Envelopes in a whole frame this process built (header included).
    var envelopeCountUnchecked: Int {
        var payload = self
        payload.moveReaderIndex(forwardBy: FrameHeader.size)
        return payload.withUnsafeReadableBytes { (try? EnvelopeBatchScanner.validate($0)) ?? 0 }
    }
}
