import Foundation
import NIOCore
import NIOHTTP1
import SluiceBindings
import SluiceCLI
import SluiceController
import SluiceDrain
import SluiceProto
import SluiceShipping
import SluiceTransport
import SluiceWire
import Testing

/// An app's own log rate limit at its buffer server, set through the
/// controller's API and kept in the bindings store: a flooding app loses
/// what is past it, is told once a second and counted, and a quiet app
/// beside it keeps its history, its tail and its drain whole.
@Suite(.serialized) struct AppLogRateLimitTests {
    static func put(_ bed: DrainTests.Bed, app: String, body: String) async throws -> HTTPClient.Response {
        try await HTTPClient.request(
            .PUT, bed.cluster.http.with(path: "/apps/\(app)/log-rate-limit"), body: ByteBuffer(string: body))
    }

    static func json(_ response: HTTPClient.Response) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
    }

    /// "… (N bytes/sec): M lines dropped since T" → M.
    static func droppedCount(_ notice: String) -> Int? {
        guard let colon = notice.range(of: "): ") else { return nil }
        return Int(notice[colon.upperBound...].prefix { $0.isNumber })
    }

    @Test func aFloodingAppIsCutAndToldWhileAQuietAppKeepsHistoryTailAndDrain() async throws {
        let bed = try await DrainTests.Bed.start()
        let cluster = bed.cluster
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        _ = try await bed.add(app: "quiet", url: "syslog://127.0.0.1:\(receiver.port)")

        // Through the API, kept in the store, applied by every server.
        let applied = cluster.drains.map(\.appliedCount)
        let set = try await Self.put(bed, app: "noisy", body: #"{"bytes_per_second": 2000}"#)
        #expect(set.status == .ok)
        #expect(try Self.json(set)["bytes_per_second"] as? Int == 2000)
        let shown = try await HTTPClient.get(cluster.http.with(path: "/apps/noisy/log-rate-limit"))
        #expect(try Self.json(shown)["bytes_per_second"] as? Int == 2000)
        #expect(try Self.json(shown)["source"] as? String == "app")
        #expect(await waitUntil(timeout: .seconds(5)) {
            zip(cluster.drains, applied).allSatisfy { $0.appliedCount > $1 }
        })

        let noisyTail = Received()
        let quietTail = Received()
        let tails = [
            try await cluster.tail(app: "noisy", into: noisyTail), try await cluster.tail(app: "quiet", into: quietTail),
        ]
        // Ten times the limit at once (200 lines of 100 bytes), with the
        // quiet app's lines among them in the same frame.
        let noisyLines = (0..<200).map { String(format: "noisy %05d ", $0) + String(repeating: "n", count: 88) }
        let quietLines = DrainTests.lines(50)
        var builder = BatchFrameBuilder()
        let noisy = LogEnvelopeFields(sourceID: "noisy", instanceID: "0")
        let quiet = LogEnvelopeFields(sourceID: "quiet", instanceID: "0")
        for index in 0..<200 {
            let now = WallClock.nowNanos()
            Array(noisyLines[index].utf8).withUnsafeBytes { builder.appendLog(noisy, timestamp: now, payload: $0) }
            if index % 4 == 0 {
                Array(quietLines[index / 4].utf8).withUnsafeBytes { builder.appendLog(quiet, timestamp: now, payload: $0) }
            }
        }
        let client = try await IngressClient.connect(to: cluster.ingress)
        try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await client.close()

        // The noisy app's stream says what it lost, as often as once a second.
        #expect(await noisyTail.wait(timeout: .seconds(10)) { $0.notices.count > 0 })
        let dropped = #"sluice_server_envelopes_dropped_total{reason="app_log_rate_limit"}"#
        var recent: [Loggregator_V2_Envelope] = []
        #expect(await waitUntil(timeout: .seconds(10)) {
            recent = (try? await cluster.recent(app: "noisy")) ?? []
            let kept = recent.filter { !$0.isNotice }.count
            let told = recent.filter(\.isNotice).compactMap { Self.droppedCount($0.text) }.reduce(0, +)
            return kept + told == 200 && cluster.metric(dropped) == Double(told)
        })
        let answer = recent
        let kept = answer.filter { !$0.isNotice }.map(\.text)
        #expect(kept.count < 60, "about 2,000 bytes a second got through: \(kept.count) lines")
        #expect(kept == Array(noisyLines.prefix(kept.count)), "the first lines pass, then the cut")
        let firstNotice = answer.first { $0.isNotice }
        let notice = try #require(firstNotice)
        #expect(notice.text.hasPrefix("app exceeded log rate limit (2000 bytes/sec): "))
        #expect(notice.tags["sluice_notice"] == "log_rate_limit")

        // The quiet app lost nothing anywhere.
        #expect(await quietTail.wait(for: 50))
        #expect(quietTail.envelopes.map(\.text) == quietLines)
        #expect(try await cluster.recent(app: "quiet").map(\.text) == quietLines)
        let drained = try await receiver.waitForLines(50, timeout: .seconds(30))
        #expect(drained.map { $0.components(separatedBy: " - - ").last! } == quietLines)
        #expect(noisyTail.envelopes.filter { !$0.isNotice }.map(\.text) == kept)

        for tail in tails { await tail.close() }
        receiver.stop()
        await bed.shutdown()
    }

    @Test func theAPIExplainsBadLimitsAndTakesOneAway() async throws {
        let bed = try await DrainTests.Bed.start()
        let cluster = bed.cluster
        let none = try await HTTPClient.get(cluster.http.with(path: "/apps/a/log-rate-limit"))
        #expect(none.status == .ok)
        #expect(try Self.json(none)["source"] as? String == "default")
        #expect(try Self.json(none)["bytes_per_second"] is NSNull)
        #expect(try await Self.put(bed, app: "a", body: "{bytes").status.code == 400)
        let negative = try await Self.put(bed, app: "a", body: #"{"bytes_per_second": -5}"#)
        #expect(negative.status.code == 422)
        #expect(String(buffer: negative.body).contains("-1 for no limit"))
        #expect(try await Self.put(bed, app: "a", body: #"{"bytes_per_second": -1}"#).status == .ok)
        #expect(try await bed.cluster.controller.configuration.bindings?.logRateLimit(app: "a") == -1)
        let removed = try await HTTPClient.request(.DELETE, cluster.http.with(path: "/apps/a/log-rate-limit"))
        #expect(removed.status == .noContent)
        #expect(try await bed.cluster.controller.configuration.bindings?.logRateLimit(app: "a") == nil)
        let wrong = try await HTTPClient.request(.POST, cluster.http.with(path: "/apps/a/log-rate-limit"))
        #expect(wrong.status == .methodNotAllowed)
        await bed.shutdown()
    }
}
