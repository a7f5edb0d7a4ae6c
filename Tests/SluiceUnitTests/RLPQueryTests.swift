import Foundation
import SluiceAuth
import SluiceProto
import Testing

@testable import SluiceController

/// The RLP gateway's query, read as its own tests read it, and the
/// selectors' matching.
@Suite struct RLPQueryTests {
    static func parse(_ query: String) -> Result<APIRoute, APIRoute.Failure> {
        APIRoute.parse(method: "GET", uri: "/v2/read" + query)
    }

    static func selectors(_ query: String) throws -> [EnvelopeSelector] {
        guard case .rlpRead(let parsed) = try parse(query).get() else { throw APIRoute.Failure(status: 0, error: "", message: "") }
        return parsed.selectors
    }

    @Test func typesCrossedWithSources() throws {
        #expect(try Self.selectors("?log") == [.init(sourceID: "", kind: .log)])
        #expect(
            try Self.selectors("?timer&source_id=app-1&source_id=app-2")
                == [.init(sourceID: "app-1", kind: .timer), .init(sourceID: "app-2", kind: .timer)])
        #expect(
            try Self.selectors("?log&counter&gauge&timer&event").map(\.kind)
                == [.log, .counter(name: ""), .gauge(names: []), .timer, .event])
        #expect(
            try Self.selectors("?counter.name=requestCount&counter.name=failures").map(\.kind)
                == [.counter(name: "requestCount"), .counter(name: "failures")])
        #expect(
            try Self.selectors("?gauge.name=cpu,memory&gauge.name=jvm.stuff").map(\.kind)
                == [.gauge(names: ["cpu", "memory"]), .gauge(names: ["jvm.stuff"])])
    }

    /// As the gateway's Go: an empty name in a list matches no gauge, and
    /// the first `shard_id` counts.
    @Test func edges() throws {
        #expect(try Self.selectors("?gauge.name=cpu,").map(\.kind) == [.gauge(names: ["cpu", ""])])
        guard case .rlpRead(let query) = try Self.parse("?log&shard_id=first&shard_id=second").get() else {
            Issue.record("not parsed")
            return
        }
        #expect(query.shardID == "first")
        guard case .failure(let failure) = APIRoute.parse(method: "POST", uri: "/v2/read") else {
            Issue.record("POST taken")
            return
        }
        #expect(failure.status == 405)
    }

    @Test func resourcesAndRefusals() throws {
        guard case .rlpRead(let all) = try Self.parse("?log&shard_id=nozzle").get(),
            case .rlpRead(let one) = try Self.parse("?log&source_id=a").get(),
            case .rlpRead(let two) = try Self.parse("?log&counter&source_id=a&source_id=b").get()
        else {
            Issue.record("not parsed")
            return
        }
        #expect(all.shardID == "nozzle")
        #expect(APIRoute.rlpRead(all).resource == .firehose)
        #expect(APIRoute.rlpRead(one).resource == .app("a"))
        #expect(APIRoute.rlpRead(two).resource == .apps(["a", "b"]))
        // Every refusal is the gateway's 404; a firehose reader who is no admin too.
        #expect(APIRoute.rlpRead(all).refusal(for: .forbidden("admin only"))?.status == 404)
        #expect(APIRoute.rlpRead(one).refusal(for: .unauthorized(reason: nil))?.status == 404)
    }

    @Test func matching() {
        var counter = Loggregator_V2_Envelope()
        counter.sourceID = "a"
        counter.counter.name = "requests"
        var gauge = Loggregator_V2_Envelope()
        gauge.sourceID = "b"
        gauge.gauge.metrics = ["cpu": .init(), "memory": .init()]
        var log = Loggregator_V2_Envelope()
        log.sourceID = "a"
        log.log.payload = Data("x".utf8)
        #expect(EnvelopeSelector(sourceID: "", kind: .counter(name: "")).matches(counter))
        #expect(EnvelopeSelector(sourceID: "", kind: .counter(name: "requests")).matches(counter))
        #expect(!EnvelopeSelector(sourceID: "", kind: .counter(name: "errors")).matches(counter))
        #expect(EnvelopeSelector(sourceID: "", kind: .gauge(names: ["cpu", "memory"])).matches(gauge))
        #expect(!EnvelopeSelector(sourceID: "", kind: .gauge(names: ["cpu", "disk"])).matches(gauge))
        #expect(!EnvelopeSelector(sourceID: "", kind: .log).matches(counter))
        #expect(EnvelopeSelector.any([.init(sourceID: "a", kind: .log)], take: log))
        #expect(!EnvelopeSelector.any([.init(sourceID: "b", kind: .log)], take: log))
    }

    /// A token must be able to read every source id it asks for.
    @Test func severalAppsNeedEach() {
        let grant = Grant(admin: false, apps: ["a"], token: "t")
        #expect(AccessPolicy.decide(grant, .apps(["a"])) == .allow)
        #expect(AccessPolicy.decide(grant, .apps(["a", "b"])) == .askExternally(app: "b"))
        #expect(AccessPolicy.decide(Grant(admin: true, apps: [], token: "t"), .apps(["a", "b"])) == .allow)
    }
}
