import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SluiceTransport
import SluiceWire

/// One emitter's or agent's connection to a controller. Each envelope's
/// `source_id` is read from its bytes (nothing else is decoded) and the bytes
/// are appended to the batch for the buffer server that owns the app; the
/// batches go out when a read burst ends or a batch grows large. When a
/// server's link is not taking more, this connection stops reading: the
/// emitter feels TCP backpressure instead of Sluice dropping.
final class IngressHandler: ChannelInboundHandler {
    typealias InboundIn = Frame

    private let router: IngressRouter
    private let logger: Logger
    private var batches: [BatchFrameBuilder]
    private var origins: [[AckTracker.Origin]]
    private var tracker: AckTracker?
    /// The emitter's id from its HELLO; 0 until it gives one.
    private var sender: UInt64 = 0
    private var paused = false
    private var warnedUnroutable = false
    static let flushThreshold = 512 * 1024

    init(router: IngressRouter, logger: Logger) {
        self.router = router
        self.logger = logger
        self.batches = Array(repeating: BatchFrameBuilder(capacity: 64 * 1024), count: router.links.count)
        self.origins = Array(repeating: [], count: router.links.count)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        tracker = AckTracker(channel: context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.header.type {
        case .envelopes:
            route(frame, context: context)
        case .hello:
            guard frame.payload.readableBytes == 8, let id = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self)
            else {
                context.fireErrorCaught(WireError(.malformedRequest, "a HELLO carries an 8-byte sender id"))
                return
            }
            sender = id
        default:
            context.fireErrorCaught(
                WireError(.unexpectedFrame, "controller ingress takes envelopes and hello frames, not \(frame.header.type)"))
        }
    }

    /// Appends each envelope to the batch of the server that owns its app.
    /// An ingress frame never straddles two link frames to the same server,
    /// so that a server can tell a resent one by its sender and sequence.
    private func route(_ frame: Frame, context: ChannelHandlerContext) {
        guard let tracker else { return }
        for index in batches.indices
        where !batches[index].isEmpty && batches[index].payloadBytes + frame.payload.readableBytes > Self.flushThreshold {
            flush(index)
        }
        var unroutable = 0
        var received = 0
        var touched: UInt64 = 0
        let live = router.liveMask
        let sender = self.sender
        let sequence = frame.header.sequence
        do {
            try frame.payload.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                    received += 1
                    let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                    guard !fields.sourceID.isEmpty,
                        let owner = router.owner(of: UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID]), live: live)
                    else {
                        unroutable += 1
                        return
                    }
                    if touched & (1 << owner) == 0 {
                        touched |= 1 << owner
                        batches[owner].beginPart(sender: sender, sequence: sequence)
                        origins[owner].append(.init(tracker: tracker, sequence: sequence))
                    }
                    batches[owner].append(envelope)
                }
            }
        } catch {
            context.fireErrorCaught(error)
            return
        }
        tracker.frameRouted(sequence: sequence, parts: touched.nonzeroBitCount)
        router.received.increment(by: received)
        if unroutable > 0 {
            router.unroutable.increment(by: unroutable)
            if !warnedUnroutable {
                warnedUnroutable = true
                logger.warning(
                    "dropping envelopes without a source_id",
                    metadata: [LogKeys.remote: "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        for index in batches.indices where !batches[index].isEmpty { flush(index) }
        applyBackpressure(context: context)
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        for index in batches.indices where !batches[index].isEmpty { flush(index) }
        context.fireChannelInactive()
    }

    private func flush(_ index: Int) {
        guard let bytes = batches[index].finish(type: .envelopes, sequence: 0) else { return }
        router.links[index].send(OutFrame(bytes: bytes, origins: origins[index]))
        origins[index] = []
    }

    /// Stops reading while any link is full; resumes when all have room.
    private func applyBackpressure(context: ChannelHandlerContext) {
        guard !paused, let full = router.links.first(where: { !$0.isWritable }) else { return }
        paused = true
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, channel: context.channel), eventLoop: loop)
        let resume: @Sendable () -> Void = {
            loop.execute {
                let (handler, channel) = bound.value
                handler.paused = false
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
                channel.read()
            }
        }
        full.whenWritable(resume)
    }
}

/// What every ingress connection of a controller shares: the links to its
/// zone's buffer servers, the hash that picks one, and which are up. While a
/// server is down its apps go to the server ranked next for them; when it
/// returns they go back.
final class IngressRouter: Sendable {
    let links: [ServerLink]
    let hash: RendezvousHash
    let received: Counter
    let unroutable: Counter
    /// Bit i set: link i is up.
    private let live = NIOLockedValueBox<UInt64>(0)

    init(links: [ServerLink], metrics: any MetricsFactory) {
        precondition(links.count <= 64, "a zone has at most 64 buffer servers")
        self.links = links
        self.hash = RendezvousHash(nodes: links.map { "\($0.endpoint)" })
        self.received = Counter(label: "sluice_controller_envelopes_received_total", factory: metrics)
        self.unroutable = Counter(
            label: "sluice_controller_envelopes_dropped_total", dimensions: [("reason", "no_source_id")],
            factory: metrics)
        for (index, link) in links.enumerated() {
            link.whenStateChanges { [live] up in
                live.withLockedValue { $0 = up ? $0 | (1 << index) : $0 & ~(1 << index) }
            }
            link.whenDown { [weak self, unowned link] frames in self?.reroute(frames, from: link) }
        }
    }

    var liveMask: UInt64 { live.withLockedValue { $0 } }

    /// The index of the link for an app: its owner among the live servers,
    /// or its owner outright when none is up (the frames then wait).
    func owner(of key: UnsafeRawBufferPointer, live: UInt64) -> Int? {
        if live != 0, let index = hash.owner(of: key, isLive: { live & (1 << $0) != 0 }) { return index }
        return hash.owner(of: key)
    }

    /// Sends link frames that a server that went down had not acknowledged
    /// to the servers that now own their apps, keeping each part's sender
    /// identity and the ingress frame it acknowledges. With no server up,
    /// the frames wait at the link they were for.
    func reroute(_ frames: [OutFrame], from link: ServerLink) {
        let live = liveMask
        guard live != 0 else {
            for frame in frames { link.keep(frame) }
            return
        }
        var batches = Array(repeating: BatchFrameBuilder(capacity: 64 * 1024), count: links.count)
        var origins: [[AckTracker.Origin]] = Array(repeating: [], count: links.count)
        for frame in frames {
            var payload = frame.bytes
            guard let header = payload.readFrameHeaderUnchecked(),
                let (batch, parts) = try? Frame(header: header, payload: payload).batchAndParts(),
                parts.count == frame.origins.count
            else { continue }
            var cursor = PartCursor(parts)
            var touched: UInt64 = 0
            // A part split over several servers is acknowledged by each.
            func closePart(_ index: Int) {
                guard index >= 0 else { return }
                frame.origins[index].tracker.partsAdded(frame.origins[index].sequence, count: touched.nonzeroBitCount - 1)
            }
            try? batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                    let before = cursor.index
                    if cursor.advance() {
                        closePart(before)
                        touched = 0
                    }
                    let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                    guard let owner = owner(of: UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID]), live: live)
                    else { return }
                    if touched & (1 << owner) == 0 {
                        touched |= 1 << owner
                        batches[owner].beginPart(sender: cursor.current.sender, sequence: cursor.current.sequence)
                        origins[owner].append(frame.origins[cursor.index])
                    }
                    batches[owner].append(envelope)
                }
            }
            closePart(cursor.index)
        }
        for index in batches.indices {
            if let bytes = batches[index].finish(type: .envelopes, sequence: 0) {
                links[index].send(OutFrame(bytes: bytes, origins: origins[index]))
            }
        }
    }
}
