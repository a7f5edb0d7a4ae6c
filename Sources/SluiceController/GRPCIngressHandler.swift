import NIOCore
import SluiceGRPC
import SluiceTransport
import SluiceWire

/// One `loggregator.v2.Ingress` call on a controller (`--grpc-ingress`):
/// each batch `IngressCall` takes becomes an ENVELOPES frame, numbered, for
/// the `IngressHandler` behind it, as if from an emitter that said HELLO
/// with a sender id of its own; the ACK frames it writes back become the
/// call's answer. So a gRPC batch is routed, kept as its bytes, held to the
/// same windows and backpressure, and acknowledged when the buffer servers
/// have it, as the framed protocol's are.
///
/// The call is registered in `calls` until answered, so that a graceful
/// stop can end it: a stream stops being read and ends with UNAVAILABLE
/// once what it took is acknowledged; a `Send` finishes as ever. A call
/// that opens during the stop is answered UNAVAILABLE before it takes
/// anything.
final class GRPCIngressHandler: ChannelDuplexHandler {
    typealias InboundIn = GRPCRequestPart
    typealias InboundOut = Frame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = GRPCResponsePart

    private var call: IngressCall
    private let calls: GRPCIngressCalls?
    /// The call opened once the controller was stopping: it takes nothing
    /// and is answered UNAVAILABLE at once.
    private var refused = false

    init(method: IngressCall.Method, maxBatch: Int, calls: GRPCIngressCalls? = nil) {
        self.call = IngressCall(method: method, maxBatch: maxBatch)
        self.calls = calls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let calls else { return }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        let registered = calls.opened(ObjectIdentifier(self)) {
            loop.execute {
                let (handler, context) = bound.value
                handler.stop(context: context)
            }
        }
        refused = !registered
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        calls?.closed(ObjectIdentifier(self))
    }

    /// The controller is stopping (`GRPCIngressCalls.stopAll`).
    private func stop(context: ChannelHandlerContext) {
        let (last, end) = call.stop()
        guard call.stopping else { return }
        context.channel.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in }
        if let last {
            take(last, context: context)
            // The ingress handler sends what it gathered at a read's end.
            context.fireChannelReadComplete()
        }
        if end { endStopped(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else {
            if case .head = unwrapInboundIn(data) {
                context.writeAndFlush(wrapOutboundOut(.end(IngressCall.stoppedStatus)), promise: nil)
            }
            return
        }
        do {
            switch unwrapInboundIn(data) {
            case .head:
                var id = context.channel.allocator.buffer(capacity: 8)
                id.writeInteger(UInt64.random(in: 1...UInt64.max))
                context.fireChannelRead(
                    wrapInboundOut(Frame(header: FrameHeader(length: 8, type: .hello, sequence: 0), payload: id)))
            case .message(let message):
                if let batch = try call.message(message, allocator: context.channel.allocator) {
                    take(batch, context: context)
                }
            case .end:
                let (last, answer) = try call.ended()
                if let last { take(last, context: context) }
                if answer { self.answer(context: context) }
            }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !refused, let batch = call.readComplete() { take(batch, context: context) }
        context.fireChannelReadComplete()
    }

    private func take(_ batch: IngressCall.Batch, context: ChannelHandlerContext) {
        let header = FrameHeader(length: UInt32(batch.bytes.readableBytes), type: .envelopes, sequence: batch.sequence)
        context.fireChannelRead(wrapInboundOut(Frame(header: header, payload: batch.bytes)))
    }

    /// The `IngressHandler`'s ACK frames: never sent as they are.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let ack = unwrapOutboundIn(data)
        promise?.succeed()
        guard ack.readableBytes >= FrameHeader.size,
            let sequence = ack.getInteger(at: ack.readerIndex + 8, as: UInt64.self)
        else { return }
        if call.acknowledged(upTo: sequence) {
            answer(context: context)
        } else if call.stopDue() {
            endStopped(context: context)
        }
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
    }

    private func answer(context: ChannelHandlerContext) {
        // Every response of the service is an empty message.
        context.write(wrapOutboundOut(.message(context.channel.allocator.buffer(capacity: 0))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(.ok)), promise: nil)
        calls?.closed(ObjectIdentifier(self))
    }

    private func endStopped(context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(.end(IngressCall.stoppedStatus)), promise: nil)
        calls?.closed(ObjectIdentifier(self))
    }
}
