import Foundation
import SluiceProto
import SwiftProtobuf
import Testing

@testable import SluiceWire

@Suite struct GarbageTests {
    /// Runs the scanner over `bytes`; returns whether it accepted them. Any
    /// accepted result must be consistent and inside the buffer.
    @discardableResult
    static func checkSafe(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        do throws(WireError) {
            let seen = try visits(bytes)
            #expect(try validate(bytes) == seen.count, sourceLocation: sourceLocation)
            var previousEnd = 0
            for visit in seen {
                let inside = visit.range.lowerBound >= previousEnd && visit.range.upperBound <= bytes.count
                #expect(inside, "envelope range \(visit.range) in \(bytes.count) bytes", sourceLocation: sourceLocation)
                guard inside else { return true }
                previousEnd = visit.range.upperBound
                let source = visit.fields.sourceID
                #expect(
                    source.lowerBound >= 0 && source.upperBound <= visit.range.count,
                    "source_id range \(source) in an envelope of \(visit.range.count) bytes",
                    sourceLocation: sourceLocation)
            }
            // Where SwiftProtobuf also accepts the bytes, both read the same fields.
            if let decoded = try? Loggregator_V2_EnvelopeBatch(serializedBytes: bytes) {
                #expect(decoded.batch.count == seen.count, sourceLocation: sourceLocation)
                for (envelope, visit) in zip(decoded.batch, seen) {
                    #expect(envelope.timestamp == visit.fields.timestamp, sourceLocation: sourceLocation)
                    #expect(
                        sourceBytes(bytes[visit.range], visit.fields) == Array(envelope.sourceID.utf8),
                        sourceLocation: sourceLocation)
                }
            }
            return true
        } catch {
            #expect(error.code == .malformedBatch, sourceLocation: sourceLocation)
            return false
        }
    }

    @Test func everyTruncationOfABatch() throws {
        let envelopes = [
            Fixture.log(source: "one", timestamp: 10, tags: ["source_type": "APP/PROC/WEB", "x": "y"]),
            Fixture.counter(source: "two", timestamp: 20),
            Fixture.gauge(source: "three", timestamp: 30),
        ]
        let full = try Fixture.batch(envelopes)
        let complete = try visits(full)
        try #require(complete.count == 3)
        // A record ends where the next begins: the cuts that leave whole envelopes.
        let boundaries = Set([0] + complete.map(\.range.upperBound))
        #expect(boundaries.count == 4)

        for cut in 0..<full.count {
            let prefix = Array(full[..<cut])
            let protobufAccepts = (try? Loggregator_V2_EnvelopeBatch(serializedBytes: prefix)) != nil
            do throws(WireError) {
                let seen = try visits(prefix)
                #expect(boundaries.contains(cut), "a cut at \(cut) was accepted")
                let expected = complete.filter { $0.range.upperBound <= cut }
                #expect(seen == expected, "cut at \(cut)")
                #expect(seen.allSatisfy { $0.range.upperBound <= cut })
                #expect(try validate(prefix) == expected.count)
                #expect(protobufAccepts)
            } catch {
                #expect(!boundaries.contains(cut), "a cut at \(cut) between envelopes was rejected: \(error)")
                #expect(error.code == .malformedBatch)
                #expect(!protobufAccepts)
            }
            // The envelope itself, truncated: only the full length is whole.
            Self.checkSafe(prefix)
        }

        let single: [UInt8] = try envelopes[0].serializedBytes()
        for cut in 0..<single.count {
            let prefix = Array(single[..<cut])
            let protobufAccepts = (try? Loggregator_V2_Envelope(serializedBytes: prefix)) != nil
            let scanned = try? scan(prefix)
            // The scanner only checks the top level, so it accepts at least what SwiftProtobuf accepts.
            if protobufAccepts { #expect(scanned != nil, "cut at \(cut)") }
            if let scanned {
                #expect(scanned.sourceID.upperBound <= cut)
            }
        }
    }

    @Test func randomBuffers() {
        var rng = SeededGenerator(seed: 0x5EED_0001)
        var accepted = 0
        for _ in 0..<2000 {
            let count = Int.random(in: 0..<200, using: &rng)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if Self.checkSafe(bytes) { accepted += 1 }
        }
        // Sanity: random bytes are mostly rejected, but not all (the empty buffer is a valid batch).
        #expect(accepted >= 1)
        #expect(accepted < 2000)
    }

    @Test func randomBuffersOfLikelyBytes() {
        // Bytes drawn from tags and small lengths, so that scanning gets further.
        let alphabet: [UInt8] = [0x00, 0x01, 0x02, 0x03, 0x08, 0x0A, 0x10, 0x12, 0x1A, 0x22, 0x42, 0x80, 0xFF, 0x61]
        var rng = SeededGenerator(seed: 0x5EED_0002)
        var accepted = 0
        for _ in 0..<2000 {
            let count = Int.random(in: 0..<64, using: &rng)
            let bytes = (0..<count).map { _ in alphabet.randomElement(using: &rng)! }
            if Self.checkSafe(bytes) { accepted += 1 }
        }
        #expect(accepted > 1)
    }

    @Test func mutatedBatches() throws {
        let full = try Fixture.batch(EnvelopeBatchScannerTests.envelopes)
        var rng = SeededGenerator(seed: 0x5EED_0003)
        var accepted = 0
        for _ in 0..<2000 {
            var bytes = full
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                default: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...4, using: &rng)))
                }
                if bytes.isEmpty { break }
            }
            if Self.checkSafe(bytes) { accepted += 1 }
        }
        // Many single-byte changes land inside payloads and keep the batch well-formed.
        #expect(accepted > 100)
    }
}
