import CoreMetrics
import Logging
import NIOCore
import SluiceTransport
import SluiceShipping
import SluiceWire

/// One emitter's connection to the agent (`sluice emit`, `sluice run`,
/// `SluiceEmitter`, any program that speaks the framed protocol). Each
/// envelope's bytes go into the shipper unchanged; a frame is acknowledged
/// as soon as it is queued (with a spool: written to it), so emitters never
/// wait on the agent's controllers: what the agent cannot deliver it drops,
/// counts and tells.
final class AgentIngressHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    private let intake: EnvelopeIntake
    private let shipper: LogShipper
    private var toAcknowledge: UInt64?

    init(shipper: LogShipper, metrics: AgentMetrics, logger: Logger) {
        self.shipper = shipper
        self.intake = EnvelopeIntake(shipper: shipper, metrics: metrics, logger: logger, input: .framed)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.header.type {
        case .envelopes:
            do {
                let (batch, _) = try frame.batchAndParts()
                try intake.take(batch, remote: context.remoteAddress)
            } catch {
                context.fireErrorCaught(error)
                return
            }
            toAcknowledge = frame.header.sequence
        case .hello:
            guard frame.payload.readableBytes == 8 else {
                context.fireErrorCaught(WireError(.malformedRequest, "a HELLO carries an 8-byte sender id"))
                return
            }
        default:
            context.fireErrorCaught(
                WireError(.unexpectedFrame, "the agent takes envelopes and hello frames, not \(frame.header.type)"))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let sequence = toAcknowledge {
            toAcknowledge = nil
            let ack = ByteBuffer.ackFrame(upTo: sequence, allocator: context.channel.allocator)
            if shipper.spool == nil {
                context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
            } else {
                // Acknowledgements stay in order: each waits for a mark at
                // least as late as the one before, and they complete in
                // order on this loop.
                let channel = context.channel
                shipper.whenSpooled(on: context.eventLoop).whenSuccess {
                    channel.writeAndFlush(ack, promise: nil)
                }
            }
        }
        context.fireChannelReadComplete()
    }
}
