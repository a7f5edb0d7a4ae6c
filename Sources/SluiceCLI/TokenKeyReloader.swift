import Logging
import ServiceLifecycle
import SluiceAuth
import UnixSignals

/// Reads a controller's token keys again on SIGHUP, so that keys can be
/// replaced (an old public key listed beside the new one during a rotation)
/// without a restart. A key file that cannot be used leaves the keys in use
/// as they were, and says why.
public struct TokenKeyReloader: Service {
    let verifier: TokenVerifier
    let logger: Logger

    public init(verifier: TokenVerifier, logger: Logger) {
        self.verifier = verifier
        self.logger = logger
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            do {
                let summary = try await verifier.reload()
                logger.notice("token keys read again", metadata: ["sluice.keys": "\(summary)"])
            } catch {
                logger.error("token keys not read again; the old ones stay in use", metadata: ["sluice.error": "\(error)"])
            }
        }
    }
}
