import NIOCore
import Testing

@testable import SluiceController

/// What a link keeps of what its server acknowledged, for the stand-ins.
struct AckedHistoryTests {
    let second: Int64 = 1_000_000_000

    /// A batch of `bytes` bytes of entries in a buffer of `capacity`.
    func batch(_ bytes: Int, capacity: Int? = nil, tag: UInt8 = 0) -> LinkBatch {
        var buffer = ByteBufferAllocator().buffer(capacity: capacity ?? bytes)
        buffer.writeRepeatingByte(tag, count: bytes)
        return LinkBatch(batch: buffer, parts: [], origins: [], envelopes: 1)
    }

    @Test func keepsWhatIsInsideTheWindowOldestFirstMarkedAsHistory() {
        var history = AckedHistory(window: 5 * second, maxBytes: 1 << 20)
        history.add(batch(100, tag: 1), at: 10 * second)
        history.add(batch(100, tag: 2), at: 12 * second)
        history.add(batch(100, tag: 3), at: 16 * second)  // the first is now 6 s old
        #expect(history.count == 2)
        let taken = history.takeAll(now: 17 * second)
        #expect(taken.batches.map { $0.batch.getInteger(at: 0, as: UInt8.self) } == [2, 3])
        let allHistory = taken.batches.allSatisfy { $0.history }
        #expect(allHistory)
        // Everything acknowledged since five seconds ago is among them.
        #expect(taken.since == 12 * second)
        #expect(history.count == 0 && history.bytes == 0)
        // Taking starts over: a later stop hands over nothing twice.
        let again = history.takeAll(now: 18 * second)
        #expect(again.batches.isEmpty)
    }

    /// Past the bytes, the oldest go, and what is handed over is said to
    /// start after the newest that went.
    @Test func pastTheBytesTheOldestGo() {
        // 256 bytes each, a size buffers come in (they round up to powers of two).
        var history = AckedHistory(window: 60 * second, maxBytes: 600)
        history.add(batch(256, tag: 1), at: 1 * second)
        history.add(batch(256, tag: 2), at: 2 * second)
        history.add(batch(256, tag: 3), at: 3 * second)
        #expect(history.count == 2 && history.bytes == 512)
        let taken = history.takeAll(now: 4 * second)
        #expect(taken.batches.map { $0.batch.getInteger(at: 0, as: UInt8.self) } == [2, 3])
        #expect(taken.since == 1 * second + 1)
    }

    /// A few envelopes in a builder's 64 KiB buffer are copied to a buffer
    /// their size; a full buffer is kept as it is.
    @Test func aSmallBatchDoesNotHoldABigBuffer() {
        var history = AckedHistory(window: 60 * second, maxBytes: 1 << 20)
        history.add(batch(100, capacity: 64 * 1024), at: 1 * second)
        #expect(history.bytes < 1024)
        history.add(batch(60_000, capacity: 64 * 1024), at: 2 * second)
        #expect(history.bytes >= 64 * 1024)
    }

    @Test func aWindowOfNothingKeepsNothing() {
        var history = AckedHistory(window: 0, maxBytes: 1 << 20)
        history.add(batch(100), at: 1 * second)
        #expect(history.count == 0)
        let taken = history.takeAll(now: 2 * second)
        #expect(taken.batches.isEmpty && taken.since == 2 * second)
    }
}
