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

    /// What is wrong, and at which key (`zones[0].servers[1].listen`).
    public struct Invalid: Error, CustomStringConvertible {
        public var path: [Key]
        public var reason: String

        public init(path: [Key] = [], reason: String) {
            self.path = path
            self.reason = reason
        }

        public init(description: String) {
            self.init(reason: description)
        }

        public var description: String { path.isEmpty ? reason : "\(ConfigFile.keyPath(path)): \(reason)" }
    }

    /// A step of an `Invalid`'s path: a key or a list index.
    public struct Key: CodingKey, Sendable {
        public var stringValue: String
        public var intValue: Int?
        public init(stringValue: String) { self.stringValue = stringValue }
        public init(intValue: Int) {
            self.stringValue = "\(intValue)"
            self.intValue = intValue
        }
        static func at(_ steps: Any...) -> [Key] {
            steps.map { ($0 as? Int).map(Key.init(intValue:)) ?? Key(stringValue: "\($0)") }
        }
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

    /// The cluster a configuration file describes (JSON as
    /// `deploy/local/cluster.json`, or YAML); a file without `zones` is no
    /// cluster file.
    public static func load(path: String) throws -> ClusterConfig {
        guard let cluster = try ConfigFile.load(path: path).cluster else {
            throw Invalid(description: "\(path) describes no cluster: it has no zones")
        }
        return cluster
    }

    /// The cluster a configuration file describes, or nil for a file
    /// without `zones` (a role's settings only).
    public static func loadIfAny(path: String) throws -> ClusterConfig? {
        try ConfigFile.load(path: path).cluster
    }

    /// Checks names are unique, addresses parse, limits are sizes, and each
    /// zone has a server.
    public func validate() throws(Invalid) {
        guard !zones.isEmpty else { throw Invalid(path: Key.at("zones"), reason: "the cluster has no zones") }
        var names: [String: [Key]] = [:]
        for (z, zone) in zones.enumerated() {
            guard !zone.servers.isEmpty else {
                throw Invalid(path: Key.at("zones", z, "servers"), reason: "zone \(zone.name) has no buffer servers")
            }
            var members: [(name: String, path: [Key], addresses: [(String, String)])] = []
            for (i, server) in zone.servers.enumerated() {
                members.append((server.name, Key.at("zones", z, "servers", i), [("listen", server.listen)]))
                if let limit = server.memoryLimit, (ByteSize.parse(limit) ?? 0) <= 0 {
                    throw Invalid(
                        path: Key.at("zones", z, "servers", i, "memoryLimit"),
                        reason: "'\(limit)' is not a size; write e.g. 64MiB or 1GiB")
                }
                if let recent = server.recentPerApp, recent < 1 {
                    throw Invalid(path: Key.at("zones", z, "servers", i, "recentPerApp"), reason: "must be at least 1")
                }
            }
            for (i, controller) in zone.controllers.enumerated() {
                members.append(
                    (controller.name, Key.at("zones", z, "controllers", i), [("ingress", controller.ingress), ("http", controller.http)]))
            }
            for member in members {
                if let earlier = names[member.name] {
                    throw Invalid(
                        path: member.path + Key.at("name"),
                        reason: "the name \(member.name) is used twice (also at \(ConfigFile.keyPath(earlier)))")
                }
                names[member.name] = member.path
                for (key, address) in member.addresses {
                    do {
                        _ = try Endpoint(parsing: address)
                    } catch {
                        throw Invalid(path: member.path + Key.at(key), reason: "\(error)")
                    }
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
