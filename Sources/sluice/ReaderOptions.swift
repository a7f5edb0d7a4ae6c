import ArgumentParser
import SluiceCLI

/// Where a reader's requests go and the token they carry: `sluice logs`,
/// `sluice firehose` and `sluice drains`.
struct ReaderOptions: ParsableArguments {
    @Option(help: "The controller's HTTP URL (default: from $SLUICE_HOME/config.json, else http://127.0.0.1:8080).")
    var controller: String?

    @Option(help: "The token to send (default: $SLUICE_TOKEN, else the one sluice up wrote into $SLUICE_HOME/config.json).")
    var token: String?

    func validate() throws {
        _ = try base()
    }

    func base() throws -> HTTPURL {
        do {
            return try HTTPURL(parsing: SluiceConfig.http(controller))
        } catch {
            throw ValidationError("--controller: \(error)")
        }
    }

    /// The token to send: `--token`, else `$SLUICE_TOKEN`, else config.json's.
    var resolvedToken: String? { SluiceConfig.token(token) }

    func drains() throws -> Drains {
        Drains(base: try base(), token: resolvedToken)
    }
}
