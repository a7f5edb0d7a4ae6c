import ArgumentParser
import Logging
import SluiceCLI
import SluiceTransport
import SluiceWire

struct EmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emit",
        abstract: "Send a message, or every line of standard input, as an app's log lines.")

    @Option(
        help:
            "Controllers' ingress HOST:PORT, comma-separated, preferred first; on failure the next is used and unacknowledged lines are sent again (default: from $SLUICE_HOME/config.json, else 127.0.0.1:8090)."
    )
    var controller: String?

    @OptionGroup var source: SourceOptions
    @OptionGroup(title: "TLS (default: config.json's, which sluice up --tls writes)") var tls: TLSOptions

    @Flag(help: "Send the lines as ERR instead of OUT.")
    var err = false

    @Argument(help: "The message; without one, every line of standard input is sent.")
    var message: [String] = []

    func validate() throws {
        _ = try controllers()
    }

    func controllers() throws -> [Endpoint] {
        let list = try SluiceConfig.ingress(controller).map { try parseEndpoint($0, option: "--controller") }
        guard !list.isEmpty else { throw ValidationError("--controller names no controller") }
        return list
    }

    func run() async throws {
        var emit = Emit(
            controllers: try controllers(),
            fields: source.fields(isError: err))
        let files = try tls.files(fallback: controller == nil ? SluiceConfig.load()?.tls : nil)
        emit.tls = try TLSOptions.load(files, registry: nil, logger: Logger(label: "sluice.emit"))
        try await plainly {
            if message.isEmpty {
                try await emit.sendLines(from: 0)
            } else {
                try await emit.send(message: message.joined(separator: " "))
            }
        }
    }
}
