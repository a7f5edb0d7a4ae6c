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
/// One frame of one sender: what a run of envelopes came in.
struct SenderFrame: Hashable {
    var sender: UInt64
    var sequence: UInt64
}

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
        /// The envelope's timestamp.
        var time: Int64
    }

    /// The oldest and newest timestamps of `blockSize` consecutive entries
    /// (of those taken in: some may have been let go since).
    struct Block {
        var oldest: Int64
        var newest: Int64
    }

    static let blockSize = 256

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
    /// Envelopes let go to make room, ever; also the absolute number of
    /// `entries.first`.
    private(set) var expired = 0
    /// The time span of each block of entries: block `k` holds the entries
    /// numbered `k * blockSize` to `(k + 1) * blockSize - 1` counting every
    /// one ever taken in; `blocks.first` is the block of `entries.first`.
    private var blocks: Deque<Block> = []
    /// The app's log rate limit at this server, if it has one.
    var rateLimit: AppRateLimit?
    /// Log envelopes the rate limit dropped, ever (meta's `dropped`).
    var rateDropped = 0

    init(appID: ByteBuffer) {
        self.appID = appID
    }

    var count: Int { entries.count }

    /// Appends one envelope's bytes, which came in frame `sequence` of
    /// `sender` (0: a sender without identity), with its `timestamp`. One
    /// that starts a run of that frame's envelopes has ordinal `first`
    /// (more than 0 in a server's history handed over, whose older
    /// envelopes of the frame were let go). Returns the change in
    /// `storedBytes`.
    func append(
        _ envelope: UnsafeRawBufferPointer, timestamp: Int64 = 0, sender: UInt64 = 0, sequence: UInt64 = 0,
        first: UInt32 = 0, ordinal: UInt32? = nil
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
        if (expired + entries.count) % Self.blockSize == 0 || blocks.isEmpty {
            blocks.append(Block(oldest: timestamp, newest: timestamp))
        } else {
            blocks[blocks.count - 1].oldest = min(blocks[blocks.count - 1].oldest, timestamp)
            blocks[blocks.count - 1].newest = max(blocks[blocks.count - 1].newest, timestamp)
        }
        entries.append(Entry(chunk: firstChunk + last, offset: UInt32(offset), length: UInt32(length), time: timestamp))
        if open != nil, open!.sender == sender, open!.sequence == sequence,
            ordinal == nil || ordinal! == open!.first &+ open!.count
        {
            open!.count += 1
        } else {
            if let previous = open { runs.append(previous) }
            open = Run(sender: sender, sequence: sequence, first: ordinal ?? first, count: 1)
        }
        return grown
    }

    /// Drops the oldest envelope. Returns the bytes freed (whole chunks).
    @discardableResult
    func removeOldest() -> Int {
        guard !entries.isEmpty else { return 0 }
        entries.removeFirst()
        expired += 1
        if expired % Self.blockSize == 0 || entries.isEmpty { blocks.removeFirst() }
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

    /// Takes in `history`'s envelopes (what another server held, handed
    /// over), keeping the log in time order: appended when all of it is as
    /// new as what is here, else the two are merged by timestamp (stable:
    /// on a tie, what was here first; each keeps its own order). An
    /// envelope whose identity is here already, or came twice (two
    /// controllers handing the same history), is taken once; envelopes of
    /// a sender without identity always are. One pass over both, copying
    /// bytes chunk to chunk: it runs under the store's lock, once per
    /// history frame. Returns the change in `storedBytes`.
    func absorb(_ history: AppLog) -> Int {
        guard history.count > 0 else { return 0 }
        let before = storedBytes
        // The identities held here, as runs per sender frame.
        var held: [SenderFrame: [(first: UInt32, count: UInt32)]] = [:]
        for run in currentRuns() where run.sender != 0 {
            held[SenderFrame(sender: run.sender, sequence: run.sequence), default: []].append((run.first, run.count))
        }
        let offered = history.identities(of: 0..<history.count)
        var taken = Set<EnvelopeIdentity>()
        var keep: [Int] = []
        keep.reserveCapacity(offered.count)
        for (index, identity) in offered.enumerated() {
            if identity.sender != 0 {
                let ranges = held[SenderFrame(sender: identity.sender, sequence: identity.sequence)] ?? []
                if ranges.contains(where: { identity.ordinal &- $0.first < $0.count }) {
                    continue
                }
                guard taken.insert(identity).inserted else { continue }
            }
            keep.append(index)
        }
        guard !keep.isEmpty else { return 0 }
        let time = { (index: Int) in history.entries[index].time }
        if keep.indices.dropFirst().contains(where: { time(keep[$0 - 1]) > time(keep[$0]) }) {
            keep.sort { (time($0), $0) < (time($1), $1) }
        }
        func give(_ index: Int, of log: AppLog, _ identity: EnvelopeIdentity, to target: AppLog) {
            log.withBytes(at: index) {
                _ = target.append(
                    $0, timestamp: log.entries[index].time, sender: identity.sender, sequence: identity.sequence,
                    ordinal: identity.ordinal)
            }
        }
        if time(keep[0]) >= newestTimestamp ?? Int64.min {
            for index in keep { give(index, of: history, offered[index], to: self) }
            return storedBytes - before
        }
        // Merged into a new log: everything here and the history, by time.
        let merged = AppLog(appID: appID)
        merged.expired = expired
        let here = identities(of: 0..<entries.count)
        var next = 0
        for index in keep {
            while next < entries.count, entries[next].time <= time(index) {
                give(next, of: self, here[next], to: merged)
                next += 1
            }
            give(index, of: history, offered[index], to: merged)
        }
        while next < entries.count {
            give(next, of: self, here[next], to: merged)
            next += 1
        }
        chunks = merged.chunks
        firstChunk = merged.firstChunk
        entries = merged.entries
        runs = merged.runs
        open = merged.open
        consumed = merged.consumed
        nextChunkSize = merged.nextChunkSize
        storedBytes = merged.storedBytes
        blocks = merged.blocks
        return storedBytes - before
    }

    /// Every run, oldest first, with what was let go of the oldest left out.
    private func currentRuns() -> [Run] {
        var all = Array(runs)
        if let open { all.append(open) }
        if !all.isEmpty {
            all[0].first &+= consumed
            all[0].count -= consumed
        }
        return all
    }

    /// Calls `body` with the newest `limit` envelopes' bytes and identities,
    /// oldest first.
    func forEachRecent(limit: Int, _ body: (UnsafeRawBufferPointer, EnvelopeIdentity) -> Void) {
        forEach(at: max(0, entries.count - limit)..<entries.count, body)
    }

    /// The newest timestamp stored; nil when nothing is.
    var newestTimestamp: Int64? { span(\.newest, max) }

    /// The oldest timestamp stored; nil when nothing is.
    var oldestTimestamp: Int64? { span(\.oldest, min) }

    /// The oldest or newest time: the first block's own entries (some of its
    /// span may be of envelopes let go), then the other blocks' spans.
    private func span(_ side: KeyPath<Block, Int64>, _ pick: (Int64, Int64) -> Int64) -> Int64? {
        guard !entries.isEmpty else { return nil }
        let firstBlockEnd = min(entries.count, Self.blockSize - expired % Self.blockSize)
        var found = entries[0].time
        for index in 1..<firstBlockEnd { found = pick(found, entries[index].time) }
        for block in blocks.dropFirst() { found = pick(found, block[keyPath: side]) }
        return found
    }

    /// The envelopes whose timestamps are in `range` and which `admit`
    /// takes, at most `limit` of them: the oldest such (`newest: false`) or
    /// the newest. They are given to `body` in timestamp order, oldest
    /// first, envelopes of the same time in the order they arrived.
    ///
    /// Entries are in arrival order, in blocks that each know the oldest
    /// and newest time among them. A read looks into a block only if its
    /// span overlaps the range and, once `limit` envelopes are found, only
    /// if it could hold a better one. Envelopes that arrive in about time
    /// order make a read look at a few blocks; one envelope far from the
    /// others in time widens only its own block.
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
        /// Whether an envelope of time `time` can still be one of those wanted.
        func wanted(_ time: Int64) -> Bool {
            guard range.contains(time) else { return false }
            guard let bound else { return true }
            // A tie loses to the one found first (arrival order decides).
            return newest ? time > bound : time < bound
        }
        func consider(_ index: Int) {
            let time = entries[index].time
            guard wanted(time) else { return }
            guard withBytes(at: index, admit) else { return }
            found.append((time, index))
            if found.count == limit || found.count >= 2 * limit { settle() }
        }
        let firstBlock = expired / Self.blockSize
        let blockOrder = newest ? Array(blocks.indices.reversed()) : Array(blocks.indices)
        for block in blockOrder {
            let span = blocks[block]
            guard span.newest >= range.lowerBound, span.oldest < range.upperBound else { continue }
            if let bound, newest ? span.newest <= bound : span.oldest >= bound { continue }
            let start = (firstBlock + block) * Self.blockSize - expired
            let indices = max(0, start)..<min(entries.count, start + Self.blockSize)
            if newest {
                for index in indices.reversed() { consider(index) }
            } else {
                for index in indices { consider(index) }
            }
        }
        settle()
        let ascending = found.map(\.index).sorted()
        let identities = Dictionary(uniqueKeysWithValues: zip(ascending, identities(of: ascending)))
        for (_, index) in found.sorted(by: { ($0.time, $0.index) < ($1.time, $1.index) }) {
            withBytes(at: index) { body($0, identities[index]!) }
        }
    }

    private func withBytes<T>(at index: Int, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        let entry = entries[index]
        return chunks[entry.chunk - firstChunk].withUnsafeReadableBytes { bytes in
            body(UnsafeRawBufferPointer(rebasing: bytes[Int(entry.offset)..<Int(entry.offset + entry.length)]))
        }
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
        let all = currentRuns()
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
                sender: current.sender, sequence: current.sequence, ordinal: current.first &+ UInt32(truncatingIfNeeded: index - runStart)))
        }
        return out
    }
}
