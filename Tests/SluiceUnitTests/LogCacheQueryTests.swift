import Foundation
import NIOCore
import SluiceAuth
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

@testable import SluiceController

/// log-cache's HTTP API as the controller parses and answers it
/// (REFERENCE §8): the read's parameters, the 404 for every refusal, and
/// the JSON with proto names and every field.
@Suite struct LogCacheQueryTests {
    static func route(_ uri: String) -> Result<APIRoute, APIRoute.Failure> {
        APIRoute.parse(method: "GET", uri: uri)
    }

    @Test func theCLIsRecentRead() throws {
        // What `cf logs --recent` sends.
        let route = try Self.route(
            "/api/v1/read/app-guid?descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152"
        ).get()
        let expected = LogCacheQuery(
            sourceID: "app-guid", startTime: -6_795_364_578_871_345_152, endTime: nil, messageFields: [4], limit: 1000,
            descending: true)
        #expect(route == .logCacheRead(expected))
        let request = expected.request(now: 42)
        #expect(request.sourceID == "app-guid")
        #expect(request.endTime == 42)
        #expect(!request.oldestFirst)
        #expect(request.messageFields == [4])
        #expect(request.limit == 1000)
    }

    @Test func defaultsAndRepeats() throws {
        #expect(try Self.route("/api/v1/read/a").get() == .logCacheRead(LogCacheQuery(sourceID: "a")))
        let both = try Self.route("/api/v1/read/a?envelope_types=COUNTER&envelope_types=gauge&end_time=9&limit=0").get()
        #expect(both == .logCacheRead(LogCacheQuery(sourceID: "a", endTime: 9, messageFields: [5, 6], limit: 100)))
        let any = try Self.route("/api/v1/read/a?envelope_types=ANY").get()
        #expect(any == .logCacheRead(LogCacheQuery(sourceID: "a")))
        // Beside another type, ANY is left out, as log-cache leaves it.
        let logAndAny = try Self.route("/api/v1/read/a?envelope_types=LOG&envelope_types=ANY").get()
        #expect(logAndAny == .logCacheRead(LogCacheQuery(sourceID: "a", messageFields: [4])))
        // An end_time of 0 is now.
        #expect(try Self.route("/api/v1/read/a?end_time=0").get() == .logCacheRead(LogCacheQuery(sourceID: "a")))
        // Groups that are not repeated, classes and escapes are taken.
        #expect((try? Self.route("/api/v1/read/a?name_filter=%5E(cpu%7Cmem)%5Ba-z%5D%2B%5C.%2A%24").get()) != nil)
        #expect(try Self.route("/api/v1/read/a?descending=1").get() == .logCacheRead(LogCacheQuery(sourceID: "a", descending: true)))
        #expect(try Self.route("/api/v1/info").get() == .logCacheInfo)
        #expect(try Self.route("/api/v1/meta").get() == .logCacheMeta)
    }

    @Test(arguments: [
        ("limit=1001", "limit (1001) must be 1000 or less"),
        ("limit=-1", "limit must be a whole number, not '-1'"),
        ("start_time=yesterday", "start_time must be Unix nanoseconds, not 'yesterday'"),
        ("end_time=1.5", "end_time must be Unix nanoseconds, not '1.5'"),
        ("descending=yes", "descending must be true or false, not 'yes'"),
        ("envelope_types=LOGS", "envelope_types must be LOG, COUNTER, GAUGE, TIMER, EVENT or ANY, not 'LOGS'"),
        ("name_filter=%5B", "name_filter '[' is not a regular expression"),
        ("name_filter=(a%7Caa)%2A", "name_filter: a repeated group ('(a|aa)*') is not taken: its matching time can grow exponentially"),
        ("name_filter=(a)%5C1", "name_filter: backreferences (\\1) are not taken"),
    ])
    func badParameters(query: String, message: String) {
        guard case .failure(let failure) = Self.route("/api/v1/read/a?\(query)") else {
            Issue.record("\(query) was taken")
            return
        }
        #expect(failure.status == 400)
        #expect(failure.message == message)
    }

    /// Every refusal is 404 on these routes; a checker that is down stays 503.
    @Test func refusalsAreNotFound() {
        let read = APIRoute.logCacheRead(LogCacheQuery(sourceID: "a"))
        for outcome: AccessOutcome in [.unauthorized(reason: nil), .unauthorized(reason: "expired"), .notFound, .forbidden("no")] {
            #expect(read.refusal(for: outcome)?.status == 404)
            #expect(read.refusal(for: outcome)?.message == "resource not found")
            #expect(APIRoute.logCacheMeta.refusal(for: outcome)?.status == 404)
        }
        #expect(read.refusal(for: .unavailable("down"))?.status == 503)
        #expect(APIRoute.recentLogs(app: "a", limit: 1).refusal(for: .unauthorized(reason: nil))?.status == 401)
        #expect(APIRoute.logCacheInfo.resource == .open)
        #expect(read.resource == .app("a"))
    }

    @Test func descendingTakesTheNewest() {
        let ascending = Array(1...10)
        #expect(LogCacheQuery(sourceID: "a", limit: 3, descending: true).order(ascending) == [10, 9, 8])
        #expect(LogCacheQuery(sourceID: "a", limit: 3).order(ascending) == [1, 2, 3])
    }

    /// The JSON the RLP gateway and log-cache give: proto names, every
    /// field, 64-bit integers as strings, bytes in base64, enums by name.
    @Test func envelopeJSON() throws {
        var log = Loggregator_V2_Envelope()
        log.timestamp = 1_532_030_745_755_909_241
        log.sourceID = "app \"1\""
        log.log.payload = Data("hello\n".utf8)
        var counter = Loggregator_V2_Envelope()
        counter.timestamp = 2
        counter.instanceID = "3"
        counter.tags = ["b": "2", "a": "1"]
        counter.counter.name = "requests"
        counter.counter.delta = 18_446_744_073_709_551_615
        counter.counter.total = 7
        var gauge = Loggregator_V2_Envelope()
        gauge.gauge.metrics = ["cpu": .with { $0.unit = "percentage"; $0.value = 12.5 }, "mem": .with { $0.value = 3 }]
        var value = Loggregator_V2_Value()
        value.integer = -4
        gauge.deprecatedTags = ["n": value]
        var timer = Loggregator_V2_Envelope()
        timer.timer.name = "t"
        timer.timer.start = -1
        timer.timer.stop = 5
        var event = Loggregator_V2_Envelope()
        event.event.title = "deploy"
        event.event.body = "ok"
        let bytes = try [log, counter, gauge, timer, event, Loggregator_V2_Envelope()].map {
            ByteBuffer(bytes: try $0.serializedBytes() as [UInt8])
        }
        let json = EnvelopeJSON.batch(bytes)
        let expected = #"{"batch":["#
            + #"{"timestamp":"1532030745755909241","source_id":"app \"1\"","instance_id":"","deprecated_tags":{},"tags":{},"log":{"payload":"aGVsbG8K","type":"OUT"}},"#
            + #"{"timestamp":"2","source_id":"","instance_id":"3","deprecated_tags":{},"tags":{"a":"1","b":"2"},"counter":{"name":"requests","delta":"18446744073709551615","total":"7"}},"#
            + #"{"timestamp":"0","source_id":"","instance_id":"","deprecated_tags":{"n":{"integer":"-4"}},"tags":{},"gauge":{"metrics":{"cpu":{"unit":"percentage","value":12.5},"mem":{"unit":"","value":3}}}},"#
            + #"{"timestamp":"0","source_id":"","instance_id":"","deprecated_tags":{},"tags":{},"timer":{"name":"t","start":"-1","stop":"5"}},"#
            + #"{"timestamp":"0","source_id":"","instance_id":"","deprecated_tags":{},"tags":{},"event":{"title":"deploy","body":"ok"}},"#
            + #"{"timestamp":"0","source_id":"","instance_id":"","deprecated_tags":{},"tags":{}}"#
            + "]}"
        #expect(json == expected)
        // It is JSON.
        #expect((try? JSONSerialization.jsonObject(with: Data(json.utf8))) != nil)
        var out = ""
        for number in [Double.nan, .infinity, -.infinity, 1e21, 0.1] { EnvelopeJSON.double(number, into: &out); out += " " }
        #expect(out == #""NaN" "Infinity" "-Infinity" 1e+21 0.1 "#)
    }

    @Test func metaJSON() {
        var a = Sluice_V1_SourceMeta()
        a.sourceID = "b"
        a.count = 3
        a.expired = 1
        a.oldestTimestamp = 10
        a.newestTimestamp = 20
        var b = Sluice_V1_SourceMeta()
        b.sourceID = "a"
        #expect(
            HTTPAPIHandler.metaJSON([a, b])
                == #"{"meta":{"a":{"count":"0","expired":"0","oldestTimestamp":"0","newestTimestamp":"0"},"b":{"count":"3","expired":"1","oldestTimestamp":"10","newestTimestamp":"20"}}}"#
        )
    }
}
