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
    /// The newest ENVELOPES frame taken in, and the one last acknowledged.
    private var taken: UInt64 = 0
    private var acknowledged: UInt64 = 0
    /// Writes of this read burst to other controllers' subscriptions: the
    /// acknowledgement waits for them, so that a server killed right after
    /// acknowledging has already handed its readers what it acknowledged.
    private var deliveryWrites: [EventLoopFuture<Void>] = []
    /// The last acknowledgement sent or waiting; the next goes after it.
    private var lastAck: EventLoopFuture<Void>?

    init(store: EnvelopeStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        do {
            switch frame.header.type {
            case .envelopes:
                let (batch, parts) = try frame.batchAndParts()
                let deliveries = try store.ingest(batch, parts: parts)
                taken = frame.header.sequence
                for delivery in deliveries {
                    if delivery.channel === context.channel {
                        context.write(wrapOutboundOut(delivery.frame), promise: nil)
                    } else {
                        let written = delivery.channel.eventLoop.makePromise(of: Void.self)
                        delivery.channel.writeAndFlush(delivery.frame, promise: written)
                        deliveryWrites.append(written.futureResult)
                    }
                }
            case .subscribe:
                let request = try Self.request(frame)
                store.subscribe(app: request.sourceID, id: frame.header.sequence, channel: context.channel)
                logger.debug(
                    "subscribed",
                    metadata: [LogKeys.appID: "\(request.sourceID)", LogKeys.subscription: "\(frame.header.sequence)"])
            case .unsubscribe:
                store.unsubscribe(id: frame.header.sequence, channel: context.channel)
            case .recentRequest:
                let request = try Self.request(frame)
                let limit = request.limit == 0 ? store.limits.recentPerApp : Int(request.limit)
                for part in store.recentFrames(app: request.sourceID, limit: limit, sequence: frame.header.sequence) {
                    context.write(wrapOutboundOut(part), promise: nil)
                }
            case .hello:
                break
            case .recentResponse, .stream, .ack:
                throw WireError(.unexpectedFrame, "a buffer server does not take \(frame.header.type) frames")
            }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // One acknowledgement per read burst, after what the burst stored
        // went out to subscribers.
        if taken != acknowledged {
            acknowledged = taken
            var ack = context.channel.allocator.buffer(capacity: FrameHeader.size)
            ack.writeFrameHeader(type: .ack, sequence: taken, length: 0)
            if deliveryWrites.isEmpty && lastAck == nil {
                context.write(wrapOutboundOut(ack), promise: nil)
            } else {
                // A failed delivery (a reader's connection closed) does not
                // hold the acknowledgement back: that reader is gone.
                let loop = context.eventLoop
                let waits = EventLoopFuture.andAllComplete(deliveryWrites, on: loop)
                let previous = lastAck ?? loop.makeSucceededVoidFuture()
                let channel = context.channel
                let frame = ack
                let sent = previous.and(waits).flatMap { _ in
                    let written = loop.makePromise(of: Void.self)
                    channel.writeAndFlush(frame, promise: written)
                    return written.futureResult
                }.flatMapErrorThrowing { _ in }
                lastAck = sent
                let bound = NIOLoopBound(self, eventLoop: loop)
                sent.whenComplete { _ in
                    // The chain ends here if nothing came after it.
                    if bound.value.lastAck === sent { bound.value.lastAck = nil }
                }
            }
            deliveryWrites.removeAll(keepingCapacity: true)
        }
        context.flush()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        store.unsubscribeAll(channel: context.channel)
        context.fireChannelInactive()
    }

    private static func request(_ frame: Frame) throws -> Sluice_V1_StreamRequest {
        do {
            return try Sluice_V1_StreamRequest(serializedBytes: Array(frame.payload.readableBytesView))
        } catch {
            throw WireError(.malformedRequest, "\(frame.header.type) payload is not a StreamRequest: \(error)")
        }
    }
}
