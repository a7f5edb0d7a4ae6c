import ArgumentParser
import SluiceCLI

struct FirehoseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firehose",
        abstract: "Print every app's logs, each line with its app id in front (an admin token's right).")

    @Option(
        help: ArgumentHelp(
            "Readers with the same subscription id split the stream between them, each line to one; by default each run has an id of its own and gets everything.",
            valueName: "ID"))
    var subscription: String?

    @Flag(help: "Print one JSON envelope per line.")
    var json = false

    @OptionGroup var reader: ReaderOptions

    func validate() throws {
        if let subscription, subscription.isEmpty || subscription.contains("/") {
            throw ValidationError("--subscription must not be empty or hold a slash")
        }
    }

    func run() async throws {
        var logs = Logs(
            base: try reader.base(), app: "", json: json, color: Output.stdoutIsTerminal, token: reader.resolvedToken)
        logs.trustRoots = reader.trustRoots
        logs.firehose = subscription ?? "sluice-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try await plainly { try await logs.tail() }
    }
}
