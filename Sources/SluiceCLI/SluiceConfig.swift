import Foundation
import SluiceAuth
import SluiceTLS
import SluiceWire

/// `$SLUICE_HOME/config.json` (default `~/.sluice`): where the local cluster
/// that `sluice up` started can be reached, so that `sluice emit` and
/// `sluice logs` need no address flags.
public struct SluiceConfig: Codable, Equatable, Sendable {
    public struct ControllerAddresses: Codable, Equatable, Sendable {
        public var zone: String
        /// `HOST:PORT` of the framed ingress.
        public var ingress: String
        /// `http://HOST:PORT`.
        public var http: String

        public init(zone: String, ingress: String, http: String) {
            self.zone = zone
            self.ingress = ingress
            self.http = http
        }
    }

    public var controllers: [ControllerAddresses]
    /// `HOST:PORT` of the local agent's framed listener (`sluice run`).
    public var agent: String?
    /// The token the CLI sends to controllers: `sluice up` writes an admin
    /// token here, signed with its key (`$SLUICE_HOME/token-key`).
    public var token: String?
    /// The certificate the CLI shows to TLS ingress, and the CA it trusts:
    /// `sluice up --tls` writes them here.
    public var tls: TLSFiles?

    public init(controllers: [ControllerAddresses], agent: String? = nil, token: String? = nil, tls: TLSFiles? = nil) {
        self.controllers = controllers
        self.agent = agent
        self.token = token
        self.tls = tls
    }

    /// The token to send: the flag, else `$SLUICE_TOKEN`, else the config
    /// file's.
    public static func token(_ flag: String?) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let fromEnvironment = ProcessInfo.processInfo.environment["SLUICE_TOKEN"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return load()?.token
    }

    /// Where `sluice up` keeps the secret its tokens are signed with.
    public static var tokenKeyPath: String { home.appendingPathComponent("token-key").path }

    public static let defaultIngress = "127.0.0.1:8090"
    public static let defaultHTTP = "http://127.0.0.1:8080"
    public static let defaultAgent = "127.0.0.1:3457"

    public static var home: URL {
        if let home = ProcessInfo.processInfo.environment["SLUICE_HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home)
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".sluice")
    }

    public static var path: URL { home.appendingPathComponent("config.json") }

    /// Where drain bindings are kept: the flag, else `$SLUICE_BINDINGS` (so
    /// that a PostgreSQL password need not be on the command line), else
    /// `$SLUICE_HOME/bindings.sqlite`.
    public static func bindings(_ flag: String?) -> String {
        if let flag { return flag }
        if let fromEnvironment = ProcessInfo.processInfo.environment["SLUICE_BINDINGS"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return home.appendingPathComponent("bindings.sqlite").path
    }

    public static func load() -> SluiceConfig? {
        guard let data = try? Data(contentsOf: path) else { return nil }
        return try? JSONDecoder().decode(SluiceConfig.self, from: data)
    }

    /// Readable by its owner only: it may hold an admin token.
    public func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try PrivateFile.write(try encoder.encode(self), to: Self.path.path)
    }

    /// The ingress addresses to use, in order of preference: the flag
    /// (comma-separated), else every controller of the config file, else
    /// the default.
    public static func ingress(_ flag: String?) -> [String] {
        if let flag { return flag.split(separator: ",").map(String.init) }
        if let controllers = load()?.controllers, !controllers.isEmpty { return controllers.map(\.ingress) }
        return [defaultIngress]
    }

    /// A controller list as `--controller` gives it, `HOST:PORT` or
    /// `ZONE=HOST:PORT`, comma-separated: the controllers of `zone` (and
    /// those with no zone) first, the others after, each group in the
    /// order given.
    public static func controllers(_ text: String, preferring zone: String) throws -> [Endpoint] {
        var own: [Endpoint] = []
        var others: [Endpoint] = []
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            let endpoint = try Endpoint(parsing: String(parts.last!))
            if parts.count == 2 && parts[0] != zone { others.append(endpoint) } else { own.append(endpoint) }
        }
        return own + others
    }

    /// The agent to send to: the flag, else the config file, else the default.
    public static func agent(_ flag: String?) -> String {
        flag ?? load()?.agent ?? defaultAgent
    }

    /// The HTTP base URL to use: the flag, else the config file, else the default.
    public static func http(_ flag: String?) -> String {
        flag ?? load()?.controllers.first?.http ?? defaultHTTP
    }
}

extension SluiceConfig {
    /// This machine's host name (the agent's default `--hostname`), or nil
    /// if it has none that a syslog HOSTNAME could hold.
    public static func machineHostname() -> String? {
        // gethostname(2), not ProcessInfo's hostName, which may ask DNS.
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return isHostname(name) ? name : nil
    }

    /// A syslog HOSTNAME (RFC 5424 §6.2.4): 1 to 255 printable ASCII
    /// characters, no spaces.
    public static func isHostname(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 255 && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }
}
