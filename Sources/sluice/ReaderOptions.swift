import ArgumentParser
import SluiceCLI
import SluiceTLS

/// Where a reader's requests go and the token they carry: `sluice logs`,
/// `sluice firehose` and `sluice drains`.
struct ReaderOptions: ParsableArguments {
    @Option(help: "The controller's HTTP URL (default: from $SLUICE_HOME/config.json, else http://127.0.0.1:8080).")
    var controller: String?

    @Option(help: "The token to send (default: $SLUICE_TOKEN, else the one sluice up wrote into $SLUICE_HOME/config.json).")
    var token: String?

    @Option(
        help: ArgumentHelp(
            "PEM CA certificates for an https:// controller (default: config.json's, which sluice up --tls writes; else the system's).",
            valueName: "FILE"))
    var ca: String?

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

    /// The CA file to trust: `--ca`, else config.json's when the
    /// controller is config.json's too.
    var trustRoots: String? { ca ?? (controller == nil ? SluiceConfig.load()?.tls?.ca : nil) }

    func drains() throws -> Drains {
        var drains = Drains(base: try base(), token: resolvedToken)
        drains.trustRoots = trustRoots
        return drains
    }
}
