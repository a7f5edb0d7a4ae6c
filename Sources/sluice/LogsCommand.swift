import ArgumentParser
import SluiceCLI
import SluiceWire

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print an app's logs as cf logs does: recent lines, or a live tail.")

    @Argument(help: "The app id.")
    var app: String

    @Flag(help: "Print the recent lines, oldest first, and exit.")
    var recent = false

    @Flag(help: "Print one JSON envelope per line.")
    var json = false

    @Option(help: "The controller's HTTP URL (default: from $SLUICE_HOME/config.json, else http://127.0.0.1:8080).")
    var controller: String?

    func validate() throws {
        do {
            _ = try HTTPURL(parsing: SluiceConfig.http(controller))
        } catch {
            throw ValidationError("--controller: \(error)")
        }
    }

    func run() async throws {
        let logs = Logs(
            base: try HTTPURL(parsing: SluiceConfig.http(controller)), app: app, json: json,
            color: Output.stdoutIsTerminal)
        try await plainly {
            if recent {
                try await logs.recent()
            } else {
                try await logs.tail()
            }
        }
    }
}
