import NIOCore
import SluiceWire
import SluiceSyslog
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

    /// A leaving server takes out what waits; the batch being sent stays
    /// and settles as ever; a batch waiting to be retried goes too.
    @Test func takingWhatWaitsLeavesTheBatchBeingSent() {
        var queue = DrainQueue(capacity: 10)
        queue.append(contentsOf: Self.envelopes(0..<5), now: 1)
        #expect(Self.strings(queue.beginSend(maxCount: 2, maxBytes: 1000)) == ["e0", "e1"])
        #expect(Self.strings(queue.takeWaiting()) == ["e2", "e3", "e4"])
        #expect(queue.count == 2 && queue.queuedBytes == 4)
        #expect(queue.finishSend(.delivered, now: 2) == 0)
        #expect(queue.isEmpty && queue.queuedBytes == 0)

        queue.append(contentsOf: Self.envelopes(5..<8), now: 3)
        _ = queue.beginSend(maxCount: 2, maxBytes: 1000)
        queue.finishSend(.retry, now: 4)
        #expect(Self.strings(queue.takeWaiting()) == ["e5", "e6", "e7"])
        #expect(queue.isEmpty && queue.takeWaiting().isEmpty)
        // Nothing taken out is counted as dropped.
        #expect(queue.takeUnreported().count == 0)
        queue.append(contentsOf: Self.envelopes(8..<9), now: 5)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e8"])

        // The batch being sent taken too: it settles with nothing to
        // remove, whatever its outcome, and the queue goes on.
        queue.append(contentsOf: Self.envelopes(9..<11), now: 6)
        #expect(Self.strings(queue.takeWaiting(includingInFlight: true)) == ["e8", "e9", "e10"])
        #expect(queue.isSending && queue.isEmpty && queue.queuedBytes == 0)
        #expect(queue.finishSend(.retry, now: 7) == 0)
        queue.append(contentsOf: Self.envelopes(11..<13), now: 8)
        #expect(Self.strings(queue.beginSend(maxCount: 10, maxBytes: 1000)) == ["e11", "e12"])
        #expect(queue.finishSend(.delivered, now: 9) == 0)
        #expect(queue.isEmpty && queue.queuedBytes == 0 && queue.takeUnreported().count == 0)
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

    /// A batch is the lines octet-counted back to back (RFC 6587), as a TCP
    /// write and a logplex-1 body carry them; envelopes that are not logs
    /// give no line.
    @Test func batchesAreOctetCounted() throws {
        let envelopes = try [Make.log(app: "a", "one"), Make.counter(app: "a"), Make.log(app: "a", "two")].map {
            ByteBuffer(bytes: try Make.bytes($0))
        }
        var writer = DrainLineWriter()
        var scratch: [UInt8] = []
        let batch = DrainBatch.format(envelopes, writer: &writer, scratch: &scratch)
        #expect(batch.count == 2)
        let bytes = Array(batch.framed.readableBytesView)
        let frames = try bytes.withUnsafeBytes { try OctetCounting.frames(in: $0, maxMessageBytes: 1 << 16) }
        #expect(frames.count == 2)
        for (frame, line) in zip(frames, batch.lines) {
            #expect(Array(bytes[frame]) == Array(batch.framed.getSlice(at: line.lowerBound, length: line.count)!.readableBytesView))
        }
        #expect(String(decoding: bytes[frames[0]], as: UTF8.self).hasSuffix(" - - one\n"))
        #expect(String(decoding: bytes[frames[1]], as: UTF8.self).hasSuffix(" - - two\n"))
    }
}
