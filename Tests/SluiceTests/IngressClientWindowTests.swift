import CoreMetrics
import NIOConcurrencyHelpers
import NIOCore
import Prometheus
import SluiceShipping
import SluiceWire
import Testing

/// An emitter's window to its controller, as the agent's metrics see it.
struct IngressClientWindowTests {
    /// `sluice_agent_ack_window_full_total` counts each time sending has to
    /// wait for the window, not each frame that waits.
    @Test func aFullWindowIsCountedOnceEachTimeItFills() async throws {
        let registry = PrometheusCollectorRegistry()
        let full = Counter(label: MetricNames.emitterAckWindowFull("sluice_agent"), factory: PrometheusMetricsFactory(registry: registry))
        // No controller answers there: every frame stays in the window.
        let port = try freeLoopbackPort(udp: false)
        let client = IngressClient.start(
            to: [Endpoint(host: "127.0.0.1", port: port)], maxWindow: 64, windowFull: full)
        defer { client.abort() }
        let frame = ByteBuffer(repeating: 0, count: 100)
        // The first frame fits (one always does); the next ones wait.
        try await client.send(frame: frame)
        let started = NIOLockedValueBox(0)
        let waiting = (0..<3).map { _ in
            Task {
                started.withLockedValue { $0 += 1 }
                try await client.send(frame: frame)
            }
        }
        let line = "sluice_agent_ack_window_full_total"
        #expect(await waitUntil { started.withLockedValue { $0 } == 3 })
        // A round trip on the client's loop, behind the three sends.
        _ = await client.unacknowledgedEnvelopes
        #expect(registry.value(of: line) == 1, "\(registry.emitToString())")
        client.abort()
        for task in waiting { _ = try? await task.value }
        #expect(registry.value(of: line) == 1)
    }
}
