import CoreMetrics
import Logging
import NIOCore
import SluiceTransport
import SluiceShipping
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
    /// The envelopes of the frame being taken (kept to reuse its storage).
    private var envelopes: [(range: Range<Int>, app: String)] = []

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
        let batch: ByteBuffer
        // The whole batch is checked, and each envelope found, before the
        // shipper's lock is taken: under it is only copying.
        do {
            (batch, _) = try frame.batchAndParts()
            try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
                try EnvelopeBatchScanner.forEach(in: bytes) { range, fields in
                    received += 1
                    guard !fields.sourceID.isEmpty else {
                        unroutable += 1
                        return
                    }
                    let key = UnsafeRawBufferPointer(rebasing: bytes[fields.sourceID.shifted(by: range.lowerBound)])
                    envelopes.append((range, appName(key)))
                }
            }
        } catch {
            envelopes.removeAll(keepingCapacity: true)
            context.fireErrorCaught(error)
            return
        }
        // Only when held to the instance log rate limit is each envelope's
        // instance and log size read.
        let limited = shipper.limitsInstances
        batch.withUnsafeReadableBytes { bytes in
            shipper.appendLines { append in
                for (range, app) in envelopes {
                    let envelope = UnsafeRawBufferPointer(rebasing: bytes[range])
                    let origin =
                        limited
                        ? LogShipper.LineOrigin(app: app, envelope: envelope)
                        : LogShipper.LineOrigin(app: app, instance: "", logBytes: nil)
                    append(origin) { $0.writeBatchEntry(envelope) }
                }
            }
        }
        envelopes.removeAll(keepingCapacity: true)
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
            context.writeAndFlush(wrapOutboundOut(.ackFrame(upTo: sequence, allocator: context.channel.allocator)), promise: nil)
        }
        context.fireChannelReadComplete()
    }
}

extension Range where Bound == Int {
    fileprivate func shifted(by offset: Int) -> Range<Int> {
        (lowerBound + offset)..<(upperBound + offset)
    }
}
