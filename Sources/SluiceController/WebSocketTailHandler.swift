import CoreMetrics
import Logging
import NIOCore
import NIOWebSocket
import SluiceProto
import SluiceTLS
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// The websocket adapter of the egress core: `/apps/{app}/stream`. It feeds
/// a `TailStateMachine` what the servers send (through a `TailFeed`) and
/// what the reader sends, and carries out its actions as websocket frames:
/// one binary message per envelope (the envelope's own bytes), or text in
/// protobuf's JSON mapping with `?format=json`. Frames are written straight
/// to the socket as bytes (the frame encoder is skipped), many per write.
final class WebSocketTailHandler: ChannelInboundHandler, TailFeedSink, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = ByteBuffer

    struct Settings: Sendable {
        var queueLimit: Int
        var pingInterval: TimeAmount
        var json: Bool
    }

    private let feed: TailFeed
    private let settings: Settings
    private let metrics: TailMetrics
    private let logger: Logger
    private var machine: TailStateMachine
    private var context: ChannelHandlerContext?
    /// The context of a handler at the head of the pipeline: writes through
    /// it skip the websocket frame encoder, since frames are already bytes.
    private var rawOut: ChannelHandlerContext?
    private var pingTask: RepeatedTask?
    private var ended = false

    init(feed: TailFeed, settings: Settings, metrics: TailMetrics, logger: Logger) {
        self.feed = feed
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        // Every zone is taken as up until the feed, once subscribed, says
        // how each is: a reader that comes while a zone is down is told.
        self.machine = TailStateMachine(
            app: feed.target.noticeSource, queueLimit: settings.queueLimit,
            zones: feed.zoneStates.mapValues { _ in TailStateMachine.ZoneState.up })
    }

    /// Subscribes; the upgrade is answered once the future completes.
    /// Envelopes that arrive before the handler is in the pipeline wait in
    /// the state machine's queue.
    func start(closeFuture: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        metrics.readers.increment()
        let loop = feed.eventLoop
        closeFuture.whenComplete { _ in loop.execute { self.teardown() } }
        return feed.start(sink: self)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let raw = RawOutbound()
        do {
            try TLSLayer.addAtFront(raw, context.pipeline.syncOperations)
            rawOut = try context.pipeline.syncOperations.context(handler: raw)
        } catch {
            context.close(promise: nil)
            return
        }
        pingTask = context.eventLoop.scheduleRepeatedTask(
            initialDelay: settings.pingInterval, delay: settings.pingInterval
        ) { [weak self] _ in
            guard let self else { return }
            self.act(self.machine.pingDue())
        }
        writePending()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        teardown()
        self.context = nil
        self.rawOut = nil
    }

    /// Ends the subscriptions; runs once, when the connection closes.
    private func teardown() {
        guard !ended else { return }
        ended = true
        pingTask?.cancel()
        pingTask = nil
        metrics.readers.decrement()
        feed.stop()
        machine.closed()
    }

    // MARK: from the reader

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .connectionClose:
            act(machine.closeReceived(frame.unmaskedData))
        case .ping:
            act(machine.pingReceived(frame.unmaskedData))
        default:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        writePending()
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("closing websocket after error", metadata: [LogKeys.reason: "\(error)"])
        context.close(promise: nil)
    }

    // MARK: from the servers

    func feedDelivered(_ batch: ByteBuffer, parts: [BatchPart]) {
        do {
            let (dropped, action) = try machine.delivered(batch, parts: parts, now: WallClock.nowNanos())
            if dropped > 0 { metrics.dropped.increment(by: dropped) }
            act(action)
        } catch {
            logger.warning("dropping a malformed batch from a buffer server", metadata: [LogKeys.reason: "\(error)"])
        }
    }

    func feedZoneChanged(_ zone: String, to state: TailStateMachine.ZoneState, lost: String) {
        act(machine.zoneChanged(zone, to: state, lost: lost, now: WallClock.nowNanos()))
    }

    // MARK: to the reader

    private func act(_ action: TailStateMachine.Action) {
        switch action {
        case .none:
            break
        case .write:
            writePending()
        case .sendPing:
            sendControl(.ping, payload: ByteBuffer())
        case .sendPong(let data):
            sendControl(.pong, payload: data)
        case .sendCloseThenClose(let code):
            sendControl(.connectionClose, payload: code)
            context?.close(promise: nil)
        case .close:
            context?.close(promise: nil)
        }
    }

    private func sendControl(_ opcode: WebSocketOpcode, payload: ByteBuffer) {
        guard let rawOut else { return }
        var buffer = rawOut.channel.allocator.buffer(capacity: payload.readableBytes + 2)
        buffer.writeWebSocketFrame(opcode: opcode, payload: payload)
        rawOut.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    /// Writes what waits while the socket takes it, many frames per write.
    private func writePending() {
        guard let context, let rawOut else { return }
        var wrote = false
        while context.channel.isWritable && machine.hasPending {
            var out = context.channel.allocator.buffer(capacity: 64 * 1024)
            let sent = machine.take(maxBytes: 256 * 1024, now: WallClock.nowNanos()) { item in
                let before = out.writerIndex
                switch item {
                case .envelope(let envelope):
                    envelope.withUnsafeReadableBytes { write($0, into: &out) }
                case .notice(let notice):
                    notice.withUnsafeBytes { write($0, into: &out) }
                }
                return out.writerIndex - before
            }
            metrics.sent.increment(by: sent)
            rawOut.write(NIOAny(out), promise: nil)
            wrote = true
        }
        if wrote { rawOut.flush() }
    }

    private func write(_ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        guard settings.json else {
            out.writeWebSocketFrame(opcode: .binary, payload: bytes)
            return
        }
        do {
            let json = try Loggregator_V2_Envelope(serializedBytes: Array(bytes)).jsonString()
            out.writeWebSocketHeader(opcode: .text, length: json.utf8.count)
            out.writeString(json)
        } catch {
            metrics.undecodable.increment()
        }
    }
}

/// Placed first in a websocket pipeline (after TLS, if any) so that bytes
/// written through its context go straight to the socket.
private final class RawOutbound: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
}
