import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SluiceWire

/// A listener's limits on its connections: how many may be open at once,
/// and how long one may take over a message (from connecting to its first
/// message, or from the first byte of a message to its end). A client that
/// connects and says nothing, or sends a byte a second, is closed when the
/// stall timeout passes; one over the connection limit is closed at once.
/// Each is logged (at most once every 10 s per listener and reason) and
/// counted in `sluice_connections_closed_total{role, reason}`; other
/// connections are not touched.
public final class ConnectionGuard: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Connections open at once; nil: no limit.
        public var maxConnections: Int?
        /// How long a message may take; nil: no limit.
        public var stallTimeout: TimeAmount?

        public init(maxConnections: Int? = 10_000, stallTimeout: TimeAmount? = .seconds(30)) {
            self.maxConnections = maxConnections
            self.stallTimeout = stallTimeout
        }
    }

    public let settings: Settings
    let role: String
    private let logger: Logger
    private let open = NIOLockedValueBox(0)
    private let lastWarned = NIOLockedValueBox<[String: NIODeadline]>([:])
    private let overLimit: Counter
    private let stalled: Counter

    public init(role: String, settings: Settings, logger: Logger, metrics: any MetricsFactory = MetricsSystem.factory) {
        self.role = role
        self.settings = settings
        self.logger = logger
        overLimit = Counter(
            label: MetricNames.connectionsClosed, dimensions: [("role", role), ("reason", "max_connections")],
            factory: metrics)
        stalled = Counter(
            label: MetricNames.connectionsClosed, dimensions: [("role", role), ("reason", "stalled")], factory: metrics)
    }

    /// Connections open now.
    public var openConnections: Int { open.withLockedValue { $0 } }

    /// Called by `Listener` for each new connection, on its event loop:
    /// false (and the connection closed) when the listener is full; else
    /// the connection is counted and, with a stall timeout, watched.
    func admit(_ channel: any Channel) throws -> Bool {
        let admitted = open.withLockedValue { open -> Bool in
            if let max = settings.maxConnections, open >= max { return false }
            open += 1
            return true
        }
        guard admitted else {
            overLimit.increment()
            warn(
                "connection refused: the listener is full", reason: "max_connections",
                metadata: [LogKeys.remote: "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "sluice.limit": "\(settings.maxConnections ?? 0)"])
            channel.close(promise: nil)
            return false
        }
        channel.closeFuture.whenComplete { _ in self.open.withLockedValue { $0 -= 1 } }
        if let timeout = settings.stallTimeout {
            try channel.pipeline.syncOperations.addHandler(StallWatch(guard: self, timeout: timeout))
        }
        return true
    }

    func closedStalled(_ channel: any Channel, pending: Bool, timeout: TimeAmount) {
        stalled.increment()
        warn(
            pending ? "connection closed: a message took too long" : "connection closed: nothing sent in time",
            reason: "stalled",
            metadata: [
                LogKeys.remote: "\(channel.remoteAddress.map { "\($0)" } ?? "?")",
                "sluice.timeout": "\(timeout.nanoseconds / 1_000_000) ms",
            ])
    }

    private func warn(_ message: Logger.Message, reason: String, metadata: Logger.Metadata) {
        let now = NIODeadline.now()
        let due = lastWarned.withLockedValue { last -> Bool in
            if let previous = last[reason], now - previous < .seconds(10) { return false }
            last[reason] = now
            return true
        }
        guard due else { return }
        var metadata = metadata
        metadata[LogKeys.role] = "\(role)"
        logger.warning(message, metadata: metadata)
    }

    /// A handler that marks each whole message (a frame, a syslog message)
    /// for the stall watch: put it right after the decoder. Without a
    /// guard on the connection it only passes messages on.
    public static func messageSeen() -> any ChannelHandler { MessageSeen() }

    /// The same for HTTP: put it after the HTTP server pipeline. A request
    /// counts once its end has arrived; a websocket upgrade ends the watch.
    public static func requestSeen() -> any ChannelHandler { RequestSeen() }

    /// Ends the watch of a connection that has become a websocket (call in
    /// the upgrade's completion handler): a reader may be quiet for hours.
    public static func upgraded(_ pipeline: ChannelPipeline.SynchronousOperations) {
        (try? pipeline.handler(type: StallWatch.self))?.disarm()
        if let seen = try? pipeline.handler(type: RequestSeen.self) { pipeline.removeHandler(seen, promise: nil) }
    }
}

/// First on a connection (after TLS): notes when bytes start a message
/// that has not ended, and closes the connection when one has taken longer
/// than the timeout, or nothing came within it of connecting. One check a
/// timeout's fifth, and one clock read per read that starts a message.
final class StallWatch: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let connectionGuard: ConnectionGuard
    private let timeout: TimeAmount
    /// When the message not yet whole began (or the connection opened,
    /// before its first message).
    private var pendingSince: NIODeadline? = .now()
    private var sawMessage = false
    private var check: RepeatedTask?

    init(guard: ConnectionGuard, timeout: TimeAmount) {
        self.connectionGuard = `guard`
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let interval = TimeAmount.nanoseconds(max(timeout.nanoseconds / 5, 10_000_000))
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (watch, context) = loopBound.value
            watch.inspect(context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func disarm() {
        check?.cancel()
        check = nil
        pendingSince = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if pendingSince == nil, check != nil { pendingSince = .now() }
        context.fireChannelRead(data)
    }

    func messageSeen() {
        pendingSince = nil
        sawMessage = true
    }

    private func inspect(_ context: ChannelHandlerContext) {
        guard let since = pendingSince else { return }
        // While we have stopped reading (backpressure: a full link to a
        // server), the wait is ours, not the peer's: the clock restarts.
        if (try? context.channel.syncOptions?.getOption(.autoRead)) == false {
            pendingSince = .now()
            return
        }
        guard .now() - since >= timeout else { return }
        disarm()
        connectionGuard.closedStalled(context.channel, pending: sawMessage, timeout: timeout)
        context.close(promise: nil)
    }
}

/// Right after a decoder: each message it passes marks the stall watch.
final class MessageSeen: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private var watch: StallWatch?

    func handlerAdded(context: ChannelHandlerContext) {
        watch = try? context.pipeline.syncOperations.handler(type: StallWatch.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        watch?.messageSeen()
        context.fireChannelRead(data)
    }
}

/// After the HTTP server pipeline: a request's end marks the stall watch.
/// A websocket upgrade that succeeds ends the watch (`upgraded`); one that
/// is refused leaves it as for any request.
final class RequestSeen: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    private var watch: StallWatch?

    func handlerAdded(context: ChannelHandlerContext) {
        watch = try? context.pipeline.syncOperations.handler(type: StallWatch.self)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { watch?.messageSeen() }
        context.fireChannelRead(data)
    }
}
