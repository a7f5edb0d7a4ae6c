import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import SluiceAgent
import SluiceBindings
import SluiceController
import SluiceServer
import SluiceTransport
import SluiceWire

/// `sluice up`: every member of a cluster in one process, the way a new
/// user first runs Sluice.
public final class LocalCluster: Sendable {
    public let config: ClusterConfig
    public let registry = PrometheusCollectorRegistry()
    private let group: any EventLoopGroup
    private let logger: Logger
    /// The local agent's settings; nil runs none. Its controllers are
    /// filled in when the cluster starts: the first zone's, first.
    private let agent: Agent.Configuration?
    /// Drain bindings, shared by every member; nil runs no drains.
    private let bindings: (any BindingStore)?
    private let members = NIOLockedValueBox<
        (servers: [BufferServer], drains: [DrainManager], controllers: [Controller], agent: Agent?)
    >(([], [], [], nil))

    public init(
        config: ClusterConfig, agent: Agent.Configuration? = nil, bindings: (any BindingStore)? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger
    ) {
        self.config = config
        self.agent = agent
        self.bindings = bindings
        self.group = group
        self.logger = logger
    }

    public struct ControllerEndpoints: Sendable {
        public var zone: String
        public var name: String
        public var ingress: Endpoint
        public var http: Endpoint
    }

    public struct Endpoints: Sendable {
        public var controllers: [ControllerEndpoints]
        /// Every zone's buffer servers as bound.
        public var servers: [String: [Endpoint]]
        /// The local agent's addresses, if one runs.
        public var agent: Agent.Addresses?
    }

    /// Binds every member, servers first; returns where they listen.
    public func start() async throws -> Endpoints {
        let factory = PrometheusMetricsFactory(registry: registry)
        var bound: [String: [Endpoint]] = [:]
        var servers: [BufferServer] = []
        var drains: [DrainManager] = []
        for zone in config.zones {
            for entry in zone.servers {
                let server = BufferServer(
                    configuration: .init(
                        zone: zone.name, listen: try Endpoint(parsing: entry.listen),
                        limits: .init(
                            recentPerApp: entry.recentPerApp ?? 1000,
                            memoryLimit: entry.memoryLimit.flatMap(ByteSize.parse) ?? 256 * 1024 * 1024)),
                    group: group, logger: logger.with(metadata: LogKeys.server, entry.name), metrics: factory)
                bound[zone.name, default: []].append(try await server.bind())
                servers.append(server)
                if let bindings {
                    drains.append(
                        DrainManager(
                            store: server.store, bindings: bindings, group: group,
                            logger: logger.with(metadata: LogKeys.server, entry.name), metrics: factory))
                }
            }
        }
        var controllers: [Controller] = []
        var endpoints: [ControllerEndpoints] = []
        for zone in config.zones {
            for entry in zone.controllers {
                let controller = Controller(
                    configuration: .init(
                        zone: zone.name, ingress: try Endpoint(parsing: entry.ingress),
                        http: try Endpoint(parsing: entry.http), zones: bound, bindings: bindings),
                    group: group, logger: logger.with(metadata: "sluice.controller", entry.name), registry: registry)
                let (ingress, http) = try await controller.bind()
                controllers.append(controller)
                endpoints.append(ControllerEndpoints(zone: zone.name, name: entry.name, ingress: ingress, http: http))
            }
        }
        var agentAddresses: Agent.Addresses?
        var agent: Agent?
        if var settings = self.agent {
            let firstZone = config.zones.first?.name
            settings.zone = firstZone ?? settings.zone
            settings.controllers =
                endpoints.filter { $0.zone == firstZone }.map(\.ingress)
                + endpoints.filter { $0.zone != firstZone }.map(\.ingress)
            let started = Agent(
                configuration: settings, group: group, logger: logger.with(metadata: "sluice.agent", "agent"),
                registry: registry)
            agentAddresses = try await started.bind()
            agent = started
        }
        members.withLockedValue { $0 = (servers, drains, controllers, agent) }
        return Endpoints(controllers: endpoints, servers: bound, agent: agentAddresses)
    }

    /// The services to run in a `ServiceGroup` after `start`.
    public var services: [any Service] {
        let (servers, drains, controllers, agent) = members.withLockedValue { $0 }
        return servers + drains + controllers + (agent.map { [$0] } ?? [])
    }

    public func shutdown() async throws {
        let (servers, drains, controllers, agent) = members.withLockedValue { $0 }
        try await agent?.shutdown()
        for manager in drains { await manager.shutdown() }
        for controller in controllers { try await controller.shutdown() }
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

extension SluiceConfig {
    /// The client config for a running cluster: its controllers, by zone.
    public init(_ endpoints: LocalCluster.Endpoints) {
        self.init(
            controllers: endpoints.controllers.map {
                .init(zone: $0.zone, ingress: "\($0.ingress)", http: "http://\($0.http)")
            },
            agent: endpoints.agent.map { "\($0.listen)" })
    }
}
