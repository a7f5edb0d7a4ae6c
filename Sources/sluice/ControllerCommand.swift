import ArgumentParser
import Logging
import Prometheus
import ServiceLifecycle
import UnixSignals
import SluiceController
import SluiceWire

struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run a traffic controller: route ingress to buffer servers, serve recent logs and tails.")

    @Option(help: "The zone this controller belongs to; ingress goes to this zone's servers.")
    var zone: String = "z1"

    @Option(help: "HOST:PORT for framed envelope ingress (sluice emit, agents).")
    var ingress: String = "127.0.0.1:8090"

    @Option(help: "HOST:PORT for the HTTP API (recent logs, websocket streams, /healthz, /metrics).")
    var http: String = "127.0.0.1:8080"

    @Option(help: "A zone's buffer servers: ZONE=HOST:PORT,HOST:PORT. Repeat for each zone.")
    var servers: [String] = []

    @Option(help: "Largest frame payload accepted (e.g. 4MiB).")
    var maxFrame: String = "4MiB"

    @Option(help: "Envelopes waiting for one websocket reader before its oldest are dropped.")
    var tailQueue: Int = 10_000

    @OptionGroup var logging: LoggingOptions

    func zones() throws -> [String: [Endpoint]] {
        var zones: [String: [Endpoint]] = [:]
        for entry in servers {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ValidationError("--servers '\(entry)': expected ZONE=HOST:PORT,HOST:PORT")
            }
            let endpoints = try parts[1].split(separator: ",").map { try parseEndpoint(String($0), option: "--servers") }
            guard !endpoints.isEmpty else { throw ValidationError("--servers '\(entry)' names no server") }
            zones[String(parts[0]), default: []].append(contentsOf: endpoints)
        }
        return zones
    }

    func validate() throws {
        _ = try parseEndpoint(ingress, option: "--ingress")
        _ = try parseEndpoint(http, option: "--http")
        _ = try parseSize(maxFrame, option: "--max-frame")
        guard try zones()[zone] != nil else {
            throw ValidationError("--servers must name at least one server of this controller's zone '\(zone)'")
        }
        guard tailQueue > 0 else { throw ValidationError("--tail-queue must be at least 1") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.controller")
        let zones = try zones()
        if zones.count > 1 {
            logger.warning("servers of other zones are accepted but not read yet: this controller reads its own zone")
        }
        let registry = PrometheusCollectorRegistry()
        let controller = Controller(
            configuration: .init(
                zone: zone, ingress: try parseEndpoint(ingress, option: "--ingress"),
                http: try parseEndpoint(http, option: "--http"), servers: zones[zone]!,
                maxFramePayload: try parseSize(maxFrame, option: "--max-frame"), tailQueueLimit: tailQueue),
            logger: logger, registry: registry)
        try await controller.bind()
        let group = ServiceGroup(services: [controller], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
