import DequeModule
import NIOCore
import SluiceWire

/// The recent envelopes of one app, oldest first, kept as the bytes they
/// arrived as. Bytes are copied into a few growing chunks rather than held as
/// slices of the frames they came in, so the memory an app holds is what its
/// own envelopes take, and appending allocates nothing per envelope.
///
/// Each envelope's identity (the sender frame it came in and its ordinal
/// among this app's envelopes of that frame) is kept as runs, one per
/// sender frame, so that a controller merging the answers of an owner and
/// its stand-in can tell the same envelope from an identical line.
final class AppLog {
    /// Consecutive envelopes from one sender frame.
    struct Run {
        var sender: UInt64
        var sequence: UInt64
        var first: UInt32
        var count: UInt32
    }

    struct Entry {
        var chunk: Int
        var offset: UInt32
        var length: UInt32
        /// The greatest timestamp of this envelope and every one before it:
        /// never decreasing, so a time can be found by binary search even
        /// though envelopes arrive a little out of time order.
        var newest: Int64
    }

    static let firstChunkSize = 4 * 1024
    static let largestChunkSize = 64 * 1024

    let appID: ByteBuffer
    private var chunks: Deque<ByteBuffer> = []
    /// The absolute number of `chunks.first`.
    private var firstChunk = 0
    private var entries: Deque<Entry> = []
    /// The runs before the newest, oldest first.
    private var runs: Deque<Run> = []
    /// The newest run, which appends go on while they come from its frame
    /// (kept apart so that the common append touches no deque).
    private var open: Run?
    /// Envelopes of the oldest run (`runs.first`, else `open`) let go.
    private var consumed: UInt32 = 0
    private var nextChunkSize = AppLog.firstChunkSize

    /// Bytes allocated for this app's chunks.
    private(set) var storedBytes = 0
    /// How far behind the newest timestamp before it any envelope's own
    /// timestamp has been (0 while they arrive in time order): every
    /// envelope's timestamp is at least its entry's `newest` less this.
    private(set) var lateness: Int64 = 0
    /// Envelopes let go to make room, ever.
    private(set) var expired = 0
    /// The app's log rate limit at this server, if it has one.
    var rateLimit: AppRateLimit?

    init(appID: ByteBuffer) {
        self.appID = appID
    }

    var count: Int { entries.count }

    /// Appends one envelope's bytes, which came in frame `sequence` of
    /// `sender` (0: a sender without identity), with its `timestamp`.
    /// Returns the change in `storedBytes`.
    func append(
        _ envelope: UnsafeRawBufferPointer, timestamp: Int64 = 0, sender: UInt64 = 0, sequence: UInt64 = 0
    ) -> Int {
        let length = envelope.count
        var grown = 0
        if chunks.isEmpty || chunks[chunks.count - 1].writableBytes < length {
            let size = max(nextChunkSize, length)
            nextChunkSize = min(nextChunkSize * 2, Self.largestChunkSize)
            chunks.append(ByteBufferAllocator().buffer(capacity: size))
            grown = chunks[chunks.count - 1].capacity
            storedBytes += grown
        }
        let last = chunks.count - 1
        let offset = chunks[last].writerIndex
        chunks[last].writeBytes(envelope)
        let before = entries.last?.newest ?? timestamp
        if timestamp < before { lateness = max(lateness, Self.minus(before, timestamp)) }
        entries.append(
            Entry(chunk: firstChunk + last, offset: UInt32(offset), length: UInt32(length), newest: max(before, timestamp)))
        if open != nil, open!.sender == sender, open!.sequence == sequence {
            open!.count += 1
        } else {
            if let previous = open { runs.append(previous) }
            open = Run(sender: sender, sequence: sequence, first: 0, count: 1)
        }
        return grown
    }

    /// Drops the oldest envelope. Returns the bytes freed (whole chunks).
    @discardableResult
    func removeOldest() -> Int {
        guard !entries.isEmpty else { return 0 }
        entries.removeFirst()
        expired += 1
        consumed += 1
        if let oldest = runs.first {
            if consumed == oldest.count {
                runs.removeFirst()
                consumed = 0
            }
        } else if consumed == open!.count {
            open = nil
            consumed = 0
        }
        let keepFrom = entries.first?.chunk ?? (firstChunk + chunks.count)
        var freed = 0
        while firstChunk < keepFrom, !chunks.isEmpty {
            freed += chunks.removeFirst().capacity
            firstChunk += 1
        }
        if chunks.isEmpty { nextChunkSize = Self.firstChunkSize }
        storedBytes -= freed
        return freed
    }

    /// Calls `body` with the newest `limit` envelopes' bytes and identities,
    /// oldest first.
    func forEachRecent(limit: Int, _ body: (UnsafeRawBufferPointer, EnvelopeIdentity) -> Void) {
        forEach(at: max(0, entries.count - limit)..<entries.count, body)
    }

    /// The newest timestamp stored; nil when nothing is.
    var newestTimestamp: Int64? { entries.last?.newest }

    /// The oldest timestamp stored; nil when nothing is. Reads only the
    /// envelopes that could be older than the first one.
    var oldestTimestamp: Int64? {
        var oldest: Int64? = nil
        for index in entries.indices {
            // Every envelope from here on is at least this old.
            if let found = oldest, Self.minus(entries[index].newest, lateness) > found { break }
            let time = timestamp(at: index)
            if oldest == nil || time < oldest! { oldest = time }
        }
        return oldest
    }

    /// The envelopes whose timestamps are in `range` and which `admit`
    /// takes, at most `limit` of them: the oldest such (`newest: false`) or
    /// the newest. They are given to `body` in timestamp order, oldest
    /// first, envelopes of the same time in the order they arrived.
    ///
    /// Entries are in arrival order, and each knows the newest time up to
    /// it (`Entry.newest`, never decreasing) and how late any envelope has
    /// been (`lateness`): the read starts by binary search and stops as
    /// soon as no envelope further on can be one of those wanted, so it
    /// reads about `limit` envelopes when they came in time order, and
    /// never more than the app holds.
    func read(
        _ range: Range<Int64>, limit: Int, newest: Bool, admit: (UnsafeRawBufferPointer) -> Bool,
        _ body: (UnsafeRawBufferPointer, EnvelopeIdentity) -> Void
    ) {
        guard limit > 0, !range.isEmpty, !entries.isEmpty else { return }
        var found: [(time: Int64, index: Int)] = []
        /// The `limit`-th time of those found so far, in the order wanted,
        /// once there are that many (it only ever gets better).
        var bound: Int64? = nil
        func settle() {
            guard found.count >= limit else { return }
            found.sort { newest ? ($0.time, $0.index) > ($1.time, $1.index) : ($0.time, $0.index) < ($1.time, $1.index) }
            found.removeLast(found.count - limit)
            bound = found[limit - 1].time
        }
        func consider(_ index: Int) {
            let time = timestamp(at: index)
            guard range.contains(time) else { return }
            let admitted = withBytes(at: index) { admit($0) }
            guard admitted else { return }
            found.append((time, index))
            if found.count == limit || found.count >= 2 * limit { settle() }
        }
        if newest {
            // No envelope at or after the first entry whose newest time, less
            // the lateness, reaches the range's end is in it.
            var index = firstIndex { Self.minus($0.newest, lateness) >= range.upperBound } - 1
            while index >= 0 {
                let reach = entries[index].newest
                // Nothing here or before is as new as needed.
                if reach < range.lowerBound { break }
                if let bound, reach < bound { break }
                consider(index)
                index -= 1
            }
        } else {
            // Everything before the first entry whose newest time reaches
            // the range's start is older than it.
            var index = firstIndex { $0.newest >= range.lowerBound }
            while index < entries.count {
                let least = Self.minus(entries[index].newest, lateness)
                // Nothing here or after is as old as needed.
                if least >= range.upperBound { break }
                if let bound, least > bound { break }
                consider(index)
                index += 1
            }
        }
        settle()
        let ascending = found.map(\.index).sorted()
        let identities = Dictionary(uniqueKeysWithValues: zip(ascending, identities(of: ascending)))
        for (_, index) in found.sorted(by: { ($0.time, $0.index) < ($1.time, $1.index) }) {
            withBytes(at: index) { body($0, identities[index]!) }
        }
    }

    /// `a - b`, held at Int64's bounds (timestamps come from outside).
    private static func minus(_ a: Int64, _ b: Int64) -> Int64 {
        let (difference, overflow) = a.subtractingReportingOverflow(b)
        guard overflow else { return difference }
        return b < 0 ? .max : .min
    }

    /// The first index whose entry satisfies `reached`, which is false and
    /// then true along the entries; `entries.count` if none does.
    private func firstIndex(where reached: (Entry) -> Bool) -> Int {
        var low = 0
        var high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if reached(entries[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }

    private func withBytes<T>(at index: Int, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        let entry = entries[index]
        return chunks[entry.chunk - firstChunk].withUnsafeReadableBytes { bytes in
            body(UnsafeRawBufferPointer(rebasing: bytes[Int(entry.offset)..<Int(entry.offset + entry.length)]))
        }
    }

    /// The timestamp of the envelope at `index`, read from its bytes (it was
    /// checked when it was taken in).
    private func timestamp(at index: Int) -> Int64 {
        withBytes(at: index) { (try? EnvelopeFields.scan($0).timestamp) ?? 0 }
    }

    /// Calls `body` with the envelopes at `indices` and their identities.
    private func forEach(at indices: Range<Int>, _ body: (UnsafeRawBufferPointer, EnvelopeIdentity) -> Void) {
        for (index, identity) in zip(indices, identities(of: indices)) { withBytes(at: index) { body($0, identity) } }
    }

    /// The identities of the envelopes at `indices` (ascending), in order.
    private func identities(of indices: some Collection<Int>) -> [EnvelopeIdentity] {
        var out: [EnvelopeIdentity] = []
        out.reserveCapacity(indices.count)
        guard !indices.isEmpty else { return out }
        // Every run, oldest first, what was let go of the oldest left out.
        var all = Array(runs)
        if let open { all.append(open) }
        if !all.isEmpty {
            all[0].first += consumed
            all[0].count -= consumed
        }
        // Walks the runs forward alongside the indices: `runStart` is the
        // entry index where run `run` begins.
        var run = 0
        var runStart = 0
        for index in indices {
            while run < all.count, index >= runStart + Int(all[run].count) {
                runStart += Int(all[run].count)
                run += 1
            }
            let current = all[run]
            out.append(EnvelopeIdentity(
                sender: current.sender, sequence: current.sequence, ordinal: current.first + UInt32(index - runStart)))
        }
        return out
    }
}
