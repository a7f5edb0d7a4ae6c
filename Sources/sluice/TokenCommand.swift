import ArgumentParser
import Foundation
import SluiceAuth
import SluiceCLI

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Make tokens for readers of Sluice's logs.", subcommands: [Create.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a token: an admin's (every app, the firehose, every drain) or one that reads the apps named.")

        @Flag(help: "An admin token (scope sluice.admin).")
        var admin = false

        @Option(name: .customLong("app"), help: ArgumentHelp("An app the token may read and manage drains of. Repeatable.", valueName: "APP"))
        var apps: [String] = []

        @Option(help: "How long it is valid: e.g. 90s, 30m, 1h, 7d.")
        var ttl: String = "1h"

        @Option(
            help: ArgumentHelp(
                "The signing key: a shared secret file (HS256) or a PEM private key (RSA: RS256, EC P-256: ES256). Default: $SLUICE_HOME/token-key, the key sluice up made.",
                valueName: "FILE"))
        var key: String?

        @Option(help: "The token's iss, if the controllers require one.")
        var issuer: String?

        @Option(help: "The token's aud, if the controllers require one.")
        var audience: String?

        @Option(help: "Who the token is for (its sub), for the controllers' logs.")
        var subject: String?

        func validate() throws {
            guard admin != !apps.isEmpty else { throw ValidationError("give --admin or at least one --app, not both") }
            guard apps.allSatisfy({ !$0.isEmpty }) else { throw ValidationError("--app must not be empty") }
            _ = try Self.seconds(ttl)
        }

        /// `90`, `90s`, `30m`, `1h`, `7d`.
        static func seconds(_ text: String) throws -> TimeInterval {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            var number = Substring(text)
            var unit = 1.0
            if let last = text.last, let factor = units[last] {
                unit = factor
                number = number.dropLast()
            }
            guard let value = Double(number), value > 0 else {
                throw ValidationError("--ttl: '\(text)' is not a duration; write e.g. 90s, 30m, 1h or 7d")
            }
            return value * unit
        }

        func run() async throws {
            let keyFile = key ?? SluiceConfig.tokenKeyPath
            do {
                let token = try await TokenIssuer.create(
                    keyFile: keyFile, admin: admin, apps: apps, ttl: try Self.seconds(ttl), issuer: issuer,
                    audience: audience, subject: subject)
                print(token)
            } catch {
                throw CommandFailure(
                    key == nil && !FileManager.default.fileExists(atPath: keyFile)
                        ? "no signing key at \(keyFile): give --key FILE, or run sluice up once to make one"
                        : "\(error)")
            }
        }
    }
}
