import Foundation
import NIOCore
import SluiceGRPC
import SluiceProto
import SwiftProtobuf
import Testing

@testable import SluiceController

/// A gRPC egress request read into selectors, and the selectors' test on
/// an envelope's bytes against their test on the decoded envelope.
@Suite struct EgressQueryTests {
    static func selector(_ source: String, _ set: (inout Loggregator_V2_Selector) -> Void) -> Loggregator_V2_Selector {
        var selector = Loggregator_V2_Selector()
        selector.sourceID = source
        set(&selector)
        return selector
    }

    @Test func selectorsLegacySelectorsAndRefusals() throws {
        var request = Loggregator_V2_EgressBatchRequest()
        request.shardID = "nozzle"
        request.usePreferredTags = true
        request.selectors = [
            Self.selector("a") { $0.log = .init() },
            Self.selector("") { $0.counter.name = "requests" },
            Self.selector("b") { $0.gauge.names = ["cpu", "memory"] },
        ]
        let query = try EgressQuery.parse(request).get()
        #expect(
            query.selectors == [
                EnvelopeSelector(sourceID: "a", kind: .log), EnvelopeSelector(sourceID: "", kind: .counter(name: "requests")),
                EnvelopeSelector(sourceID: "b", kind: .gauge(names: ["cpu", "memory"])),
            ])
        #expect(query.shardID == "nozzle" && query.usePreferredTags)
        #expect(query.sourceIDs.isEmpty)  // one selector reads every source

        var legacy = Loggregator_V2_EgressBatchRequest()
        legacy.legacySelector = Self.selector("a") { _ in }
        #expect(try EgressQuery.parse(legacy).get().selectors.map(\.kind) == [.log, .counter(name: ""), .gauge(names: []), .timer, .event])
        #expect(try EgressQuery.parse(legacy).get().sourceIDs == ["a"])

        #expect(throws: GRPCStatus.self) { try EgressQuery.parse(Loggregator_V2_EgressBatchRequest()).get() }
        var untyped = Loggregator_V2_EgressBatchRequest()
        untyped.selectors = [Self.selector("a") { _ in }]
        #expect(throws: GRPCStatus.self) { try EgressQuery.parse(untyped).get() }
    }

    /// `EgressRequest` and `EgressBatchRequest` have the same numbers: one
    /// is read as the other.
    @Test func anEgressRequestReadsAsABatchRequest() throws {
        var request = Loggregator_V2_EgressRequest()
        request.shardID = "s"
        request.selectors = [Self.selector("a") { $0.timer = .init() }]
        request.usePreferredTags = true
        let bytes: [UInt8] = try request.serializedBytes()
        let read = try Loggregator_V2_EgressBatchRequest(serializedBytes: bytes)
        #expect(read.shardID == "s" && read.usePreferredTags && read.selectors.count == 1 && read.selectors[0].sourceID == "a")
    }

    @Test func theBytesTestAgreesWithTheDecodedOne() throws {
        var random = SeededGenerator(seed: 41)
        let sources = ["a", "b", "ab", ""]
        func envelope() -> Loggregator_V2_Envelope {
            var envelope = Loggregator_V2_Envelope()
            envelope.sourceID = sources.randomElement(using: &random)!
            envelope.timestamp = Int64.random(in: 0...1_000_000, using: &random)
            envelope.tags["k"] = "v"
            switch Int.random(in: 0..<6, using: &random) {
            case 0: envelope.log.payload = Data("x".utf8)
            case 1: envelope.counter.name = ["requests", "errors", ""].randomElement(using: &random)!
            case 2:
                for name in ["cpu", "memory", "disk"] where Bool.random(using: &random) {
                    envelope.gauge.metrics[name] = .init()
                }
            case 3: envelope.timer.name = "t"
            case 4: envelope.event.title = "e"
            default: break  // no message at all
            }
            return envelope
        }
        let kinds: [EnvelopeSelector.Kind] = [
            .log, .counter(name: ""), .counter(name: "requests"), .gauge(names: []), .gauge(names: ["cpu"]),
            .gauge(names: ["cpu", "memory"]), .timer, .event,
        ]
        for _ in 0..<2000 {
            let selectors = (0..<Int.random(in: 1...3, using: &random)).map { _ in
                EnvelopeSelector(sourceID: sources.randomElement(using: &random)!, kind: kinds.randomElement(using: &random)!)
            }
            let decoded = envelope()
            let bytes: [UInt8] = try decoded.serializedBytes()
            let byBytes = bytes.withUnsafeBytes { EnvelopeSelector.any(selectors, takeBytes: $0) }
            #expect(byBytes == EnvelopeSelector.any(selectors, take: decoded), "\(selectors) \(decoded)")
        }
    }

    /// `use_preferred_tags` false: tags move into `deprecated_tags` as text.
    @Test func tagsMoveWhereV1KeptThem() throws {
        var envelope = Loggregator_V2_Envelope()
        envelope.sourceID = "a"
        envelope.tags = ["source_type": "APP", "deployment": "cf"]
        envelope.log.payload = Data("x".utf8)
        let moved = try Loggregator_V2_Envelope(
            serializedBytes: Array(GRPCEgressReader.withDeprecatedTags(ByteBuffer(bytes: try envelope.serializedBytes() as [UInt8])).readableBytesView))
        #expect(moved.tags.isEmpty)
        #expect(moved.deprecatedTags.mapValues(\.text) == ["source_type": "APP", "deployment": "cf"])
        #expect(moved.log.payload == envelope.log.payload && moved.sourceID == "a")
    }
}
