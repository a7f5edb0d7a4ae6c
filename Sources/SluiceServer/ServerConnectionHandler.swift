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
                        delivery.channel.writeAndFlush(delivery.frame, promise: nil)
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
            context.write(wrapOutboundOut(ack), promise: nil)
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
