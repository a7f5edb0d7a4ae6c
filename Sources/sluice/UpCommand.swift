import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import SluiceAgent
import SluiceAuth
import SluiceBindings
import SluiceCLI
import SluiceTLS
import Prometheus
import SluiceWire
import UnixSignals

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run a whole cluster in one process: controllers and buffer servers, in one zone or several.")

    @Option(help: "A configuration file (YAML: its keys are these flags; see sluice config), which may describe the cluster (zones, as deploy/local/cluster.json); without zones one is built from the options below.")
    var config: String?

    @Option(help: "Zones to run, each with its own controller.")
    var zones: Int = 1

    @Option(help: "Buffer servers per zone.")
    var serversPerZone: Int?

    @Option(help: "Buffer servers (one zone); the same as --servers-per-zone.")
    var servers: Int?

    @Option(help: "Port of the first zone's controller HTTP API (zone N uses this + N - 1; 0 picks free ports).")
    var httpPort: Int = 8080

    @Option(help: "Port of the first zone's controller ingress (zone N uses this + N - 1; 0 picks free ports).")
    var ingressPort: Int = 8090

    @Option(help: "Port of the local agent's framed listener, for sluice run (0 picks a free port).")
    var agentPort: Int = 3457

    @Option(help: "Port of the local agent's syslog input, TCP and UDP (0 picks free ports).")
    var syslogPort: Int = 5514

    @Option(help: "Port of the local agent's HTTP input, POST /logs (0 picks a free port).")
    var agentHttpPort: Int = 8088

    @OptionGroup(title: "Buffer servers") var server: ServerOptions
    @OptionGroup(title: "Controllers") var controller: ControllerOptions
    @OptionGroup var link: LinkOptions
    @OptionGroup var bindings: BindingsOptions
    @OptionGroup(title: "Connections (every member's listeners)") var connections: ConnectionOptions
    @OptionGroup(title: "Tokens (default: a key of its own in $SLUICE_HOME/token-key, and an admin token in config.json)")
    var auth: AuthOptions

    @Flag(
        help:
            "Mutual TLS on every link (agent and emitters to controllers, controllers to servers), with a development CA and certificates made in $SLUICE_HOME/tls (sluice certs) unless there already; the CLI's certificate and the CA go into config.json."
    )
    var tls = false

    @Flag(help: "Run no local agent.")
    var noAgent = false

    @Option(help: "The local agent's per-instance log rate limit, as for sluice agent (e.g. 16KiB/s or 1M). Off by default.")
    var instanceLogRateLimit: String?

    @OptionGroup var logging: LoggingOptions

    var perZone: Int { serversPerZone ?? servers ?? 2 }

    func validate() throws {
        guard (1...16).contains(zones) else { throw ValidationError("--zones must be from 1 to 16") }
        guard (1...64).contains(perZone) else { throw ValidationError("--servers-per-zone must be from 1 to 64") }
        guard [httpPort, ingressPort, agentPort, syslogPort, agentHttpPort].allSatisfy({ (0...65535).contains($0) }) else {
            throw ValidationError("ports must be from 0 to 65535")
        }
        _ = try instanceLogRateLimit.flatMap { try parseRate($0, option: "--instance-log-rate-limit") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.up")
        let cluster: ClusterConfig
        if let config, let described = try ServerCommand.cluster(config) {
            cluster = described
        } else {
            cluster = ClusterConfig.generate(
                zones: zones, serversPerZone: perZone, httpPort: httpPort, ingressPort: ingressPort)
        }
        let registry = PrometheusCollectorRegistry()
        var linkTLS: (member: LinkTLS, server: LinkTLS, agent: LinkTLS, client: TLSFiles)? = nil
        var httpTLS: LinkTLS? = nil
        if tls {
            let directory = SluiceConfig.home.appendingPathComponent("tls").path
            do {
                let made = try CertificateDirectory.make(in: directory, replace: false)
                if !made.isEmpty { logger.info("made TLS certificates", metadata: ["sluice.path": "\(directory)"]) }
            } catch {
                throw CommandFailure("cannot make TLS certificates in \(directory): \(error)")
            }
            func load(_ role: String) throws -> LinkTLS {
                try TLSOptions.load(CertificateDirectory.files(in: directory, role: role), registry: registry, logger: logger)!
            }
            linkTLS = (
                try load("controller"), try load("server"), try load("agent"),
                CertificateDirectory.files(in: directory, role: "client")
            )
            let controllerFiles = CertificateDirectory.files(in: directory, role: "controller")
            httpTLS = try TLSOptions.loadServing(
                cert: controllerFiles.cert, key: controllerFiles.key, flags: "--tls", registry: registry, logger: logger)
        }
        // A cluster file's tls, without --tls: every member shows its one
        // certificate (members' own files are for separate processes).
        if !tls, let files = cluster.tls {
            guard cluster.zones.allSatisfy({ $0.servers.allSatisfy { $0.tls == nil } && $0.controllers.allSatisfy { $0.tls == nil } })
            else {
                throw ValidationError(
                    "sluice up runs every member with one certificate: give tls at the top of \(config ?? "the cluster file") only")
            }
            let shared = try TLSOptions.load(files, registry: registry, logger: logger)!
            linkTLS = (shared, shared, shared, files)
        }
        var agent: Agent.Configuration? =
            noAgent
            ? nil
            : Agent.Configuration(
                controllers: [], listen: Endpoint(host: "127.0.0.1", port: agentPort),
                syslogTCP: Endpoint(host: "127.0.0.1", port: syslogPort),
                syslogUDP: Endpoint(host: "127.0.0.1", port: syslogPort),
                http: Endpoint(host: "127.0.0.1", port: agentHttpPort),
                instanceLogRateLimit: try instanceLogRateLimit.flatMap { try parseRate($0, option: "--instance-log-rate-limit") })
        agent?.tls = linkTLS?.agent
        agent?.connections = connections.settings
        agent?.shutdownTimeout = connections.shutdown
        var member = MemberSettings()
        member.tls = linkTLS?.member
        member.serverTLS = linkTLS?.server
        member.httpTLS = httpTLS
        try server.apply(to: &member)
        try controller.apply(to: &member)
        try link.apply(to: &member)
        member.connections = connections.settings
        member.shutdownTimeout = connections.shutdown
        // Its own signing key, made once, unless keys are given: the CLI
        // gets an admin token signed with it.
        var ownKey: String? = nil
        if !auth.noAuth && !auth.hasKeys {
            ownKey = SluiceConfig.tokenKeyPath
            do {
                if try TokenIssuer.ensureSecret(at: ownKey!) {
                    logger.info("made a token signing key", metadata: ["sluice.path": "\(ownKey!)"])
                }
            } catch {
                throw CommandFailure("cannot make a token signing key: \(error)")
            }
        }
        member.authorizer = try await auth.authorizer(defaultSecret: ownKey, logger: logger)
        let store = try await bindings.open(logger: logger)
        let local = LocalCluster(
            config: cluster, settings: member, agent: agent, bindings: store, registry: registry, logger: logger)
        let endpoints: LocalCluster.Endpoints
        do {
            endpoints = try await local.start()
        } catch {
            throw CommandFailure("cannot start the cluster: \(ErrorText.describe(error))")
        }
        var config = SluiceConfig(endpoints, https: httpTLS != nil)
        if let ownKey {
            config.token = try await TokenIssuer.create(
                keyFile: ownKey, admin: true, apps: [], ttl: 365 * 86400, subject: "sluice up")
        }
        config.tls = linkTLS?.client
        try config.save()
        let serverCount = endpoints.servers.values.reduce(0) { $0 + $1.count }
        var lines = [
            "Sluice is up: \(endpoints.controllers.count) controller\(endpoints.controllers.count == 1 ? "" : "s") and "
                + "\(serverCount) buffer server\(serverCount == 1 ? "" : "s") in \(cluster.zones.count) zone\(cluster.zones.count == 1 ? "" : "s")."
        ]
        for controller in endpoints.controllers {
            lines.append("  \(controller.zone) controller \(controller.name)")
            lines.append("    ingress  \(controller.ingress)  (sluice emit)")
            lines.append(
                "    http     \(httpTLS == nil ? "http" : "https")://\(controller.http)  (sluice logs; /apps/APP/recentlogs, /apps/APP/stream, /healthz, /metrics)")
            if !self.controller.noUi {
                lines.append("    console  \(httpTLS == nil ? "http" : "https")://\(controller.http)\(self.controller.uiBasePath == "/" ? "/" : self.controller.uiBasePath)  (sluice ui: a link that signs you in)")
            }
        }
        for zone in cluster.zones {
            lines.append("  \(zone.name) servers  \(endpoints.servers[zone.name, default: []].map(\.description).joined(separator: ", "))")
        }
        if let agent = endpoints.agent {
            lines.append("  agent    \(agent.listen)  (sluice run)")
            lines.append(
                "    syslog   tcp \(agent.syslogTCP.map { "\($0)" } ?? "-")  udp \(agent.syslogUDP.map { "\($0)" } ?? "-")")
            lines.append("    http     http://\(agent.http.map { "\($0)" } ?? "-")/logs  (application/logplex-1)")
        }
        lines.append("  drains   \(bindings.redacted)  (sluice drains)")
        lines.append("  config   \(SluiceConfig.path.path)")
        if ownKey != nil {
            lines.append("  tokens   key \(SluiceConfig.tokenKeyPath); an admin token is in the config (sluice token create --app APP for others)")
        } else if member.authorizer == nil {
            lines.append("  tokens   none checked (--no-auth)")
        }
        if let linkTLS {
            lines.append("  tls      every link mutual TLS, the HTTP API HTTPS; CA \(linkTLS.client.ca)")
        }
        lines.append("Try: sluice run --app my-app -- echo hello   then   sluice logs my-app --recent")
        lines.append("Ctrl-C stops it.")
        print(lines.joined(separator: "\n"))
        Output.flushStandardOutput()
        let reloader = HangupReloader(
            tokens: member.authorizer?.verifier, tls: [linkTLS?.member, linkTLS?.server, linkTLS?.agent, httpTLS],
            logger: logger)
        let group = ServiceGroup(
            services: local.services + [reloader], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        try await group.run()
    }
}
