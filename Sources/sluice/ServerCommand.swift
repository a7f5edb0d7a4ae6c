import ArgumentParser
import ServiceLifecycle
import UnixSignals
import SluiceServer
import SluiceWire

struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server", abstract: "Run a buffer server: recent logs and live streams of the apps it owns.")

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

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try parseEndpoint(listen, option: "--listen")
        _ = try parseSize(memoryLimit, option: "--memory-limit")
        _ = try parseSize(maxFrame, option: "--max-frame")
        guard recentPerApp > 0 else { throw ValidationError("--recent-per-app must be at least 1") }
    }

    func run() async throws {
        let logger = logging.bootstrap(label: "sluice.server")
        let server = BufferServer(
            configuration: .init(
                zone: zone, listen: try parseEndpoint(listen, option: "--listen"),
                limits: .init(recentPerApp: recentPerApp, memoryLimit: try parseSize(memoryLimit, option: "--memory-limit")),
                maxFramePayload: try parseSize(maxFrame, option: "--max-frame")),
            logger: logger)
        try await server.bind()
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
