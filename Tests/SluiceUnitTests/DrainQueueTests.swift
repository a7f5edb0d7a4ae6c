import NIOCore
import Testing

@testable import SluiceDrain

/// `DrainQueue`: bounded, oldest dropped first, and a batch being sent is
/// counted as dropped only if its send fails.
@Suite struct DrainQueueTests {
    static func envelopes(_ range: Range<Int>) -> [ByteBuffer] {
        range.map { ByteBuffer(string: "e\($0)") }
    }

    static func strings(_ buffers: [ByteBuffer]) -> [String] {
        buffers.map { String(buffer: $0) }
    }

    @Test func dropsTheOldestPastCapacity() {
        var queue = DrainQueue(capacity: 3)
        #expect(queue.append(contentsOf: Self.envelopes(0..<5), now: 100) == 2)
        #expect(queue.count == 3)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e2", "e3", "e4"])
        let report = queue.takeUnreported()
        #expect(report.count == 2)
        #expect(report.sinceNanos == 100)
        #expect(queue.takeUnreported().count == 0)
    }

    @Test func aDeliveredBatchLeavesAndTheRestFollowsInOrder() {
        var queue = DrainQueue(capacity: 10)
        queue.append(contentsOf: Self.envelopes(0..<5), now: 0)
        #expect(Self.strings(queue.beginSend(maxCount: 2, maxBytes: 1000)) == ["e0", "e1"])
        queue.append(contentsOf: Self.envelopes(5..<6), now: 0)
        #expect(queue.finishSend(.delivered, now: 0) == 0)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e2", "e3", "e4", "e5"])
        #expect(queue.finishSend(.delivered, now: 0) == 0)
        #expect(queue.isEmpty)
        #expect(queue.unreported == 0)
    }

    @Test func aRetriedBatchIsSentAgain() {
        var queue = DrainQueue(capacity: 10)
        queue.append(contentsOf: Self.envelopes(0..<3), now: 0)
        _ = queue.beginSend(maxCount: 2, maxBytes: 1000)
        #expect(queue.finishSend(.retry, now: 0) == 0)
        #expect(Self.strings(queue.beginSend(maxCount: 2, maxBytes: 1000)) == ["e0", "e1"])
    }

    @Test func aRejectedBatchIsDroppedAndCounted() {
        var queue = DrainQueue(capacity: 10)
        queue.append(contentsOf: Self.envelopes(0..<3), now: 0)
        _ = queue.beginSend(maxCount: 2, maxBytes: 1000)
        #expect(queue.finishSend(.rejected, now: 7) == 2)
        #expect(queue.takeUnreported().count == 2)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e2"])
    }

    /// Overflow while a batch is out pushes it out of the queue; delivered,
    /// it was not lost; retried, it was.
    @Test(arguments: [DrainQueue.Outcome.delivered, .retry])
    func overflowDuringASend(outcome: DrainQueue.Outcome) {
        var queue = DrainQueue(capacity: 4)
        queue.append(contentsOf: Self.envelopes(0..<4), now: 0)
        #expect(Self.strings(queue.beginSend(maxCount: 2, maxBytes: 1000)) == ["e0", "e1"])
        // Three more: e0 and e1 (out) and e2 (waiting) leave.
        #expect(queue.append(contentsOf: Self.envelopes(4..<7), now: 0) == 1)
        let dropped = queue.finishSend(outcome, now: 0)
        #expect(dropped == (outcome == .delivered ? 0 : 2))
        #expect(queue.takeUnreported().count == 1 + dropped)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e3", "e4", "e5", "e6"])
    }

    @Test func batchesStopAtTheByteLimitButTakeAtLeastOne() {
        var queue = DrainQueue(capacity: 10)
        queue.append(contentsOf: [ByteBuffer(string: String(repeating: "x", count: 50))] + Self.envelopes(0..<3), now: 0)
        #expect(queue.beginSend(maxCount: 10, maxBytes: 10).count == 1)
        queue.finishSend(.delivered, now: 0)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 4)) == ["e0", "e1"])
    }

    /// A failed batch is sent again as the same batch, even if more came
    /// meanwhile; a subset if overflow took its oldest.
    @Test func aRetryIsTheSameBatch() {
        var queue = DrainQueue(capacity: 5)
        queue.append(contentsOf: Self.envelopes(0..<3), now: 0)
        _ = queue.beginSend(maxCount: 10, maxBytes: 1000)
        #expect(queue.finishSend(.retry, now: 0) == 0)
        queue.append(contentsOf: Self.envelopes(3..<5), now: 0)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e0", "e1", "e2"])
        queue.finishSend(.retry, now: 0)
        queue.append(contentsOf: Self.envelopes(5..<6), now: 0)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e1", "e2"])
        queue.finishSend(.delivered, now: 0)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e3", "e4", "e5"])
    }

    @Test func theByteCapacityDropsTheOldestToo() {
        var queue = DrainQueue(capacity: 100, capacityBytes: 6)
        #expect(queue.append(contentsOf: Self.envelopes(0..<5), now: 0) == 2)
        #expect(queue.queuedBytes == 6)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e2", "e3", "e4"])
    }
}
