import SluiceAgent
import SluiceEmitter
import SluiceProto
import SluiceWire
import Testing

/// The `SluiceEmitter` library as a Swift program uses it.
@Suite(.serialized)
struct EmitterTests {
    @Test func linesReachTheAgentAndCloseWaitsForThem() async throws {
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("emitter-app")
        let emitter = try SluiceEmitter(app: "emitter-app", instance: "4", agent: "\(harness.addresses.listen)")
        for index in 0..<1000 { emitter.log("emitted \(index)", type: index % 10 == 0 ? .err : .out) }
        #expect(await emitter.close())
        #expect(emitter.droppedCount == 0)
        #expect(await received.wait(for: 1000))
        let envelopes = received.envelopes
        #expect(envelopes.map(\.text) == (0..<1000).map { "emitted \($0)" })
        #expect(envelopes.map { $0.log.type == .err } == (0..<1000).map { $0 % 10 == 0 })
        #expect(envelopes.allSatisfy { $0.instanceID == "4" })
    }

    @Test func withNoAgentLoggingGoesOnAndTheLossIsToldWhenTheAgentComes() async throws {
        let reserved = ReservedPort()
        let emitter = try SluiceEmitter(
            app: "early-app", agent: "127.0.0.1:\(reserved.port)", bufferBytes: 256 * 1024)
        let count = 20_000
        for index in 0..<count { emitter.log("early \(index) " + String(repeating: "y", count: 40)) }
        let dropped = emitter.droppedCount
        #expect(dropped > count / 2, "\(dropped)")

        reserved.release()
        let harness = try await AgentHarness.start(listenPort: reserved.port)
        defer { Task { await harness.shutdown() } }
        #expect(await emitter.close(timeout: .seconds(30)))
        let arrived = await waitUntil {
            ((try? await harness.cluster.recent(app: "early-app", limit: 20_000)) ?? []).count == count - dropped + 1
        }
        #expect(arrived)
        let recent = try await harness.cluster.recent(app: "early-app", limit: 20_000)
        let notices = recent.filter(\.isNotice)
        #expect(notices.map(\.text).first?.contains("Error L10 (output buffer overflow): \(dropped) messages dropped") == true,
                "\(notices.map(\.text))")
        #expect(notices.first?.text.contains("the emitter's buffer was full") == true)
        // The newest lines are the ones kept.
        #expect(recent.last { !$0.isNotice }?.text.hasPrefix("early \(count - 1) ") == true)
    }

    @Test func badArgumentsAreRefused() {
        #expect(throws: SluiceEmitter.InvalidArgument.self) { try SluiceEmitter(app: "") }
        #expect(throws: SluiceEmitter.InvalidArgument.self) { try SluiceEmitter(app: "a", agent: "no-port") }
    }
}
