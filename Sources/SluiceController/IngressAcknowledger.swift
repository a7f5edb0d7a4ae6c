import NIOCore
import SluiceTransport

/// Where a part of a link batch came from: an ingress connection and the
/// number of the emitter's frame. Nil `acks` once the part is kept only as
/// history (`AckedHistory`), so that it holds no connection.
struct IngressOrigin: Sendable {
    var acks: IngressAcknowledger?
    var sequence: UInt64
}

/// Writes one ingress connection's acknowledgements as `IngressAcks`
/// decides them. Links report from their own event loops; the state lives
/// on the connection's.
final class IngressAcknowledger: @unchecked Sendable {
    private let channel: any Channel
    private var acks = IngressAcks()

    init(channel: any Channel) {
        self.channel = channel
    }

    /// An ingress frame was routed to `parts` servers. On the connection's loop.
    func routed(sequence: UInt64, parts: Int) {
        channel.eventLoop.preconditionInEventLoop()
        write(acks.routed(sequence: sequence, parts: parts))
    }

    /// A server acknowledged its part of frame `sequence`.
    func partDone(_ sequence: UInt64) {
        onLoop { $0.write($0.acks.partDone(sequence)) }
    }

    /// A part of frame `sequence` went to `servers` stand-ins instead of the
    /// server that failed.
    func partRerouted(_ sequence: UInt64, servers: Int) {
        guard servers != 1 else { return }
        onLoop { $0.write($0.acks.partRerouted(sequence, servers: servers)) }
    }

    private func onLoop(_ body: @escaping @Sendable (IngressAcknowledger) -> Void) {
        if channel.eventLoop.inEventLoop {
            body(self)
        } else {
            channel.eventLoop.execute { body(self) }
        }
    }

    private func write(_ ack: UInt64?) {
        guard let ack else { return }
        channel.writeAndFlush(ByteBuffer.ackFrame(upTo: ack, allocator: channel.allocator), promise: nil)
    }
}
