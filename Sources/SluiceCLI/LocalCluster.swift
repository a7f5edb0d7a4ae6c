import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import SluiceController
import SluiceServer
import SluiceTransport
import SluiceWire

/// `sluice up`: a controller and N buffer servers in one process on
/// loopback, the way a new user first runs Sluice.
public final class LocalCluster: Sendable {
    public struct Configuration: Sendable {
        public var servers: Int
        public var httpPort: Int
        public var ingressPort: Int
        public var host: String
        public var recentPerApp: Int
        public var memoryLimit: Int

        public init(
            servers: Int = 2, httpPort: Int = 8080, ingressPort: Int = 8090, host: String = "127.0.0.1",
            recentPerApp: Int = 1000, memoryLimit: Int = 256 * 1024 * 1024
        ) {
            self.servers = servers
            self.httpPort = httpPort
            self.ingressPort = ingressPort
            self.host = host
            self.recentPerApp = recentPerApp
            self.memoryLimit = memoryLimit
        }
    }

    public let servers: [BufferServer]
    public let registry = PrometheusCollectorRegistry()
    private let configuration: Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private let controllerBox = NIOLockedValueBox<Controller?>(nil)

    public init(configuration: Configuration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.configuration = configuration
        self.group = group
        self.logger = logger
        let factory = PrometheusMetricsFactory(registry: registry)
        servers = (0..<configuration.servers).map { index in
            BufferServer(
                configuration: .init(
                    zone: "z1", listen: Endpoint(host: configuration.host, port: 0),
                    limits: .init(recentPerApp: configuration.recentPerApp, memoryLimit: configuration.memoryLimit)),
                group: group, logger: logger.with(metadata: LogKeys.server, "\(index)"), metrics: factory)
        }
    }

    public struct Endpoints: Sendable {
        public var ingress: Endpoint
        public var http: Endpoint
        public var servers: [Endpoint]
    }

    /// Binds every member; returns where they listen.
    public func start() async throws -> Endpoints {
        var serverEndpoints: [Endpoint] = []
        for server in servers { serverEndpoints.append(try await server.bind()) }
        let controller = Controller(
            configuration: .init(
                zone: "z1",
                ingress: Endpoint(host: configuration.host, port: configuration.ingressPort),
                http: Endpoint(host: configuration.host, port: configuration.httpPort),
                servers: serverEndpoints),
            group: group, logger: logger, registry: registry)
        controllerBox.withLockedValue { $0 = controller }
        let (ingress, http) = try await controller.bind()
        return Endpoints(ingress: ingress, http: http, servers: serverEndpoints)
    }

    /// The services to run in a `ServiceGroup` after `start`.
    public var services: [any Service] {
        var all: [any Service] = servers
        if let controller = controllerBox.withLockedValue({ $0 }) { all.append(controller) }
        return all
    }

    public func shutdown() async throws {
        if let controller = controllerBox.withLockedValue({ $0 }) { try await controller.shutdown() }
        for server in servers { try await server.shutdown() }
    }
}

extension Logger {
    func with(metadata key: String, _ value: String) -> Logger {
        var copy = self
        copy[metadataKey: key] = "\(value)"
        return copy
    }
}
