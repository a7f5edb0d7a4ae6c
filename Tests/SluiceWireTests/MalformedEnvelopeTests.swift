import Foundation
import SluiceProto
import SwiftProtobuf
import Testing

@testable import SluiceWire

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
