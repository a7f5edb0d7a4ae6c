import ArgumentParser
import Prometheus
import ServiceLifecycle
import SluiceCLI
import SluiceServer
import SluiceTLS
import SluiceWire
import UnixSignals

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "Run a buffer server: recent logs and live streams of the apps it owns.")

    /// The cluster `path` describes, if it describes one.
    static func cluster(_ path: String) throws -> ClusterConfig? {
        do { return try ClusterConfig.loadIfAny(path: path) } catch { throw ValidationError("\(error)") }
    }

    @Option(help: "A configuration file (YAML: its keys are these flags; see sluice config). A cluster file (zones) with --name: this server's settings come from it.")
    var config: String?

    @Option(help: "This server's name in the cluster file.")
    var name: String?

    @Option(help: "The zone this server belongs to.")
    var zone: String = "z1"

    @Option(help: "HOST:PORT to listen on for controllers.")
    var listen: String = "127.0.0.1:9001"

    @OptionGroup var server: ServerOptions
    @OptionGroup var link: LinkOptions
    @OptionGroup var bindings: BindingsOptions
    @OptionGroup(title: "Connections") var connections: ConnectionOptions
    @OptionGroup(title: "TLS (default: the cluster file's tls, if any)") var tls: TLSOptions

    @Option(help: "HOST:PORT for GET /metrics (Prometheus text) and /healthz; none if not given.")
    var metrics: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try settings()
        _ = try tls.files(config: config, name: name)
    }

    /// The settings, from the cluster file when one is named (its entry's
    /// own limits win over the flags).
    func settings() throws -> ServerSettings {
        var member = MemberSettings()
        try server.apply(to: &member)
        try link.apply(to: &member)
        member.connections = connections.settings
        member.shutdownTimeout = connections.shutdown
        let metrics = try self.metrics.map { try parseEndpoint($0, option: "--metrics") }
        var zone = self.zone
        var entry = ClusterConfig.Server(name: name ?? "server", listen: listen)
        if let config, let cluster = try Self.cluster(config) {
            guard let name else { throw ValidationError("\(config) describes a cluster: give --name, which member of it to run") }
            guard case .server(let memberZone, let fileEntry)? = cluster.member(named: name) else {
                throw ValidationError("\(config) has no buffer server named \(name)")
            }
            zone = memberZone
            entry = fileEntry
        } else {
            _ = try parseEndpoint(listen, option: "--listen")
        }
        do {
            return try member.server(zone: zone, entry: entry, metrics: metrics)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.server")
        let store = try await bindings.open(logger: logger)
        let registry = PrometheusCollectorRegistry()
        var settings = try settings()
        let linkTLS = try TLSOptions.load(try tls.files(config: config, name: name), registry: registry, logger: logger)
        settings.server.tls = linkTLS
        let node = Assembly.server(settings, bindings: store, registry: registry, logger: logger)
        try await node.bind()
        let reloader = HangupReloader(tls: [linkTLS], logger: logger)
        let group = ServiceGroup(
            services: node.services + [reloader], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        try await group.run()
    }
}
