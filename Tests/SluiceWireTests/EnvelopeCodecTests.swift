import Foundation
import SluiceProto
import SwiftProtobuf
import Testing

/// The generated envelope types against the Loggregator v2 wire format
/// (REFERENCE §1): binary and JSON round trips, and field numbers checked
/// against hand-encoded bytes.
@Suite struct EnvelopeCodecTests {
    static let kinds: [(String, Loggregator_V2_Envelope)] = [
        ("log OUT", Fixture.log(type: .out)),
        ("log ERR", Fixture.log(payload: Array("oops\n".utf8), type: .err)),
        ("log binary", Fixture.log(payload: [0x00, 0xFF, 0xFE, 0xC3, 0x28, 0x00, 0x0A, 0x80])),
        ("counter", Fixture.counter()),
        ("gauge", Fixture.gauge()),
        ("timer", Fixture.timer()),
        ("event", Fixture.event()),
        ("tagged", Self.tagged()),
        ("empty", Loggregator_V2_Envelope()),
    ]

    static func tagged() -> Loggregator_V2_Envelope {
        var envelope = Fixture.log(instance: "17", tags: ["source_type": "RTR", "deployment": "cf", "ünï": "cødé"])
        envelope.deprecatedTags = [
            "text": Fixture.text("value"),
            "integer": Fixture.integer(-9_000_000_000),
            "decimal": Fixture.decimal(3.25),
        ]
        return envelope
    }

    @Test(arguments: kinds.indices)
    func binaryRoundTrip(_ index: Int) throws {
        let (name, envelope) = Self.kinds[index]
        let bytes: [UInt8] = try envelope.serializedBytes()
        let decoded = try Loggregator_V2_Envelope(serializedBytes: bytes)
        #expect(decoded == envelope, "\(name)")
        let data: Data = try envelope.serializedBytes()
        #expect(Array(data) == bytes, "\(name)")
    }

    @Test(arguments: kinds.indices)
    func jsonRoundTrip(_ index: Int) throws {
        let (name, envelope) = Self.kinds[index]
        let json = try envelope.jsonString()
        let decoded = try Loggregator_V2_Envelope(jsonString: json)
        #expect(decoded == envelope, "\(name): \(json)")
    }

    @Test func logPayloadKeepsEveryByte() throws {
        let payload: [UInt8] = [0x00, 0x61, 0x00, 0xFF, 0xC0, 0x80, 0xED, 0xA0, 0x80, 0x0D, 0x0A]
        for type in [Loggregator_V2_Log.TypeEnum.out, .err] {
            let envelope = Fixture.log(payload: payload, type: type)
            let binary = try Loggregator_V2_Envelope(serializedBytes: try envelope.serializedBytes() as [UInt8])
            #expect(Array(binary.log.payload) == payload)
            #expect(binary.log.type == type)
            let json = try Loggregator_V2_Envelope(jsonString: try envelope.jsonString())
            #expect(Array(json.log.payload) == payload)
            #expect(json.log.type == type)
        }
    }

    @Test func decodedFieldsOfEveryKind() throws {
        func roundTrip(_ envelope: Loggregator_V2_Envelope) throws -> Loggregator_V2_Envelope {
            try Loggregator_V2_Envelope(serializedBytes: try envelope.serializedBytes() as [UInt8])
        }
        let counter = try roundTrip(Fixture.counter())
        #expect(counter.sourceID == "app-2")
        #expect(counter.counter.name == "requests")
        #expect(counter.counter.delta == 3)
        #expect(counter.counter.total == UInt64.max)

        let gauge = try roundTrip(Fixture.gauge())
        #expect(gauge.instanceID == "2")
        #expect(gauge.gauge.metrics.count == 3)
        #expect(gauge.gauge.metrics["cpu"]?.unit == "percentage")
        #expect(gauge.gauge.metrics["cpu"]?.value == 12.5)
        #expect(gauge.gauge.metrics["memory"]?.value == 1.5e9)
        #expect(gauge.gauge.metrics["disk"]?.unit == "bytes")

        let timer = try roundTrip(Fixture.timer())
        #expect(timer.timestamp == -5)
        #expect(timer.timer.name == "http")
        #expect(timer.timer.stop - timer.timer.start == 250_000_000)

        let event = try roundTrip(Fixture.event())
        #expect(event.event.title == "app crashed")
        #expect(event.event.body == "exit status 137")

        let tagged = try roundTrip(Self.tagged())
        #expect(tagged.instanceID == "17")
        #expect(tagged.tags == ["source_type": "RTR", "deployment": "cf", "ünï": "cødé"])
        #expect(tagged.deprecatedTags["text"]?.data == .text("value"))
        #expect(tagged.deprecatedTags["integer"]?.data == .integer(-9_000_000_000))
        #expect(tagged.deprecatedTags["decimal"]?.data == .decimal(3.25))
    }

    @Test func batchRoundTrip() throws {
        let envelopes = Self.kinds.map(\.1)
        let bytes = try Fixture.batch(envelopes)
        let decoded = try Loggregator_V2_EnvelopeBatch(serializedBytes: bytes)
        #expect(decoded.batch == envelopes)
        let json = try Loggregator_V2_EnvelopeBatch(jsonString: try decoded.jsonString())
        #expect(json.batch == envelopes)
    }

    // MARK: JSON form: protobuf's canonical mapping

    @Test func jsonUsesCamelCaseAndStringInt64() throws {
        var envelope = Fixture.log(
            source: "app-1", timestamp: 1_541_999_631_950_000_000, payload: Array("hello".utf8),
            type: .err, instance: "3", tags: ["source_type": "APP/PROC/WEB"])
        envelope.deprecatedTags = ["n": Fixture.integer(5)]
        let json = try envelope.jsonString()
        #expect(json.contains(#""sourceId":"app-1""#), "\(json)")
        #expect(json.contains(#""instanceId":"3""#), "\(json)")
        #expect(json.contains(#""timestamp":"1541999631950000000""#), "\(json)")
        #expect(json.contains(#""deprecatedTags":"#), "\(json)")
        #expect(json.contains(#""integer":"5""#), "\(json)")
        #expect(json.contains(#""payload":"aGVsbG8=""#), "\(json)")
        #expect(json.contains(#""type":"ERR""#), "\(json)")
        #expect(!json.contains("source_id"), "\(json)")
        #expect(!json.contains("instance_id"), "\(json)")
        #expect(!json.contains("deprecated_tags"), "\(json)")
    }

    @Test func jsonAcceptsLoggregatorStyleInput() throws {
        // As a Loggregator v2 reader (e.g. the RLP gateway) would send it.
        let json = """
            {"timestamp":"1541999631950000000","sourceId":"abc","instanceId":"1",
             "tags":{"source_type":"APP/PROC/WEB"},
             "log":{"payload":"aGVsbG8=","type":"ERR"}}
            """
        let envelope = try Loggregator_V2_Envelope(jsonString: json)
        #expect(envelope.timestamp == 1_541_999_631_950_000_000)
        #expect(envelope.sourceID == "abc")
        #expect(envelope.instanceID == "1")
        #expect(envelope.tags["source_type"] == "APP/PROC/WEB")
        #expect(Array(envelope.log.payload) == Array("hello".utf8))
        #expect(envelope.log.type == .err)

        let counter = try Loggregator_V2_Envelope(
            jsonString: #"{"sourceId":"c","counter":{"name":"n","delta":"2","total":"18446744073709551615"}}"#)
        #expect(counter.counter.delta == 2)
        #expect(counter.counter.total == UInt64.max)
    }

    // MARK: Field numbers on the wire (REFERENCE §1), by hand-encoded bytes

    static func encoded(_ build: (inout Loggregator_V2_Envelope) -> Void) throws -> [UInt8] {
        var envelope = Loggregator_V2_Envelope()
        build(&envelope)
        return try envelope.serializedBytes()
    }

    @Test func scalarFieldNumbers() throws {
        #expect(try Self.encoded { $0.timestamp = 1 } == [0x08, 0x01])
        #expect(try Self.encoded { $0.timestamp = -1 } == [0x08] + Array(repeating: 0xFF, count: 9) + [0x01])
        #expect(try Self.encoded { $0.sourceID = "a" } == [0x12, 0x01, 0x61])
        #expect(try Self.encoded { $0.instanceID = "0" } == [0x42, 0x01, 0x30])
    }

    @Test func messageFieldNumbers() throws {
        // log = 4: payload = 1 (bytes), type = 2 (ERR = 1)
        #expect(try Self.encoded { $0.log.payload = Data([0x78]) } == [0x22, 0x03, 0x0A, 0x01, 0x78])
        #expect(try Self.encoded { $0.log.type = .err } == [0x22, 0x02, 0x10, 0x01])
        // counter = 5: name = 1, delta = 2, total = 3
        #expect(
            try Self.encoded {
                $0.counter.name = "c"
                $0.counter.delta = 1
                $0.counter.total = 2
            } == [0x2A, 0x07, 0x0A, 0x01, 0x63, 0x10, 0x01, 0x18, 0x02])
        // gauge = 6: metrics = 1, a map entry {key = 1, value = 2}; GaugeValue unit = 1, value = 2 (double)
        var metric = Loggregator_V2_GaugeValue()
        metric.unit = "u"
        metric.value = 1.0
        #expect(
            try Self.encoded { $0.gauge.metrics = ["m": metric] } == [
                0x32, 19, 0x0A, 17, 0x0A, 0x01, 0x6D, 0x12, 12, 0x0A, 0x01, 0x75,
                0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF0, 0x3F,
            ])
        // timer = 7: name = 1, start = 2, stop = 3
        #expect(
            try Self.encoded {
                $0.timer.name = "t"
                $0.timer.start = 1
                $0.timer.stop = 2
            } == [0x3A, 0x07, 0x0A, 0x01, 0x74, 0x10, 0x01, 0x18, 0x02])
        // event = 10: title = 1, body = 2
        #expect(
            try Self.encoded {
                $0.event.title = "a"
                $0.event.body = "b"
            } == [0x52, 0x06, 0x0A, 0x01, 0x61, 0x12, 0x01, 0x62])
    }

    @Test func mapFieldNumbers() throws {
        // tags = 9
        #expect(try Self.encoded { $0.tags = ["k": "v"] } == [0x4A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76])
        // deprecated_tags = 3, Value: text = 1, integer = 2, decimal = 3
        #expect(
            try Self.encoded { $0.deprecatedTags = ["k": Fixture.text("v")] }
                == [0x1A, 0x08, 0x0A, 0x01, 0x6B, 0x12, 0x03, 0x0A, 0x01, 0x76])
        #expect(
            try Self.encoded { $0.deprecatedTags = ["k": Fixture.integer(5)] }
                == [0x1A, 0x07, 0x0A, 0x01, 0x6B, 0x12, 0x02, 0x10, 0x05])
        #expect(
            try Self.encoded { $0.deprecatedTags = ["k": Fixture.decimal(1.0)] }
                == [0x1A, 0x0E, 0x0A, 0x01, 0x6B, 0x12, 0x09, 0x19, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF0, 0x3F])
    }

    @Test func handEncodedEnvelopeDecodes() throws {
        // What another Loggregator v2 implementation would send, fields out of order.
        let bytes: [UInt8] = [
            0x4A, 0x06, 0x0A, 0x01, 0x6B, 0x12, 0x01, 0x76,  // tags {k: v}
            0x42, 0x01, 0x30,  // instance_id "0"
            0x22, 0x05, 0x0A, 0x01, 0x78, 0x10, 0x01,  // log {payload "x", ERR}
            0x12, 0x01, 0x61,  // source_id "a"
            0x08, 0x96, 0x01,  // timestamp 150
        ]
        let envelope = try Loggregator_V2_Envelope(serializedBytes: bytes)
        #expect(envelope.timestamp == 150)
        #expect(envelope.sourceID == "a")
        #expect(envelope.instanceID == "0")
        #expect(envelope.tags == ["k": "v"])
        #expect(Array(envelope.log.payload) == [0x78])
        #expect(envelope.log.type == .err)

        let event = try Loggregator_V2_Envelope(serializedBytes: [0x52, 0x03, 0x0A, 0x01, 0x61] as [UInt8])
        #expect(event.event.title == "a")
        let timer = try Loggregator_V2_Envelope(serializedBytes: [0x3A, 0x02, 0x18, 0x09] as [UInt8])
        #expect(timer.timer.stop == 9)
        let counter = try Loggregator_V2_Envelope(serializedBytes: [0x2A, 0x02, 0x10, 0x04] as [UInt8])
        #expect(counter.counter.delta == 4)
    }

    @Test func fullEnvelopeInFieldOrder() throws {
        let bytes = try Self.encoded {
            $0.timestamp = 1
            $0.sourceID = "a"
            $0.instanceID = "0"
            $0.log.payload = Data([0x78])
        }
        #expect(bytes == [0x08, 0x01, 0x12, 0x01, 0x61, 0x22, 0x03, 0x0A, 0x01, 0x78, 0x42, 0x01, 0x30])
    }

    @Test func batchAndStreamRequestFieldNumbers() throws {
        var batch = Loggregator_V2_EnvelopeBatch()
        var second = Loggregator_V2_Envelope()
        second.timestamp = 2
        batch.batch = [Loggregator_V2_Envelope(), second]
        #expect(try batch.serializedBytes() as [UInt8] == [0x0A, 0x00, 0x0A, 0x02, 0x08, 0x02])

        var request = Sluice_V1_StreamRequest()
        request.sourceID = "a"
        request.limit = 5
        #expect(try request.serializedBytes() as [UInt8] == [0x0A, 0x01, 0x61, 0x10, 0x05])
        let decoded = try Sluice_V1_StreamRequest(serializedBytes: [0x10, 0x05, 0x0A, 0x01, 0x61] as [UInt8])
        #expect(decoded == request)
    }
}
