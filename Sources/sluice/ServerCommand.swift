import ArgumentParser
import Prometheus
import ServiceLifecycle
import SluiceBindings
import SluiceCLI
import SluiceDrain
import SluiceServer
import SluiceTransport
import SluiceWire
import UnixSignals

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "Run a buffer server: recent logs and live streams of the apps it owns.")

    @Option(help: "A cluster file; with --name, this server's settings come from it.")
    var config: String?

    @Option(help: "This server's name in the cluster file.")
    var name: String?

    @Option(help: "The zone this server belongs to.")
    var zone: String = "z1"

    @Option(help: "HOST:PORT to listen on for controllers.")
    var listen: String = "127.0.0.1:9001"

    @Option(help: "Envelopes kept per app.")
    var recentPerApp: Int = 1000

    @Option(help: "Bytes kept over all apps (e.g. 256MiB); past it the largest apps lose their oldest lines first.")
    var memoryLimit: String = "256MiB"

    @Option(help: "Largest frame payload accepted (e.g. 4MiB).")
    var maxFrame: String = "4MiB"

    @Option(help: "Drain bindings: a SQLite file or a postgres:// URL (default $SLUICE_BINDINGS, else $SLUICE_HOME/bindings.sqlite).")
    var bindings: String?

    @Option(help: "Envelopes each drain holds while its endpoint is slow or down; past it the oldest are dropped.")
    var drainQueue: Int = 10_000

    @Option(help: "Bytes each drain holds at most (e.g. 64MiB); past it the oldest are dropped.")
    var drainQueueBytes: String = "64MiB"

    @Option(help: "HOST:PORT for GET /metrics (Prometheus text) and /healthz; none if not given.")
    var metrics: String?

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try settings()
    }

    /// The settings, from the cluster file when one is named.
    func settings() throws -> BufferServer.Configuration {
        var zone = self.zone
        var listen = self.listen
        var recentPerApp = self.recentPerApp
        var memoryLimit = self.memoryLimit
        if let config {
            guard let name else { throw ValidationError("--config needs --name: which server of the file to run") }
            let cluster: ClusterConfig
            do { cluster = try ClusterConfig.load(path: config) } catch { throw ValidationError("\(error)") }
            guard case .server(let memberZone, let entry)? = cluster.member(named: name) else {
                throw ValidationError("\(config) has no buffer server named \(name)")
            }
            zone = memberZone
            listen = entry.listen
            recentPerApp = entry.recentPerApp ?? recentPerApp
            memoryLimit = entry.memoryLimit ?? memoryLimit
        }
        guard recentPerApp > 0 else { throw ValidationError("--recent-per-app must be at least 1") }
        guard drainQueue > 0 else { throw ValidationError("--drain-queue must be at least 1") }
        if let metrics { _ = try parseEndpoint(metrics, option: "--metrics") }
        return .init(
            zone: zone, listen: try parseEndpoint(listen, option: "--listen"),
            limits: .init(recentPerApp: recentPerApp, memoryLimit: try parseSize(memoryLimit, option: "--memory-limit")),
            maxFramePayload: try parseSize(maxFrame, option: "--max-frame"))
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.server")
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        let server = BufferServer(configuration: try settings(), logger: logger, metrics: factory)
        let bindingsSpec = SluiceConfig.bindings(bindings)
        let store: any BindingStore
        do {
            store = try await BindingStores.open(bindingsSpec, logger: logger)
        } catch {
            throw ValidationError("--bindings \(BindingStores.redacted(bindingsSpec)): \(error)")
        }
        let drains = DrainManager(
            store: server.store, bindings: store,
            settings: .init(
                queueCapacity: drainQueue, queueBytes: try parseSize(drainQueueBytes, option: "--drain-queue-bytes")),
            logger: logger, metrics: factory)
        try await server.bind()
        var services: [any Service] = [server, drains]
        if let metrics {
            let endpoint = MetricsHTTPServer(
                listen: try parseEndpoint(metrics, option: "--metrics"), logger: logger,
                render: { registry.emitToBuffer() })
            try await endpoint.bind()
            services.append(endpoint)
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
