import DequeModule
import NIOCore
import SluiceTransport
import SluiceWire

/// Acknowledgements to one ingress connection. An emitter's frame is
/// acknowledged once every buffer server its envelopes went to has
/// acknowledged them, so a controller that dies never owes an emitter
/// anything: the emitter still holds what was not acknowledged and sends it
/// again. State lives on the connection's event loop.
final class AckTracker: @unchecked Sendable {
    /// Where a part of a link frame came from.
    struct Origin: Sendable {
        var tracker: AckTracker
        var sequence: UInt64
    }

    private let channel: any Channel
    private var pending: Deque<(sequence: UInt64, outstanding: Int)> = []
    private var acknowledged: UInt64 = 0

    init(channel: any Channel) {
        self.channel = channel
    }

    /// An ingress frame was routed in `parts` link frames (0 if it had no
    /// envelope that could be routed).
    func frameRouted(sequence: UInt64, parts: Int) {
        channel.eventLoop.preconditionInEventLoop()
        pending.append((sequence, parts))
        if parts == 0 { advance() }
    }

    /// A link frame holding part of ingress frame `sequence` was acknowledged.
    func partDone(_ sequence: UInt64) {
        onLoop { tracker in tracker.adjust(sequence, by: -1) }
    }

    /// A part was split into `count` more when resent to stand-in servers.
    func partsAdded(_ sequence: UInt64, count: Int) {
        guard count != 0 else { return }
        onLoop { tracker in tracker.adjust(sequence, by: count) }
    }

    private func onLoop(_ body: @escaping @Sendable (AckTracker) -> Void) {
        if channel.eventLoop.inEventLoop {
            body(self)
        } else {
            channel.eventLoop.execute { body(self) }
        }
    }

    private func adjust(_ sequence: UInt64, by change: Int) {
        guard let index = pending.firstIndex(where: { $0.sequence == sequence && $0.outstanding > 0 }) else { return }
        pending[index].outstanding += change
        advance()
    }

    private func advance() {
        var newest: UInt64? = nil
        while let first = pending.first, first.outstanding <= 0 {
            pending.removeFirst()
            newest = first.sequence
        }
        guard let newest, newest != acknowledged else { return }
        acknowledged = newest
        var ack = channel.allocator.buffer(capacity: FrameHeader.size)
        ack.writeFrameHeader(type: .ack, sequence: newest, length: 0)
        channel.writeAndFlush(ack, promise: nil)
    }
}

/// A link frame on its way to a buffer server, and the ingress frames it
/// carries parts of: one origin per part, in the order of the frame's parts.
public struct OutFrame: Sendable {
    var bytes: ByteBuffer
    var origins: [AckTracker.Origin]

    init(bytes: ByteBuffer, origins: [AckTracker.Origin]) {
        self.bytes = bytes
        self.origins = origins
    }

    /// Tells every origin that this frame was taken in.
    func acknowledged() {
        for origin in origins { origin.tracker.partDone(origin.sequence) }
    }
}
