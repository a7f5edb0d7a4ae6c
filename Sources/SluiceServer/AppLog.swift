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
    /// The app's log rate limit at this server, if it has one.
    var rateLimit: AppRateLimit?

    init(appID: ByteBuffer) {
        self.appID = appID
    }

    var count: Int { entries.count }

    /// Appends one envelope's bytes, which came in frame `sequence` of
    /// `sender` (0: a sender without identity). Returns the change in
    /// `storedBytes`.
    func append(_ envelope: UnsafeRawBufferPointer, sender: UInt64 = 0, sequence: UInt64 = 0) -> Int {
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
        entries.append(Entry(chunk: firstChunk + last, offset: UInt32(offset), length: UInt32(length)))
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
        let start = max(0, entries.count - limit)
        // Every run, oldest first, what was let go of the oldest left out.
        var all = Array(runs)
        if let open { all.append(open) }
        if !all.isEmpty {
            all[0].first += consumed
            all[0].count -= consumed
        }
        // The run holding entry `start`, and its offset in it.
        var run = 0
        var skip = start
        while run < all.count, skip >= Int(all[run].count) {
            skip -= Int(all[run].count)
            run += 1
        }
        var offset = UInt32(skip)
        for index in start..<entries.count {
            let entry = entries[index]
            let current = all[run]
            let identity = EnvelopeIdentity(sender: current.sender, sequence: current.sequence, ordinal: current.first + offset)
            chunks[entry.chunk - firstChunk].withUnsafeReadableBytes { bytes in
                body(UnsafeRawBufferPointer(rebasing: bytes[Int(entry.offset)..<Int(entry.offset + entry.length)]), identity)
            }
            offset += 1
            if offset == current.count {
                run += 1
                offset = 0
            }
        }
    }
}
