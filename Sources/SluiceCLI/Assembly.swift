import CoreMetrics
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import SluiceAgent
import SluiceBindings
import SluiceController
import SluiceDrain
import SluiceServer
import SluiceTransport
import SluiceWire

/// The settings of a buffer server process: the server itself, the drains
/// it runs, and where it serves `/metrics` (if anywhere).
public struct ServerSettings: Sendable {
    public var server: BufferServer.Configuration
    public var drains: DrainRunner.Settings
    public var metrics: Endpoint?

    public init(server: BufferServer.Configuration, drains: DrainRunner.Settings = .init(), metrics: Endpoint? = nil) {
        self.server = server
        self.drains = drains
        self.metrics = metrics
    }
}

/// A buffer server as it runs: the server, its drain manager attached to
/// the server's taps (when there is a bindings store), and its metrics
/// endpoint.
public final class ServerNode: Sendable {
    public let server: BufferServer
    public let drains: DrainManager?
    private let metricsServer: MetricsHTTPServer?

    init(server: BufferServer, drains: DrainManager?, metricsServer: MetricsHTTPServer?) {
        self.server = server
        self.drains = drains
        self.metricsServer = metricsServer
    }

    /// Binds the server (and the metrics endpoint); returns the server's address.
    @discardableResult
    public func bind() async throws -> Endpoint {
        let endpoint = try await server.bind()
        try await metricsServer?.bind()
        return endpoint
    }

    /// What to run in a `ServiceGroup` once bound. A group stops its
    /// services last to first: the server leaves first (handing its apps
    /// and history over while it still stores, streams and drains), then
    /// the drains stop, then /metrics.
    public var services: [any Service] {
        (metricsServer.map { [$0] } ?? []) + (drains.map { [$0] } ?? []) + [server]
    }

    public func shutdown() async throws {
        await drains?.shutdown()
        try await server.shutdown()
        await metricsServer?.shutdown()
    }
}

/// The one place a buffer server, a controller or an agent is put
/// together from its settings: `sluice up` and the role commands both
/// build their members here, so the two cannot drift.
public enum Assembly {
    public static func server(
        _ settings: ServerSettings, bindings: (any BindingStore)?, registry: PrometheusCollectorRegistry,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) -> ServerNode {
        let factory = PrometheusMetricsFactory(registry: registry)
        let server = BufferServer(configuration: settings.server, group: group, logger: logger, metrics: factory)
        let drains = bindings.map {
            DrainManager(
                store: server.store, bindings: $0, settings: settings.drains, group: group, logger: logger,
                metrics: factory)
        }
        if let drains { server.store.reportDrains { drains.statuses() } }
        let metricsServer = settings.metrics.map { endpoint in
            MetricsHTTPServer(
                listen: endpoint, group: group, logger: logger, readiness: { server.readiness },
                render: { registry.emitToBuffer() })
        }
        return ServerNode(server: server, drains: drains, metricsServer: metricsServer)
    }

    public static func controller(
        _ settings: Controller.Configuration, registry: PrometheusCollectorRegistry,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) -> Controller {
        Controller(configuration: settings, group: group, logger: logger, registry: registry)
    }

    public static func agent(
        _ settings: Agent.Configuration, registry: PrometheusCollectorRegistry,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) -> Agent {
        Agent(configuration: settings, group: group, logger: logger, registry: registry)
    }
}
