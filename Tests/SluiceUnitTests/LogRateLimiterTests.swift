import NIOCore
import SluiceShipping
import SluiceTransport
import SluiceWire
import Testing

@Suite struct LogRateLimiterTests {
    static let second: Int64 = 1_000_000_000

    @Test func theBurstPassesThenTheInstanceIsCutForASecondAndToldOnce() {
        var limiter = LogRateLimiter(bytesPerSecond: 1000)
        var verdicts: [LogRateLimiter.Verdict] = []
        for step in 0..<13 {
            verdicts.append(limiter.admit(app: "a", instance: "0", bytes: 100, now: 10 * Self.second + Int64(step)))
        }
        #expect(verdicts.prefix(10).allSatisfy { $0 == .pass })
        #expect(verdicts[10] == .dropAndTell)
        #expect(verdicts[11...].allSatisfy { $0 == .drop })
        // Still cut just before the second is over, even though the bucket
        // has refilled by then; after it, lines pass again.
        #expect(limiter.admit(app: "a", instance: "0", bytes: 100, now: 11 * Self.second) == .drop)
        #expect(limiter.admit(app: "a", instance: "0", bytes: 100, now: 11 * Self.second + 20) == .pass)
        #expect(limiter.noticeText == "app instance exceeded log rate limit (1000 bytes/sec)")
    }

    @Test func instancesAndAppsHaveTheirOwnBuckets() {
        var limiter = LogRateLimiter(bytesPerSecond: 100)
        #expect(limiter.admit(app: "a", instance: "0", bytes: 100, now: 0) == .pass)
        #expect(limiter.admit(app: "a", instance: "0", bytes: 1, now: 0) == .dropAndTell)
        #expect(limiter.admit(app: "a", instance: "1", bytes: 100, now: 0) == .pass)
        #expect(limiter.admit(app: "b", instance: "0", bytes: 100, now: 0) == .pass)
    }

    @Test func theBucketRefillsAtTheRate() {
        var limiter = LogRateLimiter(bytesPerSecond: 1000)
        #expect(limiter.admit(app: "a", instance: "0", bytes: 1000, now: 0) == .pass)
        // Half a second later, half the limit is back.
        #expect(limiter.admit(app: "a", instance: "0", bytes: 500, now: Self.second / 2) == .pass)
        #expect(limiter.admit(app: "a", instance: "0", bytes: 1, now: Self.second / 2) == .dropAndTell)
    }

    @Test func aLineLargerThanTheLimitNeverPassesAndZeroLetsNothingThrough() {
        var limiter = LogRateLimiter(bytesPerSecond: 100)
        #expect(limiter.admit(app: "a", instance: "0", bytes: 101, now: 0) == .dropAndTell)
        #expect(limiter.admit(app: "a", instance: "0", bytes: 101, now: 5 * Self.second) == .dropAndTell)
        var closed = LogRateLimiter(bytesPerSecond: 0)
        #expect(closed.admit(app: "a", instance: "0", bytes: 1, now: 0) == .dropAndTell)
        #expect(closed.admit(app: "a", instance: "0", bytes: 0, now: 2 * Self.second) == .dropAndTell)
    }

    @Test func idleBucketsAreForgotten() {
        var limiter = LogRateLimiter(bytesPerSecond: 100, maxIdleBuckets: 4)
        for index in 0..<4 { _ = limiter.admit(app: "a\(index)", instance: "0", bytes: 10, now: 0) }
        #expect(limiter.bucketCount == 4)
        _ = limiter.admit(app: "late", instance: "0", bytes: 10, now: 10 * Self.second)
        #expect(limiter.bucketCount == 1)
    }

    @Test func anEnvelopeSaysItsInstanceAndLogSize() throws {
        var builder = BatchFrameBuilder()
        Array("hello".utf8).withUnsafeBytes {
            builder.appendLog(LogEnvelopeFields(sourceID: "a", instanceID: "7"), timestamp: 1, payload: $0)
        }
        let finished = builder.finish(type: .envelopes, sequence: 1)
        var frame = try #require(finished)
        let read = frame.readFrameHeaderUnchecked()
        let header = try #require(read)
        let (batch, _) = try Frame(header: header, payload: frame).batchAndParts()
        var origins: [LogShipper.LineOrigin] = []
        try batch.withUnsafeReadableBytesTyped { bytes throws(WireError) in
            try EnvelopeBatchScanner.forEach(in: bytes) { range, _ in
                origins.append(LogShipper.LineOrigin(app: "a", envelope: UnsafeRawBufferPointer(rebasing: bytes[range])))
            }
        }
        #expect(origins.map(\.instance) == ["7"])
        #expect(origins.map(\.logBytes) == [5])
    }

    /// As protobuf reads it (found by bin/fuzz in EnvelopeFields): a
    /// `counter` field (5) with the varint wire type after the log is an
    /// unknown field, and the envelope is still a Log of 5 bytes.
    @Test func aMisTypedMessageFieldDoesNotUnmakeALog() {
        // source_id "a", log { payload "hello" }, then field 5 as a varint.
        let envelope: [UInt8] = [0x12, 0x01, 0x61, 0x22, 0x07, 0x0A, 0x05] + Array("hello".utf8) + [0x28, 0x01]
        let origin = envelope.withUnsafeBytes { LogShipper.LineOrigin(app: "a", envelope: $0) }
        #expect(origin.logBytes == 5)
        // With the right wire type, the counter replaces the log.
        let counter: [UInt8] = [0x12, 0x01, 0x61, 0x22, 0x07, 0x0A, 0x05] + Array("hello".utf8) + [0x2A, 0x00]
        #expect(counter.withUnsafeBytes { LogShipper.LineOrigin(app: "a", envelope: $0) }.logBytes == nil)
    }
}
