import Foundation
import SluiceTLS
import SluiceWire

/// A cluster described in one file (`deploy/local/cluster.json`): its zones,
/// each with buffer servers and controllers. `sluice server|controller
/// --config FILE --name NAME` starts one member; `sluice up --config FILE`
/// runs them all in one process; `bin/cluster` runs each as a process.
public struct ClusterConfig: Codable, Equatable, Sendable {
    public struct Server: Codable, Equatable, Sendable {
        public var name: String
        public var listen: String
        public var recentPerApp: Int?
        public var memoryLimit: String?
        /// This server's own certificate, instead of the cluster's.
        public var tls: TLSFiles?

        public init(
            name: String, listen: String, recentPerApp: Int? = nil, memoryLimit: String? = nil, tls: TLSFiles? = nil
        ) {
            self.tls = tls
            self.name = name
            self.listen = listen
            self.recentPerApp = recentPerApp
            self.memoryLimit = memoryLimit
        }
    }

    public struct Controller: Codable, Equatable, Sendable {
        public var name: String
        public var ingress: String
        public var http: String
        /// This controller's own certificate, instead of the cluster's.
        public var tls: TLSFiles?

        public init(name: String, ingress: String, http: String, tls: TLSFiles? = nil) {
            self.tls = tls
            self.name = name
            self.ingress = ingress
            self.http = http
        }
    }

    public struct Zone: Codable, Equatable, Sendable {
        public var name: String
        public var servers: [Server]
        public var controllers: [Controller]

        public init(name: String, servers: [Server], controllers: [Controller]) {
            self.name = name
            self.servers = servers
            self.controllers = controllers
        }
    }

    public enum Member: Equatable, Sendable {
        case server(zone: String, Server)
        case controller(zone: String, Controller)
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    public var zones: [Zone]
    /// Mutual TLS on every link, unless a member names its own files.
    public var tls: TLSFiles?

    public init(zones: [Zone], tls: TLSFiles? = nil) {
        self.zones = zones
        self.tls = tls
    }

    /// The TLS files of the member named `name`: its own, else the cluster's.
    public func tls(of name: String) -> TLSFiles? {
        switch member(named: name) {
        case .server(_, let entry)?: return entry.tls ?? tls
        case .controller(_, let entry)?: return entry.tls ?? tls
        case nil: return tls
        }
    }

    public static func load(path: String) throws -> ClusterConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Invalid(description: "cannot read cluster file \(path): \(error.localizedDescription)")
        }
        let config: ClusterConfig
        do {
            config = try JSONDecoder().decode(ClusterConfig.self, from: data)
        } catch {
            throw Invalid(description: "\(path) is not a cluster file: \(error)")
        }
        try config.validate()
        return config
    }

    /// Checks names are unique, addresses parse, and each zone has a server.
    public func validate() throws {
        guard !zones.isEmpty else { throw Invalid(description: "the cluster has no zones") }
        var names = Set<String>()
        for zone in zones {
            guard !zone.servers.isEmpty else { throw Invalid(description: "zone \(zone.name) has no buffer servers") }
            for name in zone.servers.map(\.name) + zone.controllers.map(\.name) {
                guard names.insert(name).inserted else { throw Invalid(description: "the name \(name) is used twice") }
            }
            for address in zone.servers.map(\.listen) + zone.controllers.flatMap({ [$0.ingress, $0.http] }) {
                guard Endpoint(address) != nil else {
                    throw Invalid(description: "'\(address)' in zone \(zone.name) is not HOST:PORT")
                }
            }
        }
    }

    public func member(named name: String) -> Member? {
        for zone in zones {
            if let server = zone.servers.first(where: { $0.name == name }) { return .server(zone: zone.name, server) }
            if let controller = zone.controllers.first(where: { $0.name == name }) {
                return .controller(zone: zone.name, controller)
            }
        }
        return nil
    }

    /// Every zone's buffer servers.
    public var serverEndpoints: [String: [Endpoint]] {
        Dictionary(uniqueKeysWithValues: zones.map { ($0.name, $0.servers.compactMap { Endpoint($0.listen) }) })
    }

    /// A cluster of `zones` zones (z1, z2, …), each with `serversPerZone`
    /// buffer servers on ports the kernel picks and one controller; zone
    /// i's controller listens on `httpPort + i - 1` and `ingressPort + i - 1`
    /// (or picked ports if those are 0).
    public static func generate(
        zones: Int, serversPerZone: Int, httpPort: Int, ingressPort: Int, host: String = "127.0.0.1"
    ) -> ClusterConfig {
        ClusterConfig(
            zones: (1...zones).map { z in
                let offset = z - 1
                return Zone(
                    name: "z\(z)",
                    servers: (1...serversPerZone).map { Server(name: "z\(z)-server-\($0)", listen: "\(host):0") },
                    controllers: [
                        Controller(
                            name: "z\(z)-controller",
                            ingress: "\(host):\(ingressPort == 0 ? 0 : ingressPort + offset)",
                            http: "\(host):\(httpPort == 0 ? 0 : httpPort + offset)")
                    ])
            })
    }
}
