import Logging
import ServiceLifecycle
import SluiceAuth
import SluiceTLS
import UnixSignals

/// Reads a member's keys again on SIGHUP, without a restart: a controller's
/// token keys (an old public key listed beside the new one during a
/// rotation), and the link certificate, key and CA of any member. A file
/// that cannot be used leaves what is in use as it was, and says why. Links
/// that are up keep their TLS sessions; new ones use the new files. Every
/// role runs one, with files or without: SIGHUP (`systemctl reload`) never
/// stops a process.
public struct HangupReloader: Service {
    let tokens: TokenVerifier?
    let tls: [LinkTLS]
    let logger: Logger

    public init(tokens: TokenVerifier? = nil, tls: [LinkTLS?] = [], logger: Logger) {
        self.tokens = tokens
        var distinct: [LinkTLS] = []
        for case let one? in tls where !distinct.contains(where: { $0 === one }) { distinct.append(one) }
        self.tls = distinct
        self.logger = logger
    }

    public func run() async throws {
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            await reload()
        }
    }

    func reload() async {
        if tokens == nil && tls.isEmpty {
            logger.notice("SIGHUP: no TLS files or token keys to read again")
        }
        if let tokens {
            do {
                let summary = try await tokens.reload()
                logger.notice("token keys read again", metadata: ["sluice.keys": "\(summary)"])
            } catch {
                logger.error("token keys not read again; the old ones stay in use", metadata: ["sluice.error": "\(error)"])
            }
        }
        for tls in tls {
            do {
                try tls.reload()
                logger.notice("TLS certificate read again", metadata: ["sluice.tls": "\(tls.summary)"])
            } catch {
                logger.error(
                    "TLS certificate not read again; the old one stays in use", metadata: ["sluice.error": "\(error)"])
            }
        }
    }
}
