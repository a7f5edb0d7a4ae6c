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
    public let registry: PrometheusCollectorRegistry
    private let group: any EventLoopGroup
    private let logger: Logger
    /// The local agent's settings; nil runs none. Its controllers are
    /// filled in when the cluster starts: the first zone's, first.
    private let agent: Agent.Configuration?
    /// Drain bindings, shared by every member; nil runs no drains.
    private let bindings: (any BindingStore)?
    /// What every server and controller is run with, as the role commands take it.
    private let settings: MemberSettings
    private let members = NIOLockedValueBox<(servers: [ServerNode], controllers: [Controller], agent: Agent?)>(
        ([], [], nil))

    public init(
        config: ClusterConfig, settings: MemberSettings = MemberSettings(), agent: Agent.Configuration? = nil,
        bindings: (any BindingStore)? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), logger: Logger
    ) {
        self.registry = registry
        self.config = config
        self.settings = settings
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
        var bound: [String: [Endpoint]] = [:]
        var servers: [ServerNode] = []
        for zone in config.zones {
            for entry in zone.servers {
                let node = Assembly.server(
                    try settings.server(zone: zone.name, entry: entry), bindings: bindings, registry: registry,
                    group: group, logger: logger.with(metadata: LogKeys.server, entry.name))
                bound[zone.name, default: []].append(try await node.bind())
                servers.append(node)
            }
        }
        var controllers: [Controller] = []
        var endpoints: [ControllerEndpoints] = []
        for zone in config.zones {
            for entry in zone.controllers {
                let controller = Assembly.controller(
                    try settings.controller(zone: zone.name, entry: entry, servers: bound, bindings: bindings),
                    registry: registry, group: group, logger: logger.with(metadata: LogKeys.controller, entry.name))
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
            let started = Assembly.agent(
                settings, registry: registry, group: group, logger: logger.with(metadata: LogKeys.agent, "agent"))
            agentAddresses = try await started.bind()
            agent = started
        }
        members.withLockedValue { $0 = (servers, controllers, agent) }
        return Endpoints(controllers: endpoints, servers: bound, agent: agentAddresses)
    }

    /// The services to run in a `ServiceGroup` after `start`.
    public var services: [any Service] {
        let (servers, controllers, agent) = members.withLockedValue { $0 }
        return servers.flatMap(\.services) + controllers + (agent.map { [$0] } ?? [])
    }

    public func shutdown() async throws {
        let (servers, controllers, agent) = members.withLockedValue { $0 }
        try await agent?.shutdown()
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
    public init(_ endpoints: LocalCluster.Endpoints, https: Bool = false) {
        self.init(
            controllers: endpoints.controllers.map {
                .init(zone: $0.zone, ingress: "\($0.ingress)", http: "\(https ? "https" : "http")://\($0.http)")
            },
            agent: endpoints.agent.map { "\($0.listen)" })
    }
}
