import DequeModule
import NIOCore

/// The batches a link's buffer server acknowledged in the last few
/// seconds, kept so that when the server stops they can be handed to the
/// servers standing in for it. A reader walking an app's history a little
/// behind (the cf CLI's `cf logs` reads up to two seconds ago) then misses
/// nothing the stopped server held that it had not read yet. Bounded by
/// age (`window`) and by bytes of buffer held (`maxBytes`). Plain logic.
struct AckedHistory {
    /// Unix nanoseconds: how long an acknowledged batch is kept.
    let window: Int64
    let maxBytes: Int
    private var entries: Deque<(at: Int64, batch: LinkBatch)> = []
    /// Bytes of buffer the kept batches hold.
    private(set) var bytes = 0
    /// When the newest batch dropped for `maxBytes` was acknowledged.
    private var droppedForBytes: Int64 = .min

    init(window: Int64, maxBytes: Int) {
        self.window = window
        self.maxBytes = maxBytes
    }

    var count: Int { entries.count }

    /// Keeps a batch acknowledged at `now`, marked as history, and drops
    /// what is too old or past the bytes. A batch holding a buffer much
    /// larger than its envelopes (a small batch in a builder's 64 KiB) is
    /// copied to one its size, so few envelopes do not hold much memory.
    mutating func add(_ batch: LinkBatch, at now: Int64) {
        guard window > 0, maxBytes > 0 else { return }
        var kept = batch
        kept.history = true
        // The parts stay (a stand-in skips frames it holds already); who
        // waited for them was told, and is let go.
        for index in kept.origins.indices { kept.origins[index].acks = nil }
        if kept.batch.capacity > 2 * kept.batch.readableBytes + 4096 {
            kept.batch = ByteBuffer(bytes: kept.batch.readableBytesView)
        }
        entries.append((now, kept))
        bytes += kept.batch.capacity
        trim(now: now)
    }

    /// Drops batches acknowledged more than `window` ago, and the oldest
    /// while the bytes are over `maxBytes`.
    mutating func trim(now: Int64) {
        while let first = entries.first, first.at < now - window {
            bytes -= entries.removeFirst().batch.batch.capacity
        }
        while bytes > maxBytes, let first = entries.first {
            bytes -= first.batch.batch.capacity
            droppedForBytes = first.at
            entries.removeFirst()
        }
    }

    /// Everything kept, oldest first, and the time since which every
    /// batch acknowledged is among them (what the server held from before
    /// then is not); the history starts over.
    mutating func takeAll(now: Int64) -> (batches: [LinkBatch], since: Int64) {
        trim(now: now)
        let since =
            window > 0 && maxBytes > 0 ? Swift.max(now - window, droppedForBytes == .min ? .min : droppedForBytes + 1) : now
        let batches = entries.map(\.batch)
        entries.removeAll()
        bytes = 0
        droppedForBytes = .min
        return (batches, since)
    }
}
