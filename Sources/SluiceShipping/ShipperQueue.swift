import DequeModule
import NIOCore
import SluiceTransport
import SluiceWire

/// The bounded queue in front of an emitter's link (the agent's, `sluice
/// run`'s, `SluiceEmitter`'s): envelopes are written straight into batch
/// frames; when the queue holds more than `capacity` bytes the *oldest*
/// envelopes are dropped and counted per app, and the next frames taken
/// start with one notice per app saying how many were lost and since when
/// (as Logplex's L10). Appending never waits.
///
/// Not thread-safe: `LogShipper` keeps it under a lock.
public struct ShipperQueue: Sendable {
    public struct Drop: Hashable, Sendable {
        public var app: String
        public var count: Int
        /// When the first of them was dropped (ns since the epoch).
        public var since: Int64
    }

    public let capacity: Int
    public let batchCount: Int
    public let batchBytes: Int
    /// An envelope larger than this (a batch entry) is refused: no frame
    /// that holds it would be taken downstream.
    public let maxEntryBytes: Int
    /// Why envelopes were dropped, as the notices say it.
    public let dropReason: String

    /// Bytes of the envelopes held (their batch entries).
    public private(set) var bytes = 0
    /// Envelopes held.
    public private(set) var count = 0
    /// Every envelope taken in since the start (so `appendedTotal - count`
    /// have left the queue, taken or dropped, oldest first).
    public private(set) var appendedTotal = 0
    /// Every envelope dropped since the start (the buffer was full).
    public private(set) var droppedTotal = 0
    /// Envelopes refused for being over `maxEntryBytes`.
    public private(set) var refusedTotal = 0
    /// When the open batch got its first envelope (for the flush delay).
    public private(set) var openSince: Int64?

    private var sealed: Deque<Batch> = []
    private var open = Batch()
    private var drops: [String: Drop] = [:]
    /// Apps in the order of their first drop, so notices come out in that order.
    private var dropOrder: [String] = []
    /// Drops per app since `takeNewDrops` was last called (for metrics).
    private var newDrops: [String: Int] = [:]
    /// Drop notices go out once delivery has resumed (the queue is at most
    /// half full), or this long after the first drop they tell of: under
    /// sustained overload, about once this often, each with the count since
    /// the one before. Nanoseconds.
    public let noticeDelay: Int64
    private let allocator = ByteBufferAllocator()

    /// A batch frame being filled: the header's room, then entries.
    private struct Batch {
        var buffer: ByteBuffer?
        /// Each entry's app and length, oldest first.
        var entries: Deque<(app: String, length: Int)> = []
        /// Bytes at the front (after the header's room) of entries dropped.
        var dropped = 0
    }

    public init(
        capacity: Int, batchCount: Int = 1000, batchBytes: Int = 1024 * 1024,
        dropReason: String = "the log agent's buffer was full", noticeDelay: Int64 = 1_000_000_000,
        maxEntryBytes: Int = FrameHeader.defaultMaxPayload - 64 * 1024
    ) {
        precondition(capacity > 0 && batchCount > 0 && batchBytes > 0 && maxEntryBytes > 0)
        self.maxEntryBytes = maxEntryBytes
        self.dropReason = dropReason
        self.noticeDelay = noticeDelay
        self.capacity = capacity
        self.batchCount = batchCount
        self.batchBytes = batchBytes
    }

    /// Whether a full batch waits to be taken.
    public var hasFullBatch: Bool { !sealed.isEmpty }

    public var isEmpty: Bool { count == 0 && dropOrder.isEmpty }

    /// Whether notices wait to go out (`take` sends them when it may).
    public var hasPendingNotices: Bool { !dropOrder.isEmpty }

    /// Appends one envelope, written by `write` as a batch entry (tag,
    /// length, bytes: `writeLogEnvelopeEntry` or `writeBatchEntry`). Drops
    /// the oldest envelopes if the queue is then over its capacity. Returns
    /// true when this append filled a batch (or began one), so the caller
    /// knows to wake whoever takes batches.
    @discardableResult
    public mutating func append(app: String, now: Int64, _ write: (inout ByteBuffer) -> Void) -> Bool {
        if open.buffer == nil {
            var buffer = allocator.buffer(capacity: 64 * 1024)
            buffer.moveWriterIndex(forwardBy: FrameHeader.size)
            open.buffer = buffer
        }
        let before = open.buffer!.writerIndex
        write(&open.buffer!)
        let length = open.buffer!.writerIndex - before
        guard length <= maxEntryBytes else {
            open.buffer!.moveWriterIndex(to: before)
            refusedTotal += 1
            return false
        }
        // A frame stays within `batchBytes`, or holds a single envelope: an
        // entry that would take it past is the first of the next batch.
        var filled = false
        if !open.entries.isEmpty && before - FrameHeader.size + length > batchBytes {
            filled = true
            let entry = open.buffer!.getSlice(at: before, length: length)!
            open.buffer!.moveWriterIndex(to: before)
            seal()
            var buffer = allocator.buffer(capacity: FrameHeader.size + length)
            buffer.moveWriterIndex(forwardBy: FrameHeader.size)
            buffer.writeImmutableBuffer(entry)
            open.buffer = buffer
        }
        open.entries.append((app, length))
        bytes += length
        count += 1
        appendedTotal += 1
        let began = openSince == nil
        if began { openSince = now }
        if open.entries.count >= batchCount || open.buffer!.writerIndex - FrameHeader.size >= batchBytes {
            seal()
            filled = true
        }
        while bytes > capacity, count > 1 {
            if dropOldest(now: now) { filled = true }
        }
        return filled || began
    }

    /// Closes the open batch, so that `take` returns it.
    public mutating func seal() {
        guard !open.entries.isEmpty else { return }
        sealed.append(open)
        open = Batch()
        openSince = nil
    }

    /// The next frame to send, its sequence left 0: first the drop notices
    /// when they may go (see `noticeDelay`), then the oldest sealed batch.
    /// Nil when nothing is sealed.
    public mutating func take(now: Int64) -> ByteBuffer? {
        takeCounted(now: now)?.frame
    }

    /// `take`, with the number of envelopes in the frame.
    public mutating func takeCounted(now: Int64) -> (frame: ByteBuffer, envelopes: Int)? {
        if let first = dropOrder.first, bytes <= capacity / 2 || now - drops[first]!.since >= noticeDelay {
            return noticeFrame(now: now)
        }
        guard var batch = sealed.popFirst() else { return nil }
        bytes -= batch.entries.reduce(0) { $0 + $1.length }
        count -= batch.entries.count
        // The header goes just before the first envelope still held. The
        // batch is gone from the queue, so the buffer is written in place.
        var frame = batch.buffer!
        batch.buffer = nil
        let start = frame.readerIndex + batch.dropped
        frame.moveReaderIndex(to: start)
        let length = frame.readableBytes - FrameHeader.size
        frame.setInteger(UInt32(length), at: start)
        frame.setInteger(FrameHeader.currentVersion, at: start + 4)
        frame.setInteger(FrameType.envelopes.rawValue, at: start + 5)
        frame.setInteger(FrameFlags().rawValue, at: start + 6)
        frame.setInteger(UInt64(0), at: start + 8)
        return (frame, batch.entries.count)
    }

    /// Drops per app since the last call.
    public mutating func takeNewDrops() -> [String: Int] {
        defer { newDrops = [:] }
        return newDrops
    }

    /// Drops taken so far and not yet told, oldest first.
    public var pendingDrops: [Drop] { dropOrder.map { drops[$0]! } }

    /// Drops the oldest envelope; true if that sealed the open batch.
    private mutating func dropOldest(now: Int64) -> Bool {
        let sealedOpen = sealed.isEmpty
        if sealedOpen { seal() }
        guard !sealed.isEmpty else { return false }
        let entry = sealed[0].entries.removeFirst()
        sealed[0].dropped += entry.length
        bytes -= entry.length
        count -= 1
        droppedTotal += 1
        if sealed[0].entries.isEmpty { sealed.removeFirst() }
        if drops[entry.app] == nil {
            drops[entry.app] = Drop(app: entry.app, count: 0, since: now)
            dropOrder.append(entry.app)
        }
        drops[entry.app]!.count += 1
        newDrops[entry.app, default: 0] += 1
        return sealedOpen
    }

    /// One frame of notices, one per app that lost lines: an ERR envelope
    /// of source type SLUICE in the L10 form. A frame holds at most
    /// `batchBytes` of them; the rest go in the next.
    private mutating func noticeFrame(now: Int64) -> (frame: ByteBuffer, envelopes: Int)? {
        var builder = BatchFrameBuilder(capacity: min(batchBytes, 512 * dropOrder.count))
        var told = 0
        for app in dropOrder {
            guard builder.payloadBytes < batchBytes else { break }
            let drop = drops.removeValue(forKey: app)!
            let text = Notice.dropText(count: drop.count, sinceNanos: drop.since, reason: dropReason)
            Notice.envelope(app: app, text: text, timestampNanos: now, kind: "agent_drop").withUnsafeBytes {
                builder.append($0)
            }
            told += 1
        }
        dropOrder.removeFirst(told)
        return builder.finish(type: .envelopes, sequence: 0).map { ($0, told) }
    }
}
