import NIOCore
import SluiceShipping
import SluiceGRPC
import SluiceWire

/// One `loggregator.v2.Ingress` call on the agent (`--grpc-listen`): each
/// batch `IngressCall` takes goes into the shipper as the framed input's
/// do (`EnvelopeIntake`), and counts as acknowledged once it is queued,
/// as the framed input's frames do: from there the agent is responsible,
/// and what it must drop it counts and tells in band. `Send` is answered
/// then; a stream when the client ends it.
final class AgentGRPCIngress: ChannelInboundHandler {
    typealias InboundIn = GRPCRequestPart
    typealias OutboundOut = GRPCResponsePart

    private var call: IngressCall
    private let intake: EnvelopeIntake

    init(method: IngressCall.Method, intake: EnvelopeIntake, maxBatch: Int) {
        self.call = IngressCall(method: method, maxBatch: maxBatch)
        self.intake = intake
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            switch unwrapInboundIn(data) {
            case .head:
                break
            case .message(let message):
                if let batch = try call.message(message, allocator: context.channel.allocator) {
                    try take(batch, context: context)
                }
            case .end:
                let (last, answer) = try call.ended()
                if let last { try take(last, context: context) }
                if answer { self.answer(context: context) }
            }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let batch = call.readComplete() {
            do { try take(batch, context: context) } catch { context.fireErrorCaught(error) }
        }
        context.fireChannelReadComplete()
    }

    private func take(_ batch: IngressCall.Batch, context: ChannelHandlerContext) throws {
        try intake.take(batch.bytes, remote: context.channel.parent?.remoteAddress)
        guard call.acknowledged(upTo: batch.sequence) else { return }
        guard intake.shipper.spool != nil else {
            answer(context: context)
            return
        }
        // With a spool, the call ends OK once its envelopes are written.
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        intake.shipper.whenSpooled(on: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success: handler.answer(context: context)
            case .failure: context.close(promise: nil)
            }
        }
    }

    private func answer(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(.message(context.channel.allocator.buffer(capacity: 0))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(.ok)), promise: nil)
    }
}
