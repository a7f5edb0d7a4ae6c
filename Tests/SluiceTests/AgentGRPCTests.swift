import Foundation
import NIOCore
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceProto
import SluiceTLS
import SluiceTransport
import SluiceWire
import Testing

/// The agent's `--grpc-listen`, called as Loggregator's clients call an
/// agent: mutual TLS, the server name `metron`, Python grpcio's stubs.
@Suite(.serialized) struct AgentGRPCTests {
    @Test func aLoggregatorClientSendsToTheAgentOverMutualTLS() async throws {
        let fixture = try TLSFixture("agent-grpc")
        defer { fixture.remove() }
        let cluster = try await TestCluster.start(servers: 1)
        let registry = PrometheusCollectorRegistry()
        let loopback = Endpoint(host: "127.0.0.1", port: 0)
        var configuration = Agent.Configuration(controllers: [cluster.ingress], listen: loopback)
        configuration.grpc = loopback
        configuration.inputTLS = try fixture.tls("agent", registry: registry)
        let agent = Agent(configuration: configuration, logger: .quiet, registry: registry)
        let target = try #require(try await agent.bind().grpc).description
        defer {
            Task {
                try? await agent.shutdown(timeout: .seconds(1))
                await cluster.shutdown()
            }
        }
        let app = "agent-grpc-app"
        let received = Received()
        let tail = try await cluster.tail(app: app, into: received)
        defer { Task { await tail.close() } }
        let client = fixture.files("client")
        let tls = ["--ca", client.ca, "--cert", client.cert, "--key", client.key, "--server-name", "metron"]
        for method in ["stream", "batch", "send"] {
            let out = try GRPCTests.run(
                ["send", "--target", target, "--app", app, "--count", "200", "--batch", "30", "--method", method] + tls)
            #expect(out.contains("sent 200"))
        }
        #expect(await received.wait(for: 600))
        let lines = received.envelopes.map { String(decoding: $0.log.payload, as: UTF8.self) }
        #expect(lines == Array(repeating: (0..<200).map { "line \($0)" }, count: 3).flatMap { $0 })
        #expect(registry.value(of: #"sluice_agent_envelopes_received_total{input="grpc"}"#) == 600)

        // Without a client certificate: refused at the handshake, counted.
        let (status, _, _) = try EventStreamTests.finish(
            EventStreamTests.start(
                GRPCTests.python,
                [GRPCTests.client, "send", "--target", target, "--app", app, "--count", "1", "--ca", client.ca,
                 "--server-name", "metron"]))
        #expect(status != 0)
        #expect(await waitUntil { (registry.value(of: #"sluice_tls_handshakes_refused_total{role="agent-grpc"}"#) ?? 0) >= 1 })
        // A name the certificate does not carry: the client refuses it.
        let (wrongName, _, errors) = try EventStreamTests.finish(
            EventStreamTests.start(
                GRPCTests.python,
                [GRPCTests.client, "send", "--target", target, "--app", app, "--count", "1", "--ca", client.ca,
                 "--cert", client.cert, "--key", client.key, "--server-name", "doppler"]))
        #expect(wrongName != 0, "\(errors)")
    }
}
