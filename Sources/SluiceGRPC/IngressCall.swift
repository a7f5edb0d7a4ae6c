import NIOCore
import SluiceTransport
import SluiceWire

/// One call of Loggregator's `loggregator.v2.Ingress` service, as plain
/// state: which batches to take in (each an `EnvelopeBatch`'s bytes,
/// numbered 1, 2, 3…) and when to answer.
///
/// - `Send` (one `EnvelopeBatch`) is answered once its batch is
///   acknowledged: a caller that retries on an error loses nothing.
/// - `BatchSender` (a stream of `EnvelopeBatch`) takes each message as a
///   batch; `Sender` (a stream of `Envelope`) gathers the envelopes of each
///   read burst into one batch of at most `gather` bytes (an envelope that
///   would take it past goes in the next). Both answer once the
///   client has ended its side and every batch is acknowledged.
///
/// What "acknowledged" means is the host's: the agent's once the batch is
/// in its buffer, a controller's once the buffer servers have it.
///
/// A host stopping gracefully (`stop`) lets a `Send` finish as ever; a
/// stream takes nothing more and ends, once what it took is acknowledged,
/// with UNAVAILABLE: its client sends what is left to another host.
public struct IngressCall: Sendable {
    public enum Method: String, Sendable, CaseIterable {
        case sender = "/loggregator.v2.Ingress/Sender"
        case batchSender = "/loggregator.v2.Ingress/BatchSender"
        case send = "/loggregator.v2.Ingress/Send"
    }

    public let method: Method
    /// How many envelope bytes `Sender` gathers before it takes a batch.
    public let gather: Int
    private var gathered: ByteBuffer?
    private var messages = 0
    /// The last batch taken, and the last acknowledged.
    public private(set) var taken: UInt64 = 0
    public private(set) var acknowledged: UInt64 = 0
    private var clientEnded = false
    /// The host is stopping (`stop`): a stream takes nothing more.
    public private(set) var stopping = false
    public private(set) var answered = false

    /// The largest batch taken (the receiver's frame limit): a `Sender`
    /// envelope that cannot fit in one is refused.
    public let maxBatch: Int

    public init(method: Method, gather: Int = 512 * 1024, maxBatch: Int = 4 * 1024 * 1024) {
        self.method = method
        self.gather = min(gather, maxBatch)
        self.maxBatch = maxBatch
    }

    /// A batch to take in, numbered.
    public struct Batch {
        public var bytes: ByteBuffer
        public var sequence: UInt64
    }

    /// A message came. Returns the batch to take now, if any.
    public mutating func message(_ message: ByteBuffer, allocator: ByteBufferAllocator) throws(GRPCStatus) -> Batch? {
        messages += 1
        switch method {
        case .send:
            guard messages == 1 else { throw GRPCStatus(.internal, "Send takes one EnvelopeBatch, and a second came") }
            return next(message)
        case .batchSender:
            return next(message)
        case .sender:
            let entry = 1 + ProtoVarint.size(UInt64(message.readableBytes)) + message.readableBytes
            guard entry <= maxBatch else {
                throw GRPCStatus(
                    .resourceExhausted, "an envelope of \(message.readableBytes) bytes is over the batch limit of \(maxBatch)")
            }
            // What is gathered goes first if this one would take it past `gather`.
            let full = (gathered?.readableBytes ?? 0) + entry > gather ? flush() : nil
            if gathered == nil { gathered = allocator.buffer(capacity: min(gather, entry * 16)) }
            gathered!.writeBatchEntry(message)
            return full
        }
    }

    /// A read burst ended: `Sender`'s gathered envelopes go as one batch.
    public mutating func readComplete() -> Batch? {
        flush()
    }

    /// The client ended its side. Returns the last batch to take, and
    /// whether to answer now (nothing is waiting for an acknowledgement).
    public mutating func ended() throws(GRPCStatus) -> (last: Batch?, answer: Bool) {
        if method == .send && messages == 0 { throw GRPCStatus(.internal, "Send takes one EnvelopeBatch, and none came") }
        clientEnded = true
        let last = flush()
        return (last, last == nil && shouldAnswer())
    }

    /// Batches up to `sequence` are acknowledged. Returns whether to answer now.
    public mutating func acknowledged(upTo sequence: UInt64) -> Bool {
        acknowledged = max(acknowledged, sequence)
        return shouldAnswer()
    }

    /// The host is stopping. A `Send`, or a stream its client has ended,
    /// is answered as ever. Another stream takes nothing more (its host
    /// stops reading it): returns the last batch to take (what `Sender`
    /// gathered) and whether to end it now (nothing waits for an
    /// acknowledgement); else `stopDue` says when.
    public mutating func stop() -> (last: Batch?, end: Bool) {
        guard method != .send, !clientEnded, !answered, !stopping else { return (nil, false) }
        stopping = true
        let last = flush()
        return (last, last == nil && stopDue())
    }

    /// Whether a stopping stream is to end now: everything it took is
    /// acknowledged. True once.
    public mutating func stopDue() -> Bool {
        guard stopping, !clientEnded, !answered, acknowledged >= taken else { return false }
        answered = true
        return true
    }

    /// What a stream stopped by its host ends with.
    public static let stoppedStatus = GRPCStatus(
        .unavailable, "this host is stopping; what was sent before is taken, send the rest to another")

    private mutating func shouldAnswer() -> Bool {
        guard clientEnded, !answered, acknowledged >= taken else { return false }
        answered = true
        return true
    }

    private mutating func next(_ bytes: ByteBuffer) -> Batch {
        taken += 1
        return Batch(bytes: bytes, sequence: taken)
    }

    private mutating func flush() -> Batch? {
        guard let batch = gathered, batch.readableBytes > 0 else { return nil }
        gathered = nil
        return next(batch)
    }
}
