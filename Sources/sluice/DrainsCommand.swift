import ArgumentParser
import SluiceCLI

struct DrainsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drains",
        abstract: "Send an app's logs to syslog or HTTPS endpoints: add, list and remove drains.",
        subcommands: [Add.self, List.self, Remove.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a drain: syslog://HOST:PORT, syslog-tls://HOST:PORT, syslog-udp://HOST:PORT or https://…")

        @Argument(help: "The app id.")
        var app: String

        @Argument(help: "Where to send the app's logs.")
        var url: String

        @Option(help: "A name for the drain, unique within the app (default: its id).")
        var name: String?

        @OptionGroup var options: ReaderOptions

        func run() async throws {
            do {
                let binding = try await options.drains().add(app: app, url: url, name: name)
                print("Added drain \(binding.name) (\(binding.id)) to \(binding.app): \(binding.url)")
            } catch let failure as Drains.Failure {
                throw CommandFailure(failure.description)
            } catch {
                throw CommandFailure(ErrorText.describe(error))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the drains of an app, or of every app.")

        @Argument(help: "The app id (default: every app).")
        var app: String?

        @OptionGroup var options: ReaderOptions

        func run() async throws {
            do {
                let bindings = try await options.drains().list(app: app)
                if bindings.isEmpty {
                    print(app.map { "No drains for \($0)." } ?? "No drains.")
                } else {
                    for line in Drains.table(bindings) { print(line) }
                }
            } catch let failure as Drains.Failure {
                throw CommandFailure(failure.description)
            } catch {
                throw CommandFailure(ErrorText.describe(error))
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an app's drain, by id or name.")

        @Argument(help: "The app id.")
        var app: String

        @Argument(help: "The drain's id or name.")
        var drain: String

        @OptionGroup var options: ReaderOptions

        func run() async throws {
            do {
                try await options.drains().remove(app: app, drain: drain)
                print("Removed drain \(drain) from \(app).")
            } catch let failure as Drains.Failure {
                throw CommandFailure(failure.description)
            } catch {
                throw CommandFailure(ErrorText.describe(error))
            }
        }
    }
}
