import SluiceAgent
import SluiceProto
import SluiceShipping
import SluiceTransport
import SluiceWire
import Testing

/// Cloud Foundry's per-instance log rate limit at the agent: a flooding
/// instance is cut for the rest of the second and its app is told; the app
/// beside it keeps every line.
@Suite(.serialized)
struct LogRateLimitTests {
    @Test func aFloodingInstanceIsCutAndToldWhileAQuietAppKeepsEverything() async throws {
        let harness = try await AgentHarness.start(instanceLogRateLimit: 1000)
        defer { Task { await harness.shutdown() } }
        let client = try await IngressClient.connect(to: harness.addresses.listen)
        let line = Array(String(repeating: "x", count: 100).utf8)
        var builder = BatchFrameBuilder()
        let noisy = LogEnvelopeFields(sourceID: "noisy", instanceID: "0")
        let quiet = LogEnvelopeFields(sourceID: "quiet", instanceID: "0")
        // Ten times the limit from one instance, in one go, and a quiet app
        // under its limit in the same frames.
        for index in 0..<100 {
            line.withUnsafeBytes { builder.appendLog(noisy, timestamp: 1_000 + Int64(index), payload: $0) }
            if index % 20 == 0 {
                Array("quiet \(index)".utf8).withUnsafeBytes {
                    builder.appendLog(quiet, timestamp: 1_000 + Int64(index), payload: $0)
                }
            }
        }
        try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await client.close()

        let limited = #"sluice_agent_envelopes_dropped_total{reason="log_rate_limit"}"#
        #expect(await waitUntil { harness.metric(limited) == 90 })
        #expect(harness.metric("sluice_agent_app_instance_exceeded_log_rate_limit_total") == 1)
        let cluster = harness.cluster
        var noisyRecent: [String] = []
        #expect(await waitUntil {
            noisyRecent = ((try? await cluster.recent(app: "noisy")) ?? []).map(\.text)
            return noisyRecent.count == 11
        })
        // The burst (the limit's worth: ten lines of 100 bytes) passes, then
        // Diego's own words, then nothing more that second.
        #expect(noisyRecent.prefix(10).allSatisfy { $0 == String(repeating: "x", count: 100) })
        #expect(noisyRecent.last == "app instance exceeded log rate limit (1000 bytes/sec)")
        let notice = try #require(try await cluster.recent(app: "noisy").last)
        #expect(notice.tags["source_type"] == "SLUICE")
        #expect(notice.instanceID == "0")
        let quietRecent = try await cluster.recent(app: "quiet").map(\.text)
        #expect(quietRecent == [0, 20, 40, 60, 80].map { "quiet \($0)" })
    }
}
