import Foundation
import SluiceProto
import SwiftProtobuf
import Testing

@testable import SluiceWire

/// One call of `EnvelopeBatchScanner.forEach`'s body.
struct Visit: Equatable {
    var range: Range<Int>
    var fields: EnvelopeFields
}

/// `bytes` as a raw buffer, for the scanner's typed-throws API.
func withBuffer<R>(
    _ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(WireError) -> R
) throws(WireError) -> R {
    let result: Result<R, WireError> = bytes.withUnsafeBytes { buffer in
        do throws(WireError) {
            return .success(try body(buffer))
        } catch {
            return .failure(error)
        }
    }
    return try result.get()
}

func scan(_ bytes: [UInt8]) throws(WireError) -> EnvelopeFields {
    try withBuffer(bytes) { (buffer) throws(WireError) in try EnvelopeFields.scan(buffer) }
}

func visits(_ bytes: [UInt8]) throws(WireError) -> [Visit] {
    try withBuffer(bytes) { (buffer) throws(WireError) -> [Visit] in
        var out: [Visit] = []
        try EnvelopeBatchScanner.forEach(in: buffer) { range, fields in
            out.append(Visit(range: range, fields: fields))
        }
        return out
    }
}

func validate(_ bytes: [UInt8]) throws(WireError) -> Int {
    try withBuffer(bytes) { (buffer) throws(WireError) in try EnvelopeBatchScanner.validate(buffer) }
}

/// The bytes `fields.sourceID` points at in `envelope`, or nil if the range is outside it.
func sourceBytes(_ envelope: some Collection<UInt8>, _ fields: EnvelopeFields) -> [UInt8]? {
    let bytes = Array(envelope)
    guard fields.sourceID.lowerBound >= 0, fields.sourceID.upperBound <= bytes.count else { return nil }
    return Array(bytes[fields.sourceID])
}

/// A record of field 1 (an envelope in a batch) around `envelope`.
func batchRecord(_ envelope: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x0A]
    ProtoVarint.encode(UInt64(envelope.count)) { out.append($0) }
    return out + envelope
}

@Suite struct EnvelopeFieldsScanTests {
    @Test func logEnvelopeWithTags() throws {
        let envelope = Fixture.log(source: "6d6b4f3c-app", timestamp: 1_541_999_631_950_000_000)
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array("6d6b4f3c-app".utf8))
        #expect(fields.timestamp == 1_541_999_631_950_000_000)
        #expect(fields.isLog)
    }

    @Test func envelopeWithoutTags() throws {
        let envelope = Fixture.log(source: "plain", timestamp: 99, instance: "", tags: [:])
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array("plain".utf8))
        #expect(fields.timestamp == 99)
    }

    @Test(arguments: [Fixture.counter(), Fixture.gauge(), Fixture.timer(), Fixture.event(), EnvelopeCodecTests.tagged()])
    func everyKind(_ envelope: Loggregator_V2_Envelope) throws {
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array(envelope.sourceID.utf8))
        #expect(fields.timestamp == envelope.timestamp)
        #expect(fields.isLog == (envelope.message.map { if case .log = $0 { true } else { false } } ?? false))
    }

    @Test func payloadThatLooksLikeFieldsIsSkipped() throws {
        // A payload holding what would be "source_id = evil, timestamp = 5" at the top level.
        let fake: [UInt8] = [0x12, 0x04, 0x65, 0x76, 0x69, 0x6C, 0x08, 0x05]
        let withSource = Fixture.log(source: "real", timestamp: 77, payload: fake + fake)
        let bytes: [UInt8] = try withSource.serializedBytes()
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array("real".utf8))
        #expect(fields.timestamp == 77)

        // Without a real source_id the fake one must not be found either.
        let withoutSource = Fixture.log(source: "", timestamp: 0, payload: fake, tags: ["k": "\u{12}\u{01}x"])
        let bare: [UInt8] = try withoutSource.serializedBytes()
        let bareFields = try scan(bare)
        #expect(bareFields.sourceID.isEmpty)
        #expect(bareFields.timestamp == 0)
    }

    @Test func missingSourceIDGivesEmptyRange() throws {
        var envelope = Fixture.counter(source: "", timestamp: 12)
        envelope.instanceID = "1"
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(fields.sourceID.isEmpty)
        #expect(fields.timestamp == 12)

        let empty = try scan([])
        #expect(empty.sourceID.isEmpty)
        #expect(empty.timestamp == 0)

        // Present but empty.
        let explicit = try scan([0x12, 0x00, 0x08, 0x03])
        #expect(explicit.sourceID.isEmpty)
        #expect(explicit.timestamp == 3)
    }

    @Test(arguments: [Int64(-1), -1_541_999_631_950_000_000, Int64.min, Int64.max])
    func extremeTimestamps(_ timestamp: Int64) throws {
        let envelope = Fixture.log(source: "neg", timestamp: timestamp)
        let bytes: [UInt8] = try envelope.serializedBytes()
        let fields = try scan(bytes)
        #expect(fields.timestamp == timestamp)
        #expect(sourceBytes(bytes, fields) == Array("neg".utf8))
    }

    /// Hand-made envelopes that are valid protobuf; SwiftProtobuf is the oracle.
    static let handMade: [[UInt8]] = [
        // Unknown fields of every wire type before the two fields.
        [0x58, 0x01, 0x61] + [1, 2, 3, 4, 5, 6, 7, 8] + [0x6D, 1, 2, 3, 4] + [0x72, 0x01, 0x00]
            + [0x12, 0x02, 0x61, 0x62, 0x08, 0x05],
        // Timestamp and source_id twice: the last one wins.
        [0x12, 0x01, 0x61, 0x08, 0x01, 0x12, 0x02, 0x62, 0x62, 0x08, 0x02],
        // Tags and log before source_id.
        [0x4A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76, 0x22, 0x02, 0x10, 0x01, 0x12, 0x01, 0x7A],
        // Non-minimal varints for the timestamp and the length.
        [0x08, 0x81, 0x80, 0x00, 0x12, 0x81, 0x00, 0x63],
        // A ten-byte varint: -1.
        [0x08] + Array(repeating: 0xFF, count: 9) + [0x01],
        // Only fields Sluice does not read.
        [0x42, 0x01, 0x30, 0x52, 0x00],
    ]

    @Test(arguments: handMade)
    func agreesWithSwiftProtobuf(_ bytes: [UInt8]) throws {
        let decoded = try Loggregator_V2_Envelope(serializedBytes: bytes)
        let fields = try scan(bytes)
        #expect(sourceBytes(bytes, fields) == Array(decoded.sourceID.utf8))
        #expect(fields.timestamp == decoded.timestamp)
    }
}

@Suite struct EnvelopeBatchScannerTests {
    static let envelopes: [Loggregator_V2_Envelope] = [
        Fixture.log(source: "first", timestamp: 3),
        Fixture.counter(source: "second", timestamp: -4),
        Fixture.gauge(source: "", timestamp: 5),
        Fixture.timer(source: "fourth"),
        Fixture.event(source: "fifth"),
        Fixture.log(source: "sixth", payload: [0x0A, 0x02, 0x12, 0x00, 0x00, 0xFF], type: .err, tags: [:]),
        Loggregator_V2_Envelope(),
    ]

    @Test func visitsEveryEnvelopeInOrder() throws {
        let bytes = try Fixture.batch(Self.envelopes)
        let seen = try visits(bytes)
        try #require(seen.count == Self.envelopes.count)
        var previousEnd = 0
        for (envelope, visit) in zip(Self.envelopes, seen) {
            #expect(visit.range.lowerBound >= previousEnd)
            #expect(visit.range.upperBound <= bytes.count)
            previousEnd = visit.range.upperBound
            let slice = Array(bytes[visit.range])
            #expect(slice == (try envelope.serializedBytes() as [UInt8]))
            #expect(try Loggregator_V2_Envelope(serializedBytes: slice) == envelope)
            #expect(sourceBytes(slice, visit.fields) == Array(envelope.sourceID.utf8))
            #expect(visit.fields.timestamp == envelope.timestamp)
        }
        #expect(try validate(bytes) == Self.envelopes.count)
    }

    @Test(arguments: [0, 1, 3, 100])
    func validateCounts(_ count: Int) throws {
        let envelopes = (0..<count).map { Fixture.log(source: "app-\($0 % 7)", timestamp: Int64($0)) }
        let bytes = try Fixture.batch(envelopes)
        #expect(try validate(bytes) == count)
        let seen = try visits(bytes)
        #expect(seen.map(\.fields.timestamp) == (0..<count).map { Int64($0) })
    }

    @Test func skipsUnknownBatchFields() throws {
        let envelopes = Array(Self.envelopes.prefix(3))
        let records = try envelopes.map { batchRecord(try $0.serializedBytes()) }
        let unknown: [[UInt8]] = [
            [0x10, 0x96, 0x01],  // field 2, varint
            [0x1A, 0x03, 0x0A, 0x01, 0x61],  // field 3, length-delimited, looks like an envelope
            [0x21, 1, 2, 3, 4, 5, 6, 7, 8],  // field 4, fixed64
            [0x2D, 1, 2, 3, 4],  // field 5, fixed32
        ]
        let bytes = unknown[0] + records[0] + unknown[1] + unknown[2] + records[1] + unknown[3] + records[2] + unknown[1]
        // SwiftProtobuf reads the same three envelopes.
        #expect(try Loggregator_V2_EnvelopeBatch(serializedBytes: bytes).batch == envelopes)

        let seen = try visits(bytes)
        try #require(seen.count == 3)
        for (envelope, visit) in zip(envelopes, seen) {
            #expect(Array(bytes[visit.range]) == (try envelope.serializedBytes() as [UInt8]))
            #expect(visit.fields.timestamp == envelope.timestamp)
        }
        #expect(try validate(bytes) == 3)
        #expect(try validate(unknown.flatMap { $0 }) == 0)
        #expect(try visits(unknown.flatMap { $0 }).isEmpty)
    }

    @Test func emptyEnvelopeIsVisited() throws {
        let seen = try visits([0x0A, 0x00, 0x0A, 0x00])
        #expect(seen.count == 2)
        #expect(seen.allSatisfy { $0.fields.sourceID.isEmpty && $0.fields.timestamp == 0 })
        #expect(seen.map(\.range) == [2..<2, 4..<4])
    }

    @Test func malformedEnvelopeRejectsTheWholeBatch() throws {
        let good: [UInt8] = try Fixture.log().serializedBytes()
        let bytes = batchRecord(good) + batchRecord(good) + batchRecord([0x10, 0x01])
        var calls = 0
        let error = #expect(throws: WireError.self) {
            try withBuffer(bytes) { (buffer) throws(WireError) in
                try EnvelopeBatchScanner.forEach(in: buffer) { _, _ in calls += 1 }
            }
        }
        #expect(error?.code == .malformedBatch)
        #expect(calls == 0)
    }

    @Test func expectedCountMustMatch() throws {
        let bytes = try Fixture.batch(Array(Self.envelopes.prefix(3)))
        var calls = 0
        try withBuffer(bytes) { (buffer) throws(WireError) in
            try EnvelopeBatchScanner.forEach(in: buffer, expectedCount: 3) { _, _ in calls += 1 }
        }
        #expect(calls == 3)
        for wrong in [0, 2, 4] {
            calls = 0
            let error = #expect(throws: WireError.self) {
                try withBuffer(bytes) { (buffer) throws(WireError) in
                    try EnvelopeBatchScanner.forEach(in: buffer, expectedCount: wrong) { _, _ in calls += 1 }
                }
            }
            #expect(error?.code == .malformedBatch)
            #expect(calls == 0, "expected count \(wrong)")
        }
    }

    @Test func batchFieldOneMustBeLengthDelimited() {
        for bytes: [UInt8] in [[0x08, 0x01], [0x09, 1, 2, 3, 4, 5, 6, 7, 8], [0x0D, 1, 2, 3, 4]] {
            let error = #expect(throws: WireError.self) { try validate(bytes) }
            #expect(error?.code == .malformedBatch)
            #expect(throws: WireError.self) { try visits(bytes) }
        }
    }
}

/// Byte sequences that are not valid at the top level of an envelope.
struct Malformed: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    /// Also invalid at the top level of a batch (not tied to envelope fields 1 and 2).
    var generic: Bool
    var testDescription: String { name }
}

@Suite struct MalformedEnvelopeTests {
    static let cases: [Malformed] = [
        Malformed(name: "11-byte varint", bytes: [0x08] + Array(repeating: 0x80, count: 10) + [0x01], generic: true),
        Malformed(name: "11-byte varint of 0xFF", bytes: [0x08] + Array(repeating: 0xFF, count: 10) + [0x00], generic: true),
        Malformed(name: "11-byte tag", bytes: Array(repeating: 0x80, count: 10) + [0x01], generic: true),
        Malformed(name: "varint over 64 bits", bytes: [0x08] + Array(repeating: 0xFF, count: 9) + [0x02], generic: true),
        Malformed(name: "varint cut off", bytes: [0x08, 0x80], generic: true),
        Malformed(name: "tag cut off", bytes: [0x12, 0x01, 0x61, 0x80], generic: true),
        Malformed(name: "length past the end", bytes: [0x12, 0x05, 0x61, 0x62], generic: true),
        Malformed(name: "length one past the end", bytes: [0x22, 0x03, 0x0A, 0x01], generic: true),
        Malformed(name: "length UInt64.max", bytes: [0x12] + Array(repeating: 0xFF, count: 9) + [0x01], generic: true),
        Malformed(name: "length Int.max", bytes: [0x22] + Array(repeating: 0xFF, count: 8) + [0x7F], generic: true),
        Malformed(name: "length missing", bytes: [0x12], generic: true),
        Malformed(name: "wire type 3", bytes: [0x1B, 0x1C], generic: true),
        Malformed(name: "wire type 4", bytes: [0x1C], generic: true),
        Malformed(name: "wire type 6", bytes: [0x1E, 0x00], generic: true),
        Malformed(name: "wire type 7", bytes: [0x1F, 0x00], generic: true),
        Malformed(name: "field 0, varint", bytes: [0x00, 0x01], generic: true),
        Malformed(name: "field 0, length-delimited", bytes: [0x02, 0x00], generic: true),
        Malformed(name: "truncated fixed64", bytes: [0x19, 1, 2, 3], generic: true),
        Malformed(name: "truncated fixed32", bytes: [0x1D, 1], generic: true),
        Malformed(name: "source_id as varint", bytes: [0x10, 0x01], generic: false),
        Malformed(name: "source_id as fixed32", bytes: [0x15, 0x61, 0x62, 0x63, 0x64], generic: false),
        Malformed(name: "source_id as fixed64", bytes: [0x11, 1, 2, 3, 4, 5, 6, 7, 8], generic: false),
        Malformed(name: "timestamp as length-delimited", bytes: [0x0A, 0x00], generic: false),
        Malformed(name: "timestamp as fixed64", bytes: [0x09, 1, 2, 3, 4, 5, 6, 7, 8], generic: false),
    ]

    @Test(arguments: cases)
    func scanThrows(_ malformed: Malformed) {
        let error = #expect(throws: WireError.self) { try scan(malformed.bytes) }
        #expect(error?.code == .malformedBatch)
        // After a good prefix too.
        let prefixed: [UInt8] = [0x12, 0x01, 0x61, 0x08, 0x01] + malformed.bytes
        #expect(throws: WireError.self) { try scan(prefixed) }
    }

    @Test(arguments: cases)
    func batchHoldingItThrows(_ malformed: Malformed) throws {
        let good: [UInt8] = try Fixture.log().serializedBytes()
        let bytes = batchRecord(good) + batchRecord(malformed.bytes) + batchRecord(good)
        let error = #expect(throws: WireError.self) { try validate(bytes) }
        #expect(error?.code == .malformedBatch)
        #expect(throws: WireError.self) { try visits(bytes) }
    }

    @Test(arguments: cases.filter(\.generic))
    func atBatchTopLevelThrows(_ malformed: Malformed) throws {
        let good: [UInt8] = try Fixture.log().serializedBytes()
        let bytes = batchRecord(good) + malformed.bytes
        let error = #expect(throws: WireError.self) { try validate(bytes) }
        #expect(error?.code == .malformedBatch)
        #expect(throws: WireError.self) { try visits(bytes) }
    }
}

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
