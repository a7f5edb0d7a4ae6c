import Foundation
import SluiceDrain
import SluiceProto
import SwiftProtobuf
import Testing

@testable import SluiceWire

/// Inputs `bin/fuzz` found that broke a parser, each kept here as a test
/// (and in the target's corpus, `Tests/Fuzz/corpus/TARGET/regression-*`).
@Suite struct FuzzRegressionTests {
    /// envelope target: a `log` field (4) with the fixed64 wire type is an
    /// unknown field to protobuf's decoders, not a Log. The reader took it
    /// for one, so such an envelope would have gone to drains.
    @Test func aMessageFieldWithTheWrongWireTypeIsNotTheMessage() throws {
        let input: [UInt8] = Array("\u{12}\u{12}\u{03}apSequenceY\u{12}\u{03}papY!\u{07}\u{07}\0\0\0\0\0\0".utf8)
        let decoded = try Loggregator_V2_Envelope(serializedBytes: input)
        #expect(decoded.message == nil)
        let fields = try input.withUnsafeBytes { bytes throws(WireError) in try EnvelopeFields.scan(bytes) }
        #expect(!fields.isLog)
        #expect(Array(input[fields.sourceID]) == Array(decoded.sourceID.utf8))
    }

    /// The same for the drain's line writer: a Log followed by a `counter`
    /// field (5) as a varint is still a Log, and gets its line.
    @Test func aLogFollowedByAMisTypedCounterIsStillALog() throws {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = "app"
        envelope.log = .with { $0.payload = Data("still a log".utf8) }
        let input: [UInt8] = try envelope.serializedBytes() + [0x28, 0x01]
        let decoded = try Loggregator_V2_Envelope(serializedBytes: input)
        guard case .log? = decoded.message else {
            Issue.record("SwiftProtobuf no longer reads it as a log")
            return
        }
        let fields = try input.withUnsafeBytes { bytes throws(WireError) in try EnvelopeFields.scan(bytes) }
        #expect(fields.isLog)
        var writer = DrainLineWriter()
        var line: [UInt8] = []
        let wrote = try input.withUnsafeBytes { bytes throws(WireError) in try writer.append(envelope: bytes, to: &line) }
        #expect(wrote)
        #expect(String(decoding: line, as: UTF8.self).hasSuffix(" still a log\n"))
    }
}
