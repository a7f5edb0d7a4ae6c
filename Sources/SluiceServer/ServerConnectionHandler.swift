import Logging
import NIOCore
import SluiceProto
import SluiceTransport
import SluiceWire
import SwiftProtobuf

/// One controller's connection to a buffer server: envelopes in, recent
/// dumps and live subscriptions out.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    private let store: EnvelopeStore
    private let logger: Logger
    /// The newest ENVELOPES frame taken in.
    private var taken: UInt64 = 0
    /// Writes of this read burst to other controllers' subscriptions, which
    /// its acknowledgement waits for (see `AckGate`).
    private var burstWrites: [EventLoopPromise<Void>] = []
    private var gate = AckGate()
    /// How long an acknowledgement waits for writes to other controllers.
    static let writeWait = TimeAmount.milliseconds(500)
    /// A controller probes an idle link every half second (`ServerLink`):
    /// one silent for 5 s is gone (a silent partition) and its connection
    /// is closed, so that its subscriptions stop taking writes.
    static let liveness = LinkLiveness.Settings(heartbeat: .seconds(5), silence: .seconds(5), checkInterval: .seconds(1))
    private var liveness = LinkLiveness(ServerConnectionHandler.liveness, now: .now())
    private var watchdog: RepeatedTask?

    private let roster: ControllerRoster

    init(store: EnvelopeStore, roster: ControllerRoster, logger: Logger) {
        self.store = store
        self.roster = roster
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        liveness.connected(now: .now())
        let interval = liveness.settings.checkInterval
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        watchdog = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            let (handler, context) = bound.value
            guard case .dead(let silent) = handler.liveness.check(now: .now(), waiting: true) else { return }
            handler.logger.warning(
                "controller silent; closing its connection",
                metadata: [
                    LogKeys.address: "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")",
                    "sluice.silent_ms": "\(silent.nanoseconds / 1_000_000)",
                ])
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        watchdog?.cancel()
        watchdog = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        do {
            switch frame.header.type {
            case .envelopes:
                // Ordinals come only with a leaving server's history.
                if frame.header.flags.contains(.ordinals) && !frame.header.flags.contains(.history) {
                    throw WireError(.malformedBatch, "ORDINALS on ENVELOPES is for HISTORY frames only")
                }
                let (batch, parts) = try frame.batchAndParts()
                if frame.header.flags.contains(.drain) {
                    guard frame.header.flags.contains(.history) else {
                        throw WireError(.malformedBatch, "DRAIN on ENVELOPES is for HISTORY frames only")
                    }
                    let unbound = try store.takeOverDrainLines(batch, parts: parts)
                    if unbound > 0 {
                        logger.warning(
                            "a leaving server's drain lines for a drain not bound here are dropped",
                            metadata: [LogKeys.count: "\(unbound)"])
                    }
                    taken = frame.header.sequence
                    return
                }
                let deliveries = try store.ingest(
                    batch, parts: parts, history: frame.header.flags.contains(.history),
                    ordinals: frame.header.flags.contains(.ordinals))
                taken = frame.header.sequence
                for delivery in deliveries {
                    if delivery.channel === context.channel {
                        context.write(wrapOutboundOut(delivery.frame), promise: nil)
                    } else {
                        let written = delivery.channel.eventLoop.makePromise(of: Void.self)
                        delivery.channel.writeAndFlush(delivery.frame, promise: written)
                        burstWrites.append(written)
                    }
                }
            case .subscribe:
                let request = try Self.request(frame)
                if request.firehose {
                    store.subscribeFirehose(
                        subscription: request.subscriptionID, id: frame.header.sequence, channel: context.channel)
                } else {
                    let replay = store.subscribe(
                        app: request.sourceID, id: frame.header.sequence, channel: context.channel, since: request.startTime)
                    for part in replay { context.write(wrapOutboundOut(part), promise: nil) }
                }
                logger.debug(
                    "subscribed",
                    metadata: [
                        LogKeys.appID: "\(request.firehose ? "(firehose \(request.subscriptionID))" : request.sourceID)",
                        LogKeys.subscription: "\(frame.header.sequence)",
                    ])
            case .unsubscribe:
                store.unsubscribe(id: frame.header.sequence, channel: context.channel)
            case .recentRequest:
                let request = try Self.request(frame)
                let sequence = frame.header.sequence
                let parts: [ByteBuffer]
                if request.meta {
                    var meta = store.meta()
                    meta.controllers = UInt32(roster.count)
                    parts = [Self.metaFrame(meta, sequence: sequence, maxPayload: store.limits.maxFramePayload)]
                } else if Self.isPlainRecent(request) {
                    let limit = request.limit == 0 ? store.limits.recentPerApp : Int(request.limit)
                    parts = store.recentFrames(app: request.sourceID, limit: limit, sequence: sequence)
                } else if let query = RecentQuery(request, defaultLimit: store.limits.recentPerApp) {
                    parts = store.recentFrames(app: request.sourceID, query: query, sequence: sequence)
                } else {
                    parts = store.recentFrames(app: request.sourceID, limit: 0, sequence: sequence)
                }
                for part in parts { context.write(wrapOutboundOut(part), promise: nil) }
            case .hello:
                // A controller names its zone (an older one sends nothing).
                roster.hello(context.channel, zone: String(decoding: frame.payload.readableBytesView, as: UTF8.self))
            case .handoverRequest:
                // Only while this server leaves, from a controller of its
                // zone, once per connection.
                guard roster.mayHandOver(context.channel) else {
                    throw WireError(
                        .unexpectedFrame, "HANDOVER_REQUEST is taken only while leaving, once, from a controller of the zone")
                }
                // A controller that hands on drain lines says so (DRAIN);
                // an older one gets none, and the drains keep theirs.
                let frames = store.handoverFrames(
                    sequence: frame.header.sequence, drainLines: frame.header.flags.contains(.drain))
                logger.info(
                    "handing history to a controller",
                    metadata: [LogKeys.count: "\(frames.count - 1) frames", LogKeys.address: "\(context.channel.remoteAddress.map { "\($0)" } ?? "?")"])
                for part in frames { context.write(wrapOutboundOut(part), promise: nil) }
            case .recentResponse, .stream, .ack, .leaving:
                throw WireError(.unexpectedFrame, "a buffer server does not take \(frame.header.type) frames")
            }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        liveness.heard(now: .now())
        let (burst, ack) = gate.burstEnded(taken: taken, writes: burstWrites.count)
        if let ack { context.write(wrapOutboundOut(.ackFrame(upTo: ack, allocator: context.channel.allocator)), promise: nil) }
        if !burstWrites.isEmpty {
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            let loop = context.eventLoop
            for write in burstWrites {
                write.futureResult.hop(to: loop).whenComplete { _ in
                    let (handler, context) = bound.value
                    handler.acknowledge(handler.gate.writeFinished(burst: burst), context: context)
                }
            }
            // A reader's controller that stops reading holds it up for
            // `writeWait` at most; this controller's watchdog waits longer.
            loop.scheduleTask(in: Self.writeWait) {
                let (handler, context) = bound.value
                handler.acknowledge(handler.gate.expire(burst: burst), context: context)
            }
            burstWrites.removeAll(keepingCapacity: true)
        }
        context.flush()
        context.fireChannelReadComplete()
    }

    private func acknowledge(_ ack: UInt64?, context: ChannelHandlerContext) {
        guard let ack else { return }
        context.writeAndFlush(wrapOutboundOut(.ackFrame(upTo: ack, allocator: context.channel.allocator)), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        store.unsubscribeAll(channel: context.channel)
        context.fireChannelInactive()
    }

    /// A request with only a source id and a limit: the newest envelopes.
    private static func isPlainRecent(_ request: Sluice_V1_StreamRequest) -> Bool {
        request.startTime == 0 && request.endTime == 0 && !request.oldestFirst && request.messageFields.isEmpty
            && request.nameFilter.isEmpty
    }

    /// The one RECENT_RESPONSE frame, flagged final, that answers a meta
    /// request: a `MetaResponse`. Past `maxPayload` bytes the apps written
    /// to least recently are left out.
    private static func metaFrame(_ meta: Sluice_V1_MetaResponse, sequence: UInt64, maxPayload: Int) -> ByteBuffer {
        var meta = meta
        var bytes: [UInt8] = (try? meta.serializedBytes()) ?? []
        if bytes.count > maxPayload {
            meta.sources.sort { $0.newestTimestamp > $1.newestTimestamp }
            while bytes.count > maxPayload, !meta.sources.isEmpty {
                meta.sources.removeLast(max(1, meta.sources.count * (bytes.count - maxPayload) / bytes.count))
                bytes = (try? meta.serializedBytes()) ?? []
            }
        }
        let payload = ByteBuffer(bytes: bytes)
        var frame = ByteBuffer()
        frame.writeFrame(type: .recentResponse, flags: .final, sequence: sequence, payload: payload)
        return frame
    }

    private static func request(_ frame: Frame) throws -> Sluice_V1_StreamRequest {
        do {
            return try Sluice_V1_StreamRequest(serializedBytes: Array(frame.payload.readableBytesView))
        } catch {
            throw WireError(.malformedRequest, "\(frame.header.type) payload is not a StreamRequest: \(error)")
        }
    }
}
