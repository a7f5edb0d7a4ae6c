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

    @OptionGroup var reader: ReaderOptions

    func run() async throws {
        var logs = Logs(
            base: try reader.base(), app: app, json: json, color: Output.stdoutIsTerminal, token: reader.resolvedToken)
        logs.trustRoots = reader.trustRoots
        try await plainly {
            if recent {
                try await logs.recent()
            } else {
                try await logs.tail()
            }
        }
    }
}
