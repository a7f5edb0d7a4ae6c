import CoreMetrics
import DequeModule
import Logging
import NIOCore
import NIOWebSocket
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// One websocket reader of `/apps/{app}/stream`. Envelopes from the buffer
/// servers wait in a bounded queue of their own; when a reader does not keep
/// up and the queue overflows, its oldest envelopes are dropped, counted, and
/// the reader is told how many in an in-band notice before the next ones.
/// A slow reader therefore never slows ingest or any other reader.
///
/// Frames are written straight to the socket as bytes (the websocket frame
/// encoder is removed), many per write: one binary message per envelope, the
/// envelope's own bytes.
final class TailSession: ChannelInboundHandler, LinkSubscriber, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = ByteBuffer

    struct Settings: Sendable {
        var queueLimit: Int
        var pingInterval: TimeAmount
        var json: Bool
    }

    private let app: String
    private let links: [ServerLink]
    private let settings: Settings
    private let metrics: TailMetrics
    private let logger: Logger
    private let eventLoop: any EventLoop

    private var context: ChannelHandlerContext?
    /// The context of a handler at the head of the pipeline: writes through
    /// it skip the websocket frame encoder, since frames are already bytes.
    private var rawOut: ChannelHandlerContext?
    private var queue: Deque<ByteBuffer> = []
    private var dropped = 0
    private var droppedSince: Int64 = 0
    private var subscriptions: [(link: ServerLink, id: EventLoopFuture<UInt64>)] = []
    private var pingTask: RepeatedTask?
    private var closing = false
    private var ended = false
    /// Sender frames this reader has been sent.
    private var seen = SeenFrames()
    /// Whether each zone's servers for this app answer.
    private var zoneState: [String: ZoneState] = [:]
    /// Zones the reader was told are not answering (and not yet that they
    /// are back).
    private var toldDown: Set<String> = []

    init(
        app: String, links: [ServerLink], settings: Settings, metrics: TailMetrics, logger: Logger,
        eventLoop: any EventLoop
    ) {
        self.app = app
        self.links = links
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.eventLoop = eventLoop
    }

    /// Subscribes at every server that holds the app. The future completes
    /// once the subscriptions are queued on the links, before anything
    /// ingested later: only then is the upgrade answered, so a reader sees
    /// every line emitted after its websocket opened. Envelopes that arrive
    /// before the handler is in the pipeline wait in the queue.
    func start(closeFuture: EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        metrics.readers.increment()
        for zone in Set(links.map(\.zone)) { zoneState[zone] = currentState(of: zone) }
        closeFuture.whenComplete { _ in self.eventLoop.execute { self.teardown() } }
        let futures = links.map { link in
            let id = link.subscribe(app: app, subscriber: self)
            return id
        }
        subscriptions = zip(links, futures).map { ($0, $1) }
        return EventLoopFuture.andAllSucceed(futures.map { $0.map { _ in } }, on: eventLoop)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let raw = RawOutbound()
        do {
            try context.pipeline.syncOperations.addHandler(raw, position: .first)
            rawOut = try context.pipeline.syncOperations.context(handler: raw)
        } catch {
            context.close(promise: nil)
            return
        }
        pingTask = context.eventLoop.scheduleRepeatedTask(
            initialDelay: settings.pingInterval, delay: settings.pingInterval
        ) { [weak self] _ in
            self?.sendControl(.ping, payload: ByteBuffer())
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
        for (link, id) in subscriptions {
            id.whenSuccess { link.unsubscribe(id: $0) }
        }
        subscriptions = []
        queue.removeAll()
    }

    // MARK: from the reader

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .connectionClose:
            guard !closing else {
                context.close(promise: nil)
                return
            }
            closing = true
            var data = frame.unmaskedData
            let code = data.readSlice(length: min(2, data.readableBytes)) ?? ByteBuffer()
            sendControl(.connectionClose, payload: code)
            context.close(promise: nil)
        case .ping:
            sendControl(.pong, payload: frame.unmaskedData)
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

    private func sendControl(_ opcode: WebSocketOpcode, payload: ByteBuffer) {
        guard let rawOut else { return }
        var buffer = rawOut.channel.allocator.buffer(capacity: payload.readableBytes + 2)
        buffer.writeWebSocketFrame(opcode: opcode, payload: payload)
        rawOut.writeAndFlush(NIOAny(buffer), promise: nil)
    }

    // MARK: from the buffer servers

    func deliver(batch: ByteBuffer, parts: [BatchPart]) {
        if eventLoop.inEventLoop {
            enqueue(batch, parts: parts)
        } else {
            eventLoop.execute { self.enqueue(batch, parts: parts) }
        }
    }

    /// Tells the reader in band when a zone stops answering (none of its
    /// servers for this app is reachable) and when it is back (all are
    /// again, subscriptions renewed).
    func linkChanged(_ link: ServerLink) {
        eventLoop.execute {
            let state = self.currentState(of: link.zone)
            let before = self.zoneState[link.zone]
            self.zoneState[link.zone] = state
            let text: String
            switch (before, state) {
            case (_, .up) where self.toldDown.contains(link.zone):
                self.toldDown.remove(link.zone)
                text = "Sluice: zone \(link.zone) is back; its live lines resume"
            case (.up?, .down), (.partial?, .down):
                self.toldDown.insert(link.zone)
                text = "Sluice: zone \(link.zone) is not answering (lost \(link.endpoint)); its lines are missing until it is back"
            default:
                return
            }
            let notice = Notice.envelope(
                app: self.app, text: text, timestampNanos: CFLogFormat.nowNanos(), kind: "zone")
            var batch = ByteBuffer()
            notice.withUnsafeBytes { batch.writeBatchEntry($0) }
            self.enqueue(batch)
        }
    }

    enum ZoneState {
        case up, partial, down
    }

    /// Up when every server of the zone that holds this app answers, down
    /// when none does.
    private func currentState(of zone: String) -> ZoneState {
        let zoneLinks = links.filter { $0.zone == zone }
        if zoneLinks.allSatisfy(\.isUp) { return .up }
        return zoneLinks.contains(where: \.isUp) ? .partial : .down
    }

    /// Queues a batch's envelopes. A part this reader already got (sent
    /// again after a failure, through another server or zone) is skipped.
    private func enqueue(_ batch: ByteBuffer, parts: [BatchPart] = []) {
        guard !ended, !closing else { return }
        var overflow = 0
        var cursor = PartCursor(parts)
        var keep = true
        do {
            try batch.forEachEnvelope { envelope, _ in
                if !parts.isEmpty {
                    if cursor.advance() {
                        keep = seen.insert(sender: cursor.current.sender, sequence: cursor.current.sequence)
                    }
                    guard keep else { return }
                }
                queue.append(envelope)
                if queue.count > settings.queueLimit {
                    queue.removeFirst()
                    overflow += 1
                }
            }
        } catch {
            logger.warning("dropping a malformed batch from a buffer server", metadata: [LogKeys.reason: "\(error)"])
        }
        if overflow > 0 {
            if dropped == 0 { droppedSince = CFLogFormat.nowNanos() }
            dropped += overflow
            metrics.dropped.increment(by: overflow)
        }
        writePending()
    }

    /// Writes queued envelopes while the socket takes them, many frames per
    /// write, a drop notice first if there is one to give.
    private func writePending() {
        guard let context, let rawOut, !closing else { return }
        var wrote = false
        while context.channel.isWritable && (!queue.isEmpty || dropped > 0) {
            var out = context.channel.allocator.buffer(capacity: 64 * 1024)
            if dropped > 0 {
                let text = Notice.dropText(
                    count: dropped, sinceNanos: droppedSince,
                    reason: "this reader did not keep up; the oldest lines waiting for it were dropped")
                let notice = Notice.envelope(app: app, text: text, timestampNanos: CFLogFormat.nowNanos(), kind: "dropped")
                notice.withUnsafeBytes { writeEnvelope($0, into: &out) }
                dropped = 0
            }
            var sent = 0
            while out.readableBytes < 256 * 1024, let envelope = queue.popFirst() {
                envelope.withUnsafeReadableBytes { writeEnvelope($0, into: &out) }
                sent += 1
            }
            metrics.sent.increment(by: sent)
            rawOut.write(NIOAny(out), promise: nil)
            wrote = true
        }
        if wrote { rawOut.flush() }
    }

    private func writeEnvelope(_ bytes: UnsafeRawBufferPointer, into out: inout ByteBuffer) {
        guard settings.json else {
            out.writeWebSocketFrame(opcode: .binary, payload: bytes)
            return
        }
        do {
            let envelope = try Loggregator_V2_Envelope(serializedBytes: Array(bytes))
            let json = try envelope.jsonString()
            out.writeWebSocketHeader(opcode: .text, length: json.utf8.count)
            out.writeString(json)
        } catch {
            metrics.undecodable.increment()
        }
    }
}

/// Metrics of websocket readers, made once per controller.
struct TailMetrics: Sendable {
    let readers: Meter
    let sent: Counter
    let dropped: Counter
    let undecodable: Counter

    init(factory: any MetricsFactory) {
        readers = Meter(label: "sluice_controller_stream_readers", factory: factory)
        sent = Counter(label: "sluice_controller_stream_envelopes_sent_total", factory: factory)
        dropped = Counter(
            label: "sluice_controller_stream_envelopes_dropped_total", dimensions: [("reason", "slow_reader")],
            factory: factory)
        undecodable = Counter(
            label: "sluice_controller_stream_envelopes_dropped_total", dimensions: [("reason", "undecodable")],
            factory: factory)
    }
}

/// Placed first in a websocket pipeline so that bytes written through its
/// context go straight to the socket.
private final class RawOutbound: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
}
