import CoreMetrics
import Logging
import NIOCore
import SluiceTransport
import SluiceWire

/// One emitter's connection to the agent (`sluice emit`, `sluice run`,
/// `SluiceEmitter`, any program that speaks the framed protocol). Each
/// envelope's bytes go into the shipper unchanged; a frame is acknowledged
/// as soon as it is queued, so emitters never wait on the agent's
/// controllers: what the agent cannot deliver it drops, counts and tells.
final class AgentIngressHandler: ChannelInboundHandler {
    typealias InboundIn = Frame
    typealias OutboundOut = ByteBuffer

    private let shipper: LogShipper
    private let metrics: AgentMetrics
    private let logger: Logger
    private var toAcknowledge: UInt64?
    private var warnedUnroutable = false
    /// The last app id seen and its bytes: batches are mostly of one app,
    /// so its String is made once, not per envelope.
    private var lastApp = ""
    private var lastAppBytes: [UInt8] = []

    init(shipper: LogShipper, metrics: AgentMetrics, logger: Logger) {
        self.shipper = shipper
        self.metrics = metrics
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.header.type {
        case .envelopes:
            take(frame, context: context)
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

    private func take(_ frame: Frame, context: ChannelHandlerContext) {
        var received = 0
        var unroutable = 0
        do {
            let (batch, _) = try frame.batchAndParts()
            try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                // forEach checks the whole batch before its first envelope,
                // so a bad frame queues nothing.
                var failure: WireError?
                shipper.appendMany { append in
                    do throws(WireError) {
                        try EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                            received += 1
                            guard !fields.sourceID.isEmpty else {
                                unroutable += 1
                                return
                            }
                            let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                            let app = appName(UnsafeRawBufferPointer(rebasing: envelope[fields.sourceID]))
                            append(app) { $0.writeBatchEntry(envelope) }
                        }
                    } catch {
                        failure = error
                    }
                }
                if let failure { throw failure }
            }
        } catch {
            context.fireErrorCaught(error)
            return
        }
        metrics.received(.framed, count: received)
        if unroutable > 0 {
            metrics.unroutable.increment(by: unroutable)
            if !warnedUnroutable {
                warnedUnroutable = true
                logger.warning(
                    "dropping envelopes without a source_id",
                    metadata: [LogKeys.remote: "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            }
        }
        toAcknowledge = frame.header.sequence
    }

    private func appName(_ bytes: UnsafeRawBufferPointer) -> String {
        if !bytes.elementsEqual(lastAppBytes) {
            lastAppBytes = Array(bytes)
            lastApp = String(decoding: bytes, as: UTF8.self)
        }
        return lastApp
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let sequence = toAcknowledge {
            toAcknowledge = nil
            var ack = context.channel.allocator.buffer(capacity: FrameHeader.size)
            ack.writeFrameHeader(type: .ack, sequence: sequence, length: 0)
            context.writeAndFlush(wrapOutboundOut(ack), promise: nil)
        }
        context.fireChannelReadComplete()
    }
}
