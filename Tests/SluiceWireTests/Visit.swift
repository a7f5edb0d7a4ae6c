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
