import Foundation
import SluiceProto
import SluiceDrain
import SluiceWire
import SwiftProtobuf
import Testing

/// `DrainLineWriter` writes from envelope bytes the very line `DrainLine`
/// builds from decoded fields (whose format is checked field by field in
/// DrainLineTests).
@Suite struct DrainLineWriterTests {
    /// The reference: decode, then `DrainLine`.
    static func reference(_ envelope: Loggregator_V2_Envelope, hostname: String?) -> [UInt8]? {
        guard case .log(let log)? = envelope.message else { return nil }
        let line = DrainLine(
            app: envelope.sourceID, hostname: hostname, sourceType: envelope.tags["source_type"] ?? "",
            instance: envelope.instanceID, isError: log.type == .err, timestamp: envelope.timestamp,
            tags: envelope.tags.filter { $0.key != "source_type" }.map { (key: $0.key, value: $0.value) })
        var payload = Array(log.payload)[...]
        while let last = payload.last, last == 0x0A || last == 0x0D { payload = payload.dropLast() }
        return line.bytes(message: payload)
    }

    static func written(_ envelope: Loggregator_V2_Envelope, hostname: String?) throws -> [UInt8]? {
        let bytes: [UInt8] = try envelope.serializedBytes()
        var writer = DrainLineWriter(hostname: hostname)
        var out: [UInt8] = Array("kept ".utf8)
        let wrote = try bytes.withUnsafeBytes { (raw) throws(WireError) in try writer.append(envelope: raw, to: &out) }
        #expect(Array(out.prefix(5)) == Array("kept ".utf8), "appends, keeping what was there")
        if !wrote { #expect(out.count == 5) }
        return wrote ? Array(out.dropFirst(5)) : nil
    }

    static var cases: [Loggregator_V2_Envelope] {
        var cases: [Loggregator_V2_Envelope] = [
            Fixture.log(),
            Fixture.log(source: "app", payload: Array("with\nlines\r\n".utf8), instance: "", tags: [:]),
            Fixture.log(payload: [0x61, 0x00, 0x62, 0x0A], tags: ["source_type": "", "b": "2", "a": "x\"y]z\\"]),
            Fixture.log(source: "ünï cødé", payload: Array("é".utf8), instance: "3", tags: ["source_type": "RTR"]),
            Fixture.log(source: String(repeating: "s", count: 300), tags: ["k=e y]": "v", "": "empty key"]),
            Fixture.log(tags: ["source_type": String(repeating: "T", count: 200)]),
            Fixture.log(timestamp: 999, payload: []),
            Fixture.log(timestamp: -1_500_000_000),
            Fixture.counter(), Fixture.gauge(), Fixture.timer(), Fixture.event(),
        ]
        var err = Fixture.log(instance: "7")
        err.log.type = .err
        cases.append(err)
        return cases
    }

    @Test(arguments: cases)
    func matchesTheDecodedLine(envelope: Loggregator_V2_Envelope) throws {
        #expect(try Self.written(envelope, hostname: nil) == Self.reference(envelope, hostname: nil))
        #expect(try Self.written(envelope, hostname: "web 1") == Self.reference(envelope, hostname: "web 1"))
    }

    @Test func matchesOverManyTimestamps() throws {
        var generator = SeededGenerator(seed: 5)
        var writer = DrainLineWriter()
        var out: [UInt8] = []
        for _ in 0..<2000 {
            // Runs of lines in one second (the cached part), and jumps.
            let envelope = Fixture.log(timestamp: Int64.random(in: 1_500_000_000_000_000_000...1_500_000_010_000_000_000, using: &generator))
            let bytes: [UInt8] = try envelope.serializedBytes()
            out.removeAll(keepingCapacity: true)
            _ = try bytes.withUnsafeBytes { (raw) throws(WireError) in try writer.append(envelope: raw, to: &out) }
            #expect(out == Self.reference(envelope, hostname: nil))
        }
    }
}
