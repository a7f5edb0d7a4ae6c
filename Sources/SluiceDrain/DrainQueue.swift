import DequeModule
import NIOCore

/// One drain's queue of envelopes waiting to be sent: bounded in count,
/// dropping the oldest when full, and counting what it dropped until the
/// drop is reported. Plain logic: the runner holds the lock.
///
/// The batch being sent stays at the front until its outcome is known. If
/// the queue overflows meanwhile, envelopes of that batch leave the queue
/// but count as dropped only if the send then fails.
public struct DrainQueue {
    public enum Outcome: Sendable {
        /// The endpoint took the batch.
        case delivered
        /// Not delivered; the batch stays queued to be sent again.
        case retry
        /// The endpoint refused the batch for good: it is dropped.
        case rejected
    }

    public let capacity: Int
    /// Bytes held at most; past it the oldest go, as past `capacity`.
    public let capacityBytes: Int
    private var entries = Deque<ByteBuffer>()
    private var bytes = 0
    /// Envelopes that ever left the front, sent or dropped.
    private var removed = 0
    /// While a batch is out: the end of it, counted like `removed`.
    private var inFlightEnd: Int? = nil
    /// Envelopes of the batch out that overflow pushed out of the queue.
    private var inFlightEvicted = 0
    /// After a failed send: how many at the front were that batch, so the
    /// next send is the same batch again (an HTTPS retry keeps its frame id).
    private var retryLength: Int? = nil
    /// Dropped and not yet told to the app's readers.
    public private(set) var unreported = 0
    /// When the first of `unreported` was dropped (ns since 1970).
    public private(set) var firstDropNanos: Int64 = 0
    /// Since when the envelopes at the front have waited for a batch.
    public private(set) var waitingSinceNanos: Int64 = 0
    /// Envelopes ever appended: a waiter can tell whether any came.
    public private(set) var appendedTotal = 0

    public init(capacity: Int, capacityBytes: Int = .max) {
        precondition(capacity > 0 && capacityBytes > 0)
        self.capacity = capacity
        self.capacityBytes = capacityBytes
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var queuedBytes: Int { bytes }

    /// Appends envelopes, dropping the oldest past `capacity`; returns how
    /// many were dropped (not counting those of the batch out).
    @discardableResult
    public mutating func append(contentsOf envelopes: some Sequence<ByteBuffer>, now: Int64) -> Int {
        var dropped = 0
        if entries.isEmpty { waitingSinceNanos = now }
        for envelope in envelopes {
            appendedTotal += 1
            while !entries.isEmpty
                && (entries.count == capacity || bytes + envelope.readableBytes > capacityBytes)
            {
                bytes -= entries.removeFirst().readableBytes
                if let end = inFlightEnd, removed < end {
                    inFlightEvicted += 1
                } else {
                    dropped += 1
                    if let length = retryLength { retryLength = length > 1 ? length - 1 : nil }
                }
                removed += 1
            }
            bytes += envelope.readableBytes
            entries.append(envelope)
        }
        if dropped > 0 { recordDrop(dropped, now: now) }
        return dropped
    }

    /// The oldest envelopes, up to `maxCount` and about `maxBytes` (at least
    /// one), to send now; they stay queued until `finishSend`.
    public mutating func beginSend(maxCount: Int, maxBytes: Int) -> [ByteBuffer] {
        precondition(inFlightEnd == nil, "one batch at a time")
        let maxCount = min(maxCount, retryLength ?? .max)
        retryLength = nil
        var taken: [ByteBuffer] = []
        var size = 0
        for envelope in entries {
            if taken.count == maxCount || (!taken.isEmpty && size + envelope.readableBytes > maxBytes) { break }
            size += envelope.readableBytes
            taken.append(envelope)
        }
        if !taken.isEmpty {
            inFlightEnd = removed + taken.count
            inFlightEvicted = 0
        }
        return taken
    }

    /// Settles the batch out; returns how many envelopes it dropped (for a
    /// retry: how many of it overflow pushed out, so that it changed).
    @discardableResult
    public mutating func finishSend(_ outcome: Outcome, now: Int64) -> Int {
        guard let end = inFlightEnd else { return 0 }
        inFlightEnd = nil
        let stillQueued = max(0, end - removed)
        var dropped = 0
        switch outcome {
        case .delivered:
            removeFront(stillQueued)
        case .retry:
            dropped = inFlightEvicted
            retryLength = stillQueued > 0 ? stillQueued : nil
        case .rejected:
            removeFront(stillQueued)
            dropped = stillQueued + inFlightEvicted
        }
        inFlightEvicted = 0
        if outcome != .retry { waitingSinceNanos = now }
        if dropped > 0 { recordDrop(dropped, now: now) }
        return dropped
    }

    /// Takes out every envelope but those of the batch being sent (or
    /// those too, `includingInFlight`), oldest first: a leaving server
    /// hands them to the server that takes the app next. A batch that
    /// failed and waits to go again goes with them. A batch being sent
    /// that is taken settles as ever, with nothing left here to remove.
    public mutating func takeWaiting(includingInFlight: Bool = false) -> [ByteBuffer] {
        let inFlight = includingInFlight ? 0 : inFlightEnd.map { max(0, $0 - removed) } ?? 0
        guard entries.count > inFlight else { return [] }
        let taken = Array(entries.dropFirst(inFlight))
        if inFlight == 0 {
            // They leave from the front: `removed` counts past them.
            removed += entries.count
            entries.removeAll()
            bytes = 0
        } else {
            entries.removeLast(taken.count)
            for envelope in taken { bytes -= envelope.readableBytes }
        }
        retryLength = nil
        return taken
    }

    /// Whether a batch is out (between `beginSend` and `finishSend`).
    public var isSending: Bool { inFlightEnd != nil }

    /// Empties the queue (the drain was removed); returns how many were in it.
    public mutating func removeAll() -> Int {
        let count = entries.count
        removeFront(count)
        inFlightEnd = nil
        retryLength = nil
        return count
    }

    private mutating func removeFront(_ count: Int) {
        for _ in 0..<count { bytes -= entries.removeFirst().readableBytes }
        removed += count
    }

    private mutating func recordDrop(_ count: Int, now: Int64) {
        if unreported == 0 { firstDropNanos = now }
        unreported += count
    }

    /// The drop count to report, and resets it.
    public mutating func takeUnreported() -> (count: Int, sinceNanos: Int64) {
        defer { unreported = 0 }
        return (unreported, firstDropNanos)
    }
}
