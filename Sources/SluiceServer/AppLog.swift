import DequeModule
import NIOCore

/// The recent envelopes of one app, oldest first, kept as the bytes they
/// arrived as. Bytes are copied into a few growing chunks rather than held as
/// slices of the frames they came in, so the memory an app holds is what its
/// own envelopes take, and appending allocates nothing per envelope.
final class AppLog {
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
    private var nextChunkSize = AppLog.firstChunkSize

    /// Bytes allocated for this app's chunks.
    private(set) var storedBytes = 0

    init(appID: ByteBuffer) {
        self.appID = appID
    }

    var count: Int { entries.count }

    /// Appends one envelope's bytes. Returns the change in `storedBytes`.
    func append(_ envelope: UnsafeRawBufferPointer) -> Int {
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
        return grown
    }

    /// Drops the oldest envelope. Returns the bytes freed (whole chunks).
    @discardableResult
    func removeOldest() -> Int {
        guard !entries.isEmpty else { return 0 }
        entries.removeFirst()
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

    /// Calls `body` with the newest `limit` envelopes' bytes, oldest first.
    func forEachRecent(limit: Int, _ body: (UnsafeRawBufferPointer) -> Void) {
        let start = max(0, entries.count - limit)
        for index in start..<entries.count {
            let entry = entries[index]
            chunks[entry.chunk - firstChunk].withUnsafeReadableBytes { bytes in
                body(UnsafeRawBufferPointer(rebasing: bytes[Int(entry.offset)..<Int(entry.offset + entry.length)]))
            }
        }
    }
}
