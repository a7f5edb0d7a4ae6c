import ArgumentParser
import Logging
import Prometheus
import ServiceLifecycle
import SluiceAgent
import SluiceCLI
import SluiceShipping
import SluiceTLS
import SluiceWire
import UnixSignals

struct AgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Run the source agent: take envelopes, syslog and HTTP log input on this host, ship them to controllers.")

    @Option(help: "A configuration file (YAML: its keys are these flags; see sluice config).")
    var config: String?

    @Option(help: "The zone this host is in; controllers of this zone are preferred.")
    var zone: String = "z1"

    @Option(
        help: "Controllers' ingress HOST:PORT, comma-separated, in order of preference; ZONE=HOST:PORT marks a controller's zone, and this zone's come first."
    )
    var controller: String = "127.0.0.1:8090"

    @Option(help: "HOST:PORT for the framed envelope protocol (sluice run, sluice emit, SluiceEmitter).")
    var listen: String = "127.0.0.1:3457"

    @Option(help: "HOST:PORT for syslog over TCP (RFC 5424 or 3164, octet-counted or newline-framed).")
    var syslogTcp: String?

    @Option(help: "HOST:PORT for syslog over UDP, one message per datagram.")
    var syslogUdp: String?

    @Option(help: "HOST:PORT for HTTP: POST /logs (application/logplex-1), /healthz, /metrics.")
    var http: String?

    @Option(help: "Memory for envelopes not yet delivered; past it the oldest are dropped, counted and told.")
    var buffer: String = "64MiB"

    @Option(
        help: ArgumentHelp(
            "Keep what is acknowledged to sources and not yet delivered in this directory, across a crash or kill -9; sent again at the next start. Without it, memory only.",
            valueName: "DIR"))
    var spool: String?

    @Option(help: "The most the spool holds on disk; past it the agent holds envelopes in memory (--buffer) and drops the oldest of those, counted and told.")
    var spoolMax: String = "1GiB"

    @Option(help: "The app that syslog lines which cannot be parsed, or name no app, are kept under; without it they are counted and dropped.")
    var defaultApp: String?

    @Option(help: "The host this agent serves (in Kubernetes, the node name: SLUICE_HOSTNAME from spec.nodeName): the hostname tag of syslog lines that name none. Default: this machine's host name; '-' for none.")
    var hostname: String?

    @Option(help: "The largest syslog message, frame payload or HTTP body taken (e.g. 4MiB).")
    var maxMessage: String = "4MiB"

    @Option(help: "Cloud Foundry's per-instance log rate limit, e.g. 16KiB/s or 1M: bytes of log lines per second for each app instance; over it the instance's lines are dropped for a second and the app is told. Off by default.")
    var instanceLogRateLimit: String?

    @OptionGroup(title: "TLS to the controllers (the local inputs stay plain)") var tls: TLSOptions

    @Option(help: "HOST:PORT for syslog over TLS (RFC 5425, as rsyslog's and syslog-ng's syslog-tls send it; 6514 by convention).")
    var syslogTls: String?

    @Option(help: "HOST:PORT for HTTPS: POST /logs (application/logplex-1), /healthz, /metrics.")
    var https: String?

    @Option(help: "HOST:PORT for Loggregator's v2 ingress over gRPC (Sender, BatchSender, Send; Loggregator's agent uses 3458). Over TLS with --input-tls-cert (mutual with --input-tls-ca), else plain.")
    var grpcListen: String?

    @Option(help: ArgumentHelp("PEM certificate the TLS inputs (--syslog-tls, --https, --grpc-listen) show.", valueName: "FILE"))
    var inputTlsCert: String?

    @Option(help: ArgumentHelp("PEM private key of --input-tls-cert.", valueName: "FILE"))
    var inputTlsKey: String?

    @Option(help: ArgumentHelp("PEM CA certificates: with it, senders to the TLS inputs must show a certificate from it.", valueName: "FILE"))
    var inputTlsCa: String?

    @OptionGroup(title: "Connections") var connections: ConnectionOptions

    @OptionGroup var logging: LoggingOptions

    func settings() throws -> Agent.Configuration {
        if let defaultApp, defaultApp.isEmpty { throw ValidationError("--default-app must not be empty") }
        if let spool, spool.isEmpty { throw ValidationError("--spool names no directory") }
        let host: String?
        switch hostname {
        case nil: host = SluiceConfig.machineHostname()
        case "-": host = nil
        case let name?:
            guard SluiceConfig.isHostname(name) else {
                throw ValidationError("--hostname: 1 to 255 printable ASCII characters without spaces, or '-' for none")
            }
            host = name
        }
        guard try parseSize(spoolMax, option: "--spool-max") >= 1 << 20 else {
            throw ValidationError("--spool-max: at least 1MiB")
        }
        return Agent.Configuration(
            zone: zone, controllers: try controllerList(),
            listen: try parseEndpoint(listen, option: "--listen"),
            syslogTCP: try syslogTcp.map { try parseEndpoint($0, option: "--syslog-tcp") },
            syslogUDP: try syslogUdp.map { try parseEndpoint($0, option: "--syslog-udp") },
            http: try http.map { try parseEndpoint($0, option: "--http") },
            bufferBytes: try parseSize(buffer, option: "--buffer"), defaultApp: defaultApp,
            maxMessageBytes: try parseSize(maxMessage, option: "--max-message"),
            instanceLogRateLimit: try instanceLogRateLimit.flatMap { try parseRate($0, option: "--instance-log-rate-limit") },
            hostname: host)
    }

    func controllerList() throws -> [Endpoint] {
        let list: [Endpoint]
        do { list = try SluiceConfig.controllers(controller, preferring: zone) } catch {
            throw ValidationError("--controller: \(error)")
        }
        guard !list.isEmpty else { throw ValidationError("--controller names no controller") }
        return list
    }

    func validate() throws {
        _ = try settings()
        _ = try grpcListen.map { try parseEndpoint($0, option: "--grpc-listen") }
        guard (inputTlsCert == nil) == (inputTlsKey == nil) else {
            throw ValidationError("the TLS inputs need both --input-tls-cert and --input-tls-key")
        }
        if (syslogTls != nil || https != nil) && inputTlsCert == nil {
            throw ValidationError("--syslog-tls and --https need --input-tls-cert and --input-tls-key")
        }
        if inputTlsCa != nil && inputTlsCert == nil { throw ValidationError("--input-tls-ca needs --input-tls-cert") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.agent")
        let registry = PrometheusCollectorRegistry()
        var settings = try settings()
        settings.tls = try TLSOptions.load(try tls.files(), registry: registry, logger: logger)
        settings.connections = connections.settings
        settings.shutdownTimeout = connections.shutdown
        settings.syslogTLS = try syslogTls.map { try parseEndpoint($0, option: "--syslog-tls") }
        settings.https = try https.map { try parseEndpoint($0, option: "--https") }
        settings.grpc = try grpcListen.map { try parseEndpoint($0, option: "--grpc-listen") }
        if let inputTlsCert, let inputTlsKey {
            if let inputTlsCa {
                settings.inputTLS = try TLSOptions.load(
                    TLSFiles(cert: inputTlsCert, key: inputTlsKey, ca: inputTlsCa), registry: registry, logger: logger,
                    flags: "--input-tls")
            } else {
                settings.inputTLS = try TLSOptions.loadServing(
                    cert: inputTlsCert, key: inputTlsKey, flags: "--input-tls", registry: registry, logger: logger)
            }
        }
        if let spool {
            let spoolSettings = Spool.Settings(directory: spool, maxBytes: try parseSize(spoolMax, option: "--spool-max"))
            do {
                settings.spool = try Spool(
                    settings: spoolSettings, logger: logger, metrics: PrometheusMetricsFactory(registry: registry))
            } catch {
                throw ValidationError("--spool: \(error)")
            }
        }
        let agent = Agent(configuration: settings, logger: logger, registry: registry)
        try await agent.bind()
        let reloader = HangupReloader(tls: [settings.tls, settings.inputTLS], logger: logger)
        let group = ServiceGroup(
            services: [agent, reloader], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        try await group.run()
    }
}
