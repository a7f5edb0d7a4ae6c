import ArgumentParser
import Logging
import SluiceBindings
import SluiceCLI
import SluiceDrain

/// What every buffer server takes: `sluice server`, and `sluice up` for
/// all its servers.
struct ServerOptions: ParsableArguments {
    @Option(help: "Envelopes kept per app.")
    var recentPerApp: Int = 1000

    @Option(help: "Bytes kept over all apps (e.g. 256MiB); past it the largest apps lose their oldest lines first.")
    var memoryLimit: String = "256MiB"

    @Option(help: "Envelopes each drain holds while its endpoint is slow or down; past it the oldest are dropped.")
    var drainQueue: Int = 10_000

    @Option(help: "Bytes each drain holds at most (e.g. 64MiB); past it the oldest are dropped.")
    var drainQueueBytes: String = "64MiB"

    func validate() throws {
        guard recentPerApp > 0 else { throw ValidationError("--recent-per-app must be at least 1") }
        guard drainQueue > 0 else { throw ValidationError("--drain-queue must be at least 1") }
        _ = try parseSize(memoryLimit, option: "--memory-limit")
        _ = try parseSize(drainQueueBytes, option: "--drain-queue-bytes")
    }

    func apply(to settings: inout MemberSettings) throws {
        settings.recentPerApp = recentPerApp
        settings.memoryLimit = try parseSize(memoryLimit, option: "--memory-limit")
        settings.drains.queueCapacity = drainQueue
        settings.drains.queueBytes = try parseSize(drainQueueBytes, option: "--drain-queue-bytes")
    }
}

/// What every traffic controller takes: `sluice controller`, and `sluice
/// up` for all its controllers.
struct ControllerOptions: ParsableArguments {
    @Option(help: "Envelopes waiting for one websocket reader before its oldest are dropped.")
    var tailQueue: Int = 100_000

    func validate() throws {
        guard tailQueue > 0 else { throw ValidationError("--tail-queue must be at least 1") }
    }

    func apply(to settings: inout MemberSettings) {
        settings.tailQueueLimit = tailQueue
    }
}

/// What servers and controllers both take.
struct LinkOptions: ParsableArguments {
    @Option(help: "Largest frame payload accepted (e.g. 4MiB).")
    var maxFrame: String = "4MiB"

    func validate() throws {
        _ = try parseSize(maxFrame, option: "--max-frame")
    }

    func apply(to settings: inout MemberSettings) throws {
        settings.maxFramePayload = try parseSize(maxFrame, option: "--max-frame")
    }
}

/// Where drain bindings are kept.
struct BindingsOptions: ParsableArguments {
    @Option(
        help:
            "Drain bindings: a SQLite file or a postgres:// URL (default $SLUICE_BINDINGS, else $SLUICE_HOME/bindings.sqlite)."
    )
    var bindings: String?

    /// The store, opened; a store that cannot be opened is a runtime
    /// failure, said without the usage text.
    func open(logger: Logger) async throws -> any BindingStore {
        let spec = SluiceConfig.bindings(bindings)
        do {
            return try await BindingStores.open(spec, logger: logger)
        } catch {
            throw CommandFailure("cannot open the bindings store \(BindingStores.redacted(spec)): \(ErrorText.describe(error))")
        }
    }

    var redacted: String { BindingStores.redacted(SluiceConfig.bindings(bindings)) }
}
