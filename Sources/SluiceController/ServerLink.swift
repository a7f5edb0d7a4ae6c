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
    /// A STREAM frame's payload (an `EnvelopeBatch`) arrived. Called on the
    /// link's event loop.
    func deliver(batch: ByteBuffer)
    /// The link to the server went down (`up == false`) or came back.
    func linkChanged(up: Bool, server: String)
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
    public let eventLoop: any EventLoop
    private let logger: Logger
    private let maxPayload: Int
    /// Ingest frames kept while disconnected, in bytes; past it ingress is
    /// paused (backpressure) and, if still more arrives, frames are dropped.
    private let maxBacklog: Int

    private var channel: (any Channel)?
    private var connecting = false
    private var stopped = false
    private var backoff = TimeAmount.milliseconds(100)
    private var backlog: Deque<ByteBuffer> = []
    private var backlogBytes = 0
    private var nextSequence: UInt64 = 1
    private var subscriptions: [UInt64: (app: String, subscriber: any LinkSubscriber)] = [:]
    private var requests: [UInt64: (parts: [ByteBuffer], promise: EventLoopPromise<[ByteBuffer]>)] = [:]
    private var writableWaiters: [@Sendable () -> Void] = []
    private let writable = NIOLockedValueBox(true)
    private let onDrop: @Sendable (Int) -> Void

    public init(
        endpoint: Endpoint,
        eventLoop: any EventLoop,
        logger: Logger,
        maxPayload: Int = FrameHeader.defaultMaxPayload,
        maxBacklog: Int = 64 * 1024 * 1024,
        onDrop: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.endpoint = endpoint
        self.eventLoop = eventLoop
        self.logger = logger
        self.maxPayload = maxPayload
        self.maxBacklog = maxBacklog
        self.onDrop = onDrop
    }

    /// Whether ingress may keep sending; read from any thread.
    public var isWritable: Bool { writable.withLockedValue { $0 } }

    public func start() {
        eventLoop.execute { self.connect() }
    }

    public func stop() {
        eventLoop.execute {
            self.stopped = true
            self.channel?.close(promise: nil)
            self.failRequests()
        }
    }

    // MARK: ingest

    /// Sends a finished ENVELOPES frame; its sequence number is set here.
    public func send(frame: ByteBuffer) {
        if eventLoop.inEventLoop {
            sendOnLoop(frame)
        } else {
            eventLoop.execute { self.sendOnLoop(frame) }
        }
    }

    private func sendOnLoop(_ frame: ByteBuffer) {
        var frame = frame
        frame.setFrameSequence(nextSequence)
        nextSequence &+= 1
        if let channel, backlog.isEmpty {
            channel.writeAndFlush(frame, promise: nil)
            return
        }
        if backlogBytes + frame.readableBytes > 2 * maxBacklog {
            let count = frame.envelopeCountUnchecked
            onDrop(count)
            logger.warning(
                "dropping envelopes: buffer server unreachable and backlog full",
                metadata: [LogKeys.server: "\(endpoint)", LogKeys.count: "\(count)"])
            return
        }
        backlog.append(frame)
        backlogBytes += frame.readableBytes
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
        if let channel { return channel.isWritable && backlog.isEmpty }
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

    /// Starts a live subscription to `app`; returns its id.
    public func subscribe(app: String, subscriber: any LinkSubscriber) -> EventLoopFuture<UInt64> {
        eventLoop.submit {
            let id = self.nextSequence
            self.nextSequence &+= 1
            self.subscriptions[id] = (app, subscriber)
            if let channel = self.channel {
                channel.writeAndFlush(Self.requestFrame(.subscribe, app: app, limit: 0, sequence: id), promise: nil)
            }
            return id
        }
    }

    public func unsubscribe(id: UInt64) {
        eventLoop.execute {
            guard let entry = self.subscriptions.removeValue(forKey: id) else { return }
            self.channel?.writeAndFlush(
                Self.requestFrame(.unsubscribe, app: entry.app, limit: 0, sequence: id), promise: nil)
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

    private func connected(_ channel: any Channel) {
        self.channel = channel
        backoff = .milliseconds(100)
        logger.info("connected to buffer server", metadata: [LogKeys.server: "\(endpoint)"])
        for (id, entry) in subscriptions {
            channel.write(Self.requestFrame(.subscribe, app: entry.app, limit: 0, sequence: id), promise: nil)
        }
        while let frame = backlog.popFirst() {
            channel.write(frame, promise: nil)
        }
        backlogBytes = 0
        channel.flush()
        updateWritable()
        for entry in subscriptions.values { entry.subscriber.linkChanged(up: true, server: "\(endpoint)") }
    }

    fileprivate func disconnected(_ channel: any Channel) {
        guard self.channel === channel else { return }
        self.channel = nil
        failRequests()
        updateWritable()
        guard !stopped else { return }
        logger.warning("lost buffer server; reconnecting", metadata: [LogKeys.server: "\(endpoint)"])
        for entry in subscriptions.values { entry.subscriber.linkChanged(up: false, server: "\(endpoint)") }
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
        switch frame.header.type {
        case .stream:
            subscriptions[frame.header.sequence]?.subscriber.deliver(batch: frame.payload)
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
