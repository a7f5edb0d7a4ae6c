import CoreMetrics
import Logging
import NIOCore
import SluiceTransport
import SluiceWire

/// One emitter's or agent's connection to a controller. It hands each
/// ENVELOPES frame to the zone's `BatchRouter` (which reads only each
/// envelope's `source_id` and appends its bytes to the batch of the server
/// that owns the app), sends the batches when a read burst ends or one
/// grows large, and acknowledges frames as `IngressAcks` decides. When a
/// server's link is not taking more, this connection stops reading: the
/// emitter feels TCP backpressure instead of Sluice dropping.
final class IngressHandler: ChannelInboundHandler {
    typealias InboundIn = Frame

    static let flushThreshold = 512 * 1024

    private let router: IngressRouter
    private let logger: Logger
    private var builders: [PendingBatchBuilder<IngressOrigin>]
    private var acks: IngressAcknowledger?
    /// The emitter's id from its HELLO; 0 until it gives one.
    private var sender: UInt64 = 0
    private var paused = false
    private var warnedUnroutable = false
    /// Reading resumes after backpressure even while the controller drains
    /// (a gRPC `Send` in progress, which the stop lets finish).
    private let readsWhileDraining: Bool

    init(router: IngressRouter, logger: Logger, readsWhileDraining: Bool = false) {
        self.router = router
        self.logger = logger
        self.readsWhileDraining = readsWhileDraining
        self.builders = router.builders()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        acks = IngressAcknowledger(channel: context.channel)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.header.type {
        case .envelopes:
            route(frame, context: context)
        case .hello:
            guard frame.payload.readableBytes == 8,
                let id = frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self)
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

    /// Routes one ingress frame. Its envelopes for one server always travel
    /// in one link frame, so that a server can tell a resent one by its
    /// sender and sequence: a batch that could not take the whole frame
    /// goes out first.
    private func route(_ frame: Frame, context: ChannelHandlerContext) {
        guard let acks else { return }
        for index in builders.indices
        where !builders[index].isEmpty && builders[index].frameBytes + frame.payload.readableBytes > Self.flushThreshold {
            flush(index)
        }
        let sequence = frame.header.sequence
        let part = RoutedPart(
            sender: sender, sequence: sequence, count: .max, origin: IngressOrigin(acks: acks, sequence: sequence))
        var servers = 0
        let outcome: BatchRouter.Outcome
        do {
            let live = router.liveServers
            outcome = try frame.payload.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try router.router.route(bytes, parts: CollectionOfOne(part), live: live, into: &builders) { _, count in
                    servers = count
                }
            }
        } catch {
            context.fireErrorCaught(error)
            return
        }
        acks.routed(sequence: sequence, parts: servers)
        router.received.increment(by: outcome.routed + outcome.unroutable)
        if outcome.unroutable > 0 {
            router.unroutable.increment(by: outcome.unroutable)
            if !warnedUnroutable {
                warnedUnroutable = true
                logger.warning(
                    "dropping envelopes without a source_id",
                    metadata: [LogKeys.remote: "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        for index in builders.indices where !builders[index].isEmpty { flush(index) }
        applyBackpressure(context: context)
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        for index in builders.indices where !builders[index].isEmpty { flush(index) }
        context.fireChannelInactive()
    }

    private func flush(_ index: Int) {
        guard let batch = builders[index].finish() else { return }
        router.links[index].send(batch)
    }

    /// Stops reading while any link is full; resumes when all have room.
    private func applyBackpressure(context: ChannelHandlerContext) {
        guard !paused, let full = router.links.first(where: { !$0.isWritable }) else { return }
        paused = true
        context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
        let loop = context.eventLoop
        let bound = NIOLoopBound((handler: self, channel: context.channel), eventLoop: loop)
        full.whenWritable {
            loop.execute {
                let (handler, channel) = bound.value
                handler.paused = false
                // A controller draining for its stop reads no more, but
                // for a call it lets finish.
                guard !handler.router.isDraining || handler.readsWhileDraining else { return }
                channel.setOption(.autoRead, value: true).whenComplete { _ in }
                channel.read()
            }
        }
    }
}
