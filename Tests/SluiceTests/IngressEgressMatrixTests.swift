import Foundation
import NIOCore
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceTransport
import SluiceWire
import Testing

/// Every way in crossed with every way out: lines sent by the framed
/// protocol (to a controller and to an agent), syslog over TCP (to the
/// agent) and gRPC (to the agent and to a controller) reach a websocket
/// tail, a gRPC nozzle, a server-sent-events nozzle and log-cache's read,
/// each line once, and each way's lines in the order they were sent.
@Suite(.serialized) struct IngressEgressMatrixTests {
    static let perWay = 40
    static let ways = ["framed-controller", "framed-agent", "syslog-agent", "grpc-agent", "grpc-controller"]
    static func line(_ way: String, _ index: Int) -> String { "\(way) \(index)" }

    /// Each way's lines, in the order `lines` has them.
    static func byWay(_ lines: [String]) -> [String: [String]] {
        Dictionary(grouping: lines) { String($0.split(separator: " ").first ?? "") }
    }

    static func check(_ lines: [String], _ reader: String) {
        #expect(lines.count == perWay * ways.count, "\(reader): \(lines.count) lines")
        let grouped = byWay(lines)
        for way in ways {
            #expect(grouped[way] == (0..<perWay).map { line(way, $0) }, "\(reader) from \(way): \(grouped[way] ?? [])")
        }
    }

    @Test func everyWayInReachesEveryWayOut() async throws {
        let cluster = try await TestCluster.start(servers: 2, events: (heartbeat: .seconds(30), timeout: .seconds(60)), grpc: true)
        let loopback = Endpoint(host: "127.0.0.1", port: 0)
        var configuration = Agent.Configuration(controllers: [cluster.ingress], listen: loopback, syslogTCP: loopback)
        configuration.grpc = loopback
        let agent = Agent(configuration: configuration, logger: .quiet, registry: PrometheusCollectorRegistry())
        let addresses = try await agent.bind()
        defer {
            Task {
                try? await agent.shutdown(timeout: .seconds(1))
                await cluster.shutdown()
            }
        }
        let app = "matrix-app"
        let total = Self.perWay * Self.ways.count
        let controllerGRPC = try #require(cluster.grpc).description
        let agentGRPC = try #require(addresses.grpc).description

        // The readers, before anything is sent.
        let received = Received()
        let tail = try await cluster.tail(app: app, into: received)
        defer { Task { await tail.close() } }
        let nozzle = try EventStreamTests.start(
            GRPCTests.python,
            [GRPCTests.client, "receive", "--target", controllerGRPC, "--source-id", app, "--batched", "--count", "\(total)",
             "--timeout", "60"])
        let events = try EventStreamTests.start(
            GRPCTests.python,
            [EventStreamTests.client, "http://\(cluster.http.host):\(cluster.http.port)/v2/read?log&source_id=\(app)",
             "--stop-after", "\(total)"])
        #expect(await EventStreamTests.readers(cluster, 3))

        // Every way in.
        try await cluster.emit(app: app, lines: (0..<Self.perWay).map { Self.line("framed-controller", $0) }, batch: 7)
        try await ControllerClient(ingress: addresses.listen, http: cluster.http)
            .emit(app: app, lines: (0..<Self.perWay).map { Self.line("framed-agent", $0) }, batch: 7)
        let syslog = try await RawConnection.connect(to: try #require(addresses.syslogTCP))
        try await syslog.write(
            (0..<Self.perWay).map { octetCounted("<14>1 - host \(app) - - - \(Self.line("syslog-agent", $0))") }.joined())
        for (target, way) in [(agentGRPC, "grpc-agent"), (controllerGRPC, "grpc-controller")] {
            let out = try GRPCTests.run(
                ["send", "--target", target, "--app", app, "--count", "\(Self.perWay)", "--batch", "9", "--method", "stream",
                 "--prefix", "\(way) "])
            #expect(out.contains("sent \(Self.perWay)"))
        }

        // Every way out.
        #expect(await received.wait(for: total))
        Self.check(received.envelopes.filter { !$0.isNotice }.map(\.text), "websocket tail")

        let (nozzleStatus, nozzleOut, nozzleErrors) = try EventStreamTests.finish(nozzle)
        #expect(nozzleStatus == 0, "\(nozzleErrors)")
        Self.check(GRPCTests.lines(nozzleOut).compactMap { $0["payload"] as? String }, "gRPC BatchedReceiver")

        let (eventsStatus, eventsOut, eventsErrors) = try EventStreamTests.finish(events)
        #expect(eventsStatus == 0, "\(eventsErrors)")
        let report = try JSONSerialization.jsonObject(with: Data(eventsOut.utf8)) as? [String: Any]
        Self.check(report?["logs"] as? [String] ?? [], "server-sent events")

        let read = try await HTTPClient.get(cluster.http.with(path: "/api/v1/read/\(app)?limit=1000&envelope_types=LOG"))
        let body = try JSONSerialization.jsonObject(with: Data(read.body.readableBytesView)) as? [String: Any]
        let batch = (body?["envelopes"] as? [String: Any])?["batch"] as? [[String: Any]] ?? []
        let payloads = batch.compactMap { (($0["log"] as? [String: Any])?["payload"] as? String).flatMap { Data(base64Encoded: $0) } }
        Self.check(payloads.map { String(decoding: $0, as: UTF8.self) }, "log-cache read")
    }
}
