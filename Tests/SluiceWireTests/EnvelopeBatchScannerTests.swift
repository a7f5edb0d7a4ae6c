import Foundation
import SluiceProto
import SwiftProtobuf
import Testing

@testable import SluiceWire

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
