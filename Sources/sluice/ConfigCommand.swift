import ArgumentParser
import Foundation
import SluiceCLI

/// `sluice config check|convert|keys`: configuration files checked,
/// converted and described without starting anything.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check a configuration file, convert a JSON cluster file to YAML, or list a role's keys.",
        subcommands: [Check.self, Convert.self, Keys.self])

    /// The roles a file configures, and their commands.
    static let roles: [String: any ParsableCommand.Type] = [
        "server": ServerCommand.self, "controller": ControllerCommand.self, "agent": AgentCommand.self, "up": UpCommand.self,
    ]

    /// `role`'s arguments from its configuration file, command line and
    /// environment (see ConfigArguments); nil when `role` reads none.
    static func prepare(role: String, arguments: [String], environment: [String: String]) throws(ConfigError)
        -> ConfigArguments?
    {
        guard let command = roles[role] else { return nil }
        var path = environment["SLUICE_CONFIG"].flatMap { $0.isEmpty ? nil : $0 }
        for (index, token) in arguments.enumerated() {
            if token == "--" { break }
            if token == "--config", index + 1 < arguments.count { path = arguments[index + 1] }
            if token.hasPrefix("--config=") { path = String(token.dropFirst("--config=".count)) }
        }
        let file = try path.map { (path) throws(ConfigError) in try ConfigFile.load(path: path) }
        if let role = file?.role, role != self.role(of: command), let file {
            throw ConfigError(source: file.path, message: "is for sluice \(role), not sluice \(self.role(of: command))")
        }
        var withConfig = arguments
        if let path, !arguments.contains(where: { $0 == "--config" || $0.hasPrefix("--config=") }) {
            withConfig = ["--config", path] + arguments
        }
        return try ConfigArguments(
            commandLine: withConfig, file: file, environment: environment, schema: FlagSchema.of(command))
    }

    static func role(of command: any ParsableCommand.Type) -> String {
        command.configuration.commandName ?? "\(command)"
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configuration file as its role reads it at start; say what is wrong and on which line.")

        @Argument(help: "The YAML (or JSON) file.")
        var file: String

        @Option(help: "The role the file is for: server, controller, agent or up (default: the file's own role key).")
        var role: String?

        @Flag(help: "Check it with this shell's SLUICE_* variables too, as the role would read them at start.")
        var withEnvironment = false

        func run() throws {
            let config: ConfigFile
            do { config = try ConfigFile.load(path: file) } catch { throw CommandFailure(error.description) }
            guard let role = role ?? config.role else {
                throw CommandFailure("\(file): say which role it is for: --role server|controller|agent|up, or a role key in the file")
            }
            guard ConfigCommand.roles[role] != nil else {
                throw ValidationError("--role: '\(role)' is not one of server, controller, agent, up")
            }
            let prepared: ConfigArguments
            do {
                // SLUICE_CONFIG names another file: this one is the one checked.
                let environment = withEnvironment
                    ? ProcessInfo.processInfo.environment.filter { $0.key != "SLUICE_CONFIG" } : [:]
                prepared = try ConfigCommand.prepare(role: role, arguments: ["--config", file], environment: environment)!
            } catch {
                throw CommandFailure(error.description)
            }
            do {
                _ = try Sluice.parseAsRoot([role] + prepared.arguments)
            } catch {
                throw CommandFailure(prepared.placing(Sluice.message(for: error)))
            }
            print("\(file): ok for sluice \(role)")
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a cluster file (JSON, as deploy/local/cluster.json) as YAML, with the flags' key spelling.")

        @Argument(help: "The cluster file.")
        var file: String

        @Option(help: ArgumentHelp("Write to this file instead of standard output.", valueName: "FILE"))
        var output: String?

        func run() throws {
            let text: String
            do {
                guard let cluster = try ConfigFile.load(path: file).cluster else {
                    throw CommandFailure("\(file) describes no cluster: it has no zones")
                }
                text = "# Converted from \(file) by sluice config convert.\n" + (try ConfigFile.yaml(of: cluster))
            } catch let error as ConfigError {
                throw CommandFailure(error.description)
            }
            if let output {
                do { try text.write(toFile: output, atomically: true, encoding: .utf8) } catch {
                    throw CommandFailure("cannot write \(output): \(error.localizedDescription)")
                }
            } else {
                print(text, terminator: "")
            }
        }
    }

    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the keys a role's configuration file takes, with their environment variables.")

        @Argument(help: "server, controller, agent or up.")
        var role: String

        func validate() throws {
            guard ConfigCommand.roles[role] != nil else {
                throw ValidationError("'\(role)' is not one of server, controller, agent, up")
            }
        }

        func run() {
            let schema = FlagSchema.of(ConfigCommand.roles[role]!)
            for key in schema.kinds.keys.sorted() where !ConfigArguments.reserved.contains(key) {
                let kind: String
                switch schema.kinds[key]! {
                case .flag: kind = "true|false"
                case .value: kind = "value"
                case .values: kind = "list"
                }
                print("\(key)\t\(kind)\t\(ConfigArguments.Schema.environmentName(key))")
            }
        }
    }
}
