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
    private var paused = false
    private var warnedUnroutable = false
    static let flushThreshold = 512 * 1024

    init(router: IngressRouter, logger: Logger) {
        self.router = router
        self.logger = logger
        self.batches = Array(repeating: BatchFrameBuilder(capacity: 64 * 1024), count: router.links.count)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.header.type == .envelopes else {
            context.fireErrorCaught(
                WireError(.unexpectedFrame, "controller ingress takes only envelopes frames, not \(frame.header.type)"))
            return
        }
        var unroutable = 0
        var received = 0
        let live = router.liveMask
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
                    // Flush first if this envelope would take the batch past
                    // the threshold, so a link frame is never larger than
                    // the largest ingress frame.
                    if !batches[owner].isEmpty && batches[owner].payloadBytes + envelope.count + 16 > Self.flushThreshold {
                        flush(owner)
                    }
                    batches[owner].append(envelope)
                }
            }
        } catch {
            context.fireErrorCaught(error)
            return
        }
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
        guard let frame = batches[index].finish(type: .envelopes, sequence: 0) else { return }
        router.links[index].send(frame: frame)
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
            link.whenDown { [weak self] frames in self?.reroute(frames) }
        }
    }

    var liveMask: UInt64 { live.withLockedValue { $0 } }

    /// The index of the link for an app: its owner among the live servers,
    /// or its owner outright when none is up (the frames then wait).
    func owner(of key: UnsafeRawBufferPointer, live: UInt64) -> Int? {
        if live != 0, let index = hash.owner(of: key, isLive: { live & (1 << $0) != 0 }) { return index }
        return hash.owner(of: key)
    }

    /// Sends ingest frames that were waiting for a server that went down to
    /// the servers that now own their apps.
    func reroute(_ frames: [ByteBuffer]) {
        let live = liveMask
        var batches = Array(repeating: BatchFrameBuilder(capacity: 64 * 1024), count: links.count)
        for frame in frames {
            var payload = frame
            payload.moveReaderIndex(forwardBy: FrameHeader.size)
            try? payload.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                    let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                    guard let owner = owner(of: UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID]), live: live)
                    else { return }
                    batches[owner].append(envelope)
                }
            }
        }
        for index in batches.indices {
            if let frame = batches[index].finish(type: .envelopes, sequence: 0) { links[index].send(frame: frame) }
        }
    }
}
