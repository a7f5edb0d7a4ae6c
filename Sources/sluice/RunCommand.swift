import ArgumentParser
import Foundation
import SluiceCLI
import SluiceTransport
import SluiceWire

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command, pass its output through unchanged, and ship each line to the local agent.",
        discussion: """
            Standard output lines go as OUT, standard error lines as ERR. The command never waits on \
            Sluice: with no agent, or one that is not reading, lines are dropped oldest first and counted. \
            SIGINT and SIGTERM are passed on; sluice run exits with the command's status.
            """)

    @OptionGroup var source: SourceOptions

    @Option(help: "The agent's HOST:PORT (default: from $SLUICE_HOME/config.json, else 127.0.0.1:3457).")
    var agent: String?

    @Option(help: "Memory for lines not yet delivered to the agent.")
    var buffer: String = "16MiB"

    @Option(help: "Cloud Foundry's per-instance log rate limit, e.g. 16KiB/s or 1M: over it this command's lines are dropped for a second and the app is told. Off by default.")
    var instanceLogRateLimit: String?

    @Argument(parsing: .captureForPassthrough, help: "-- CMD ARGS…")
    var command: [String] = []

    var commandLine: [String] { command.first == "--" ? Array(command.dropFirst()) : command }

    func validate() throws {
        guard !commandLine.isEmpty else { throw ValidationError("name the command to run: sluice run --app APP -- CMD ARGS…") }
        _ = try parseEndpoint(SluiceConfig.agent(agent), option: "--agent")
        _ = try parseSize(buffer, option: "--buffer")
        _ = try instanceLogRateLimit.flatMap { try parseRate($0, option: "--instance-log-rate-limit") }
    }

    func run() async throws {
        var run = Run(
            agent: try parseEndpoint(SluiceConfig.agent(agent), option: "--agent"),
            fields: source.fields())
        run.bufferBytes = try parseSize(buffer, option: "--buffer")
        run.instanceLogRateLimit = try instanceLogRateLimit.flatMap { try parseRate($0, option: "--instance-log-rate-limit") }
        let status: Int32
        do {
            status = try await run.run(commandLine)
        } catch let error as Run.SpawnFailed {
            FileHandle.standardError.write(Data("sluice run: \(error)\n".utf8))
            throw ExitCode(127)
        }
        throw ExitCode(status)
    }
}
