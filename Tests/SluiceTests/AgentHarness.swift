import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceController
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

/// A cluster with an agent in front of it, every port picked by the kernel.
struct AgentHarness {
    let cluster: TestCluster
    let agent: Agent
    let addresses: Agent.Addresses
    let registry: PrometheusCollectorRegistry
    private let clients = NIOLockedValueBox<[WebSocketClient]>([])

    static func start(
        recentPerApp: Int = 20_000, bufferBytes: Int = 64 * 1024 * 1024, defaultApp: String? = nil,
        maxMessageBytes: Int = FrameHeader.defaultMaxPayload, controllers: [Endpoint]? = nil,
        cluster: TestCluster? = nil, listenPort: Int = 0, instanceLogRateLimit: Int? = nil, spool: Spool.Settings? = nil,
        appSeriesLimit: Int = 100, hostname: String? = nil
    ) async throws -> AgentHarness {
        let started: TestCluster
        if let cluster { started = cluster } else { started = try await TestCluster.start(recentPerApp: recentPerApp) }
        let loopback = Endpoint(host: "127.0.0.1", port: 0)
        let registry = PrometheusCollectorRegistry()
        var configuration = Agent.Configuration(
            controllers: controllers ?? [started.ingress], listen: Endpoint(host: "127.0.0.1", port: listenPort),
            syslogTCP: loopback, syslogUDP: loopback,
            http: loopback, bufferBytes: bufferBytes, defaultApp: defaultApp, maxMessageBytes: maxMessageBytes,
            instanceLogRateLimit: instanceLogRateLimit, hostname: hostname)
        configuration.appSeriesLimit = appSeriesLimit
        configuration.spool = try spool.map { try Spool(settings: $0, metrics: PrometheusMetricsFactory(registry: registry)) }
        let agent = Agent(configuration: configuration, logger: .quiet, registry: registry)
        return AgentHarness(cluster: started, agent: agent, addresses: try await agent.bind(), registry: registry)
    }

    /// Brings the cluster's servers up with a controller taking ingress on
    /// `port` (one the agent was given before anything listened there).
    func lateController(port: Int) async throws -> Controller {
        var servers: [Endpoint] = []
        for server in cluster.servers { servers.append(try await server.bind()) }
        let controller = Controller(
            configuration: .init(
                ingress: Endpoint(host: "127.0.0.1", port: port), http: Endpoint(host: "127.0.0.1", port: 0),
                zones: ["z1": servers]),
            logger: .quiet)
        _ = try await controller.bind()
        return controller
    }

    func shutdown() async {
        for client in clients.withLockedValue({ $0 }) { await client.close() }
        try? await agent.shutdown(timeout: .seconds(1))
        await cluster.shutdown()
    }

    /// Tails `app` (subscribed once this returns); the tail closes at shutdown.
    func tail(_ app: String) async throws -> Received {
        let received = Received()
        let client = try await cluster.tail(app: app, into: received)
        clients.withLockedValue { $0.append(client) }
        return received
    }

    func metric(_ line: String) -> Double? {
        registry.value(of: line)
    }

    func post(_ body: String, path: String = "/logs", contentType: String = "application/logplex-1",
              headers: [(String, String)] = []) async throws -> HTTPClient.Response {
        let http = try #require(addresses.http)
        return try await HTTPClient.request(
            .POST, HTTPURL(host: http.host, port: http.port).with(path: path),
            headers: [("Content-Type", contentType)] + headers, body: ByteBuffer(string: body))
    }
}

/// An octet-counted frame: `LEN SP MSG`.
func octetCounted(_ message: String) -> String { "\(message.utf8.count) \(message)" }
