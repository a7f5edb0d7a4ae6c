import ArgumentParser
import Foundation
import Logging
import SluiceCLI
import SluiceTransport
import SluiceShipping
import SluiceWire

@main
struct Sluice: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "A log router for platforms that run many apps on many hosts.",
        subcommands: [
            UpCommand.self, EmitCommand.self, LogsCommand.self, RunCommand.self, AgentCommand.self, ServerCommand.self,
            ControllerCommand.self, DrainsCommand.self, FirehoseCommand.self, TokenCommand.self, CertsCommand.self,
            BenchCommand.self, ConfigCommand.self, UICommand.self,
        ])

    /// ArgumentParser's main, with a role's configuration file and
    /// `SLUICE_*` environment read first (ConfigArguments), and an error
    /// about a setting from either placed at its line or variable.
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var prepared: ConfigArguments?
        if let role = arguments.first {
            do {
                prepared = try ConfigCommand.prepare(
                    role: role, arguments: Array(arguments.dropFirst()), environment: ProcessInfo.processInfo.environment)
            } catch {
                FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
            if let prepared { arguments = [role] + prepared.arguments }
        }
        do {
            var command = try parseAsRoot(arguments)
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if let prepared, exitCode(for: error) != .success {
                let message = message(for: error)
                let placed = prepared.placing(message)
                if placed != message {
                    FileHandle.standardError.write(Data("Error: \(placed)\n".utf8))
                    Foundation.exit(exitCode(for: error).rawValue)
                }
            }
            exit(withError: error)
        }
    }
}

struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func bootstrap(label: String) -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }
}

/// Who a log line is from: the options `emit` and `run` share.
struct SourceOptions: ParsableArguments {
    @Option(help: "The app id (the envelopes' source_id).")
    var app: String

    @Option(help: "The instance id.")
    var instance: String = "0"

    @Option(help: "The source type tag.")
    var sourceType: String = "APP/PROC/WEB"

    func validate() throws {
        guard !app.isEmpty else { throw ValidationError("--app must not be empty") }
    }

    func fields(isError: Bool = false) -> LogEnvelopeFields {
        LogEnvelopeFields(sourceID: app, instanceID: instance, sourceType: sourceType, isError: isError)
    }
}

func parseEndpoint(_ text: String, option: String) throws -> Endpoint {
    do {
        return try Endpoint(parsing: text)
    } catch {
        throw ValidationError("\(option): \(error)")
    }
}

func parseSize(_ text: String, option: String) throws -> Int {
    guard let size = ByteSize.parse(text), size > 0 else {
        throw ValidationError("\(option): '\(text)' is not a size; write e.g. 4194304, 64KiB, 256MiB or 1GiB")
    }
    return size
}

/// A log rate in bytes per second, as `cf push -l` takes it: a size
/// (`16384`, `16KiB`, or Cloud Foundry's `16K`, `1M`, `1G`), optionally
/// followed by `/s`; `0` lets nothing through; `-1` is no limit (nil).
func parseRate(_ text: String, option: String) throws -> Int? {
    var size = text.hasSuffix("/s") ? String(text.dropLast(2)) : text
    if size == "-1" { return nil }
    if size == "0" { return 0 }
    if let last = size.last, "KMG".contains(last) { size += "iB" }
    guard let bytes = ByteSize.parse(size), bytes > 0 else {
        throw ValidationError("\(option): '\(text)' is not a rate; write e.g. 16384, 16KiB/s or 1M (bytes per second), 0 or -1")
    }
    return bytes
}

/// Runs a command's work. A failure found while running (a controller that
/// does not answer, a refused request) is said in plain words, without the
/// usage text that a mistyped flag gets.
func plainly<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as CommandFailure {
        throw error
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw CommandFailure(error.message)
    } catch {
        throw CommandFailure(ErrorText.describe(error))
    }
}
