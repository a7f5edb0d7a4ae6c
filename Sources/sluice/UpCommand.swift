import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import SluiceCLI
import SluiceWire


struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up", abstract: "Run a whole local cluster in one process: a controller and buffer servers.")

    @Option(help: "Buffer servers to run.")
    var servers: Int = 2

    @Option(help: "Port of the controller's HTTP API.")
    var httpPort: Int = 8080

    @Option(help: "Port of the controller's envelope ingress.")
    var ingressPort: Int = 8090

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (1...64).contains(servers) else { throw ValidationError("--servers must be from 1 to 64") }
        guard (0...65535).contains(httpPort), (0...65535).contains(ingressPort) else {
            throw ValidationError("ports must be from 0 to 65535")
        }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.up")
        let cluster = LocalCluster(
            configuration: .init(servers: servers, httpPort: httpPort, ingressPort: ingressPort), logger: logger)
        let endpoints = try await cluster.start()
        let config = SluiceConfig(controllers: [
            .init(zone: "z1", ingress: "\(endpoints.ingress)", http: "http://\(endpoints.http)")
        ])
        try config.save()
        print(
            """
            Sluice is up: 1 controller and \(servers) buffer server\(servers == 1 ? "" : "s") in zone z1.
              ingress  \(endpoints.ingress)  (sluice emit)
              http     http://\(endpoints.http)  (sluice logs; /apps/APP/recentlogs, /apps/APP/stream, /healthz, /metrics)
              servers  \(endpoints.servers.map(\.description).joined(separator: ", "))
              config   \(SluiceConfig.path.path)
            Try: sluice emit --app my-app "hello"   then   sluice logs my-app --recent
            Ctrl-C stops it.
            """)
        Output.flushStandardOutput()
        let group = ServiceGroup(
            services: cluster.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
