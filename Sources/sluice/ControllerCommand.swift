import ArgumentParser
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle
import SluiceAuth
import SluiceCLI
import SluiceController
import SluiceTLS
import SluiceWire
import UnixSignals

struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run a traffic controller: route ingress to its zone's buffer servers, serve every zone's logs.")

    /// The cluster `path` describes, if it describes one.
    static func cluster(_ path: String) throws -> ClusterConfig? {
        do { return try ClusterConfig.loadIfAny(path: path) } catch { throw ValidationError("\(error)") }
    }

    @Option(help: "A configuration file (YAML: its keys are these flags; see sluice config). A cluster file (zones) with --name: this controller's settings and every zone's servers come from it.")
    var config: String?

    @Option(help: "This controller's name in the cluster file.")
    var name: String?

    @Option(help: "The zone this controller belongs to; ingress goes to this zone's servers.")
    var zone: String = "z1"

    @Option(help: "HOST:PORT for framed envelope ingress (sluice emit, agents).")
    var ingress: String = "127.0.0.1:8090"

    @Option(help: "HOST:PORT for the HTTP API (recent logs, websocket streams, /healthz, /metrics).")
    var http: String = "127.0.0.1:8080"

    @Option(help: "HOST:PORT for Loggregator's v2 ingress over gRPC (Sender, BatchSender, Send), with the --tls certificates as --ingress has them.")
    var grpcIngress: String?

    @Option(help: "HOST:PORT for Loggregator's v2 egress over gRPC (Receiver, BatchedReceiver), with the --tls certificates; the same address as --grpc-ingress serves both.")
    var grpcEgress: String?

    @Flag(help: "--grpc-egress asks no token: a nozzle with a client certificate from the --tls CA reads every app, as Loggregator's reverse log proxy allows. Needs --tls.")
    var grpcEgressByCertificate = false

    @Option(
        help:
            "A zone's buffer servers: ZONE=HOST:PORT,HOST:PORT, or found by DNS: ZONE=dns+srv://NAME (SRV records: each target and port) or ZONE=dns://NAME:PORT (each A/AAAA address, at PORT). Repeat for each zone."
    )
    var servers: [String] = []

    @Option(help: "HOST:PORT of the DNS server asked for dns+srv:// and dns:// servers (default: the first nameserver of /etc/resolv.conf).")
    var dnsResolver: String?

    @Option(help: "Seconds between DNS lookups of the servers (also one soon after a link to one fails).")
    var dnsInterval: Double = 5

    @Option(help: "Buffer servers a zone found by DNS may have (its link slots; 1 to 64).")
    var dnsMaxServers: Int = 16

    @OptionGroup var controller: ControllerOptions
    @OptionGroup var link: LinkOptions
    @OptionGroup var bindings: BindingsOptions
    @OptionGroup(title: "Connections") var connections: ConnectionOptions
    @OptionGroup(title: "Tokens") var auth: AuthOptions
    @OptionGroup(title: "TLS (default: the cluster file's tls, if any)") var tls: TLSOptions

    @Option(help: ArgumentHelp("PEM certificate for HTTPS on the HTTP API (readers ask no client certificate).", valueName: "FILE"))
    var httpTlsCert: String?

    @Option(help: ArgumentHelp("PEM private key of --http-tls-cert.", valueName: "FILE"))
    var httpTlsKey: String?

    @OptionGroup var logging: LoggingOptions

    static func parseZones(_ entries: [String]) throws -> (listed: [String: [Endpoint]], discovered: [String: ServerSource]) {
        var zones: [String: [Endpoint]] = [:]
        var discovered: [String: ServerSource] = [:]
        for entry in entries {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--servers '\(entry)': expected ZONE=HOST:PORT,HOST:PORT or ZONE=dns+srv://NAME")
            }
            let zone = String(parts[0])
            let source: ServerSource?
            do { source = try ServerSource.parse(String(parts[1])) } catch { throw ValidationError("--servers: \(error)") }
            if let source {
                guard zones[zone] == nil, discovered[zone] == nil else {
                    throw ValidationError("--servers: zone \(zone) is found by DNS and named again")
                }
                discovered[zone] = source
                continue
            }
            guard discovered[zone] == nil else { throw ValidationError("--servers: zone \(zone) is found by DNS and named again") }
            let endpoints = try parts[1].split(separator: ",").map { try parseEndpoint(String($0), option: "--servers") }
            guard !endpoints.isEmpty else { throw ValidationError("--servers '\(entry)' names no server") }
            zones[zone, default: []].append(contentsOf: endpoints)
        }
        return (zones, discovered)
    }

    func validate() throws {
        _ = try settings()
        _ = try grpcIngress.map { try parseEndpoint($0, option: "--grpc-ingress") }
        _ = try grpcEgress.map { try parseEndpoint($0, option: "--grpc-egress") }
        let tlsFiles = try tls.files(config: config, name: name)
        if grpcEgressByCertificate && (grpcEgress == nil || tlsFiles == nil) {
            throw ValidationError("--grpc-egress-by-certificate needs --grpc-egress and the --tls certificates (mutual TLS is then the check)")
        }
        _ = try tls.files(config: config, name: name)
        guard (httpTlsCert == nil) == (httpTlsKey == nil) else {
            throw ValidationError("HTTPS needs both --http-tls-cert and --http-tls-key")
        }
        guard auth.noAuth || auth.hasKeys else {
            throw ValidationError(
                "a controller checks readers' tokens: give --token-secret, --token-public-key or --token-jwks (or --no-auth to check none)")
        }
    }

    /// The settings, from the cluster file when one is named.
    func settings() throws -> Controller.Configuration {
        var member = MemberSettings()
        try controller.apply(to: &member)
        try link.apply(to: &member)
        member.connections = connections.settings
        member.shutdownTimeout = connections.shutdown
        var zone = self.zone
        var entry = ClusterConfig.Controller(name: name ?? "controller", ingress: ingress, http: http)
        var (zones, discovered) = try Self.parseZones(servers)
        if let config, let cluster = try Self.cluster(config) {
            guard let name else { throw ValidationError("\(config) describes a cluster: give --name, which member of it to run") }
            guard case .controller(let memberZone, let fileEntry)? = cluster.member(named: name) else {
                throw ValidationError("\(config) has no controller named \(name)")
            }
            zone = memberZone
            entry = fileEntry
            zones = cluster.serverEndpoints
            discovered = [:]
        } else {
            _ = try parseEndpoint(ingress, option: "--ingress")
            _ = try parseEndpoint(http, option: "--http")
        }
        guard zones[zone] != nil || discovered[zone] != nil else {
            throw ValidationError("--servers must name at least one server of this controller's zone '\(zone)'")
        }
        guard (1...64).contains(dnsMaxServers) else { throw ValidationError("--dns-max-servers must be from 1 to 64") }
        guard (0.1...3600).contains(dnsInterval) else { throw ValidationError("--dns-interval must be from 0.1 to 3600 seconds") }
        var configuration: Controller.Configuration
        do {
            configuration = try member.controller(zone: zone, entry: entry, servers: zones, bindings: nil)
        } catch {
            throw ValidationError("\(error)")
        }
        configuration.discoveredZones = discovered
        configuration.dnsResolver = try dnsResolver.map { try parseEndpoint($0, option: "--dns-resolver") }
        configuration.dnsInterval = .milliseconds(Int64(dnsInterval * 1000))
        configuration.dnsMaxServers = dnsMaxServers
        return configuration
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.controller")
        var settings = try settings()
        settings.bindings = try await bindings.open(logger: logger)
        settings.authorizer = try await auth.authorizer(logger: logger)
        settings.grpcIngress = try grpcIngress.map { try parseEndpoint($0, option: "--grpc-ingress") }
        settings.grpcEgress = try grpcEgress.map { try parseEndpoint($0, option: "--grpc-egress") }
        settings.grpcEgressByCertificate = grpcEgressByCertificate
        let registry = PrometheusCollectorRegistry()
        settings.tls = try TLSOptions.load(try tls.files(config: config, name: name), registry: registry, logger: logger)
        if let httpTlsCert, let httpTlsKey {
            settings.httpTLS = try TLSOptions.loadServing(
                cert: httpTlsCert, key: httpTlsKey, flags: "--http-tls", registry: registry, logger: logger)
        }
        let controller = Assembly.controller(settings, registry: registry, logger: logger)
        try await controller.bind()
        var services: [any Service] = [controller]
        let reloader = HangupReloader(
            tokens: settings.authorizer?.verifier, tls: [settings.tls, settings.httpTLS], logger: logger)
        services.append(reloader)
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
