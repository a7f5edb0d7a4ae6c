import ArgumentParser
import Foundation
import Logging
import SluiceAuth
import SluiceBindings
import SluiceCLI
import SluiceConsole
import SluiceController
import SluiceDrain
import NIOCore
import SluiceTransport

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

    @Option(
        help: ArgumentHelp(
            "Bytes per second of log lines each app may store, from all its sources together (e.g. 1MiB/s); past it lines are dropped and counted, and the app's stream is told once a second. An app's own limit (PUT /apps/APP/log-rate-limit) wins. 0: nothing; off by default.",
            valueName: "RATE"))
    var appLogRateLimit: String?

    func validate() throws {
        guard recentPerApp > 0 else { throw ValidationError("--recent-per-app must be at least 1") }
        _ = try appLogRateLimit.flatMap { try parseRate($0, option: "--app-log-rate-limit") }
        guard drainQueue > 0 else { throw ValidationError("--drain-queue must be at least 1") }
        _ = try parseSize(memoryLimit, option: "--memory-limit")
        _ = try parseSize(drainQueueBytes, option: "--drain-queue-bytes")
    }

    func apply(to settings: inout MemberSettings) throws {
        settings.recentPerApp = recentPerApp
        settings.appLogRateLimit = try appLogRateLimit.flatMap { try parseRate($0, option: "--app-log-rate-limit") }
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

    @Option(help: "Live readers (websocket tails and firehose readers) at once; past it a new one is answered 429.")
    var maxReaders: Int = 10_000

    @Option(help: "Live readers at once of one app, or of one firehose subscription; past it a new one is answered 429.")
    var maxReadersPerApp: Int = 100

    @Option(
        help: ArgumentHelp(
            "Seconds of what each own-zone server acknowledged to keep, handed to the servers standing in when it stops, so that reads a little behind (cf logs) miss nothing; 0: none.",
            valueName: "seconds"))
    var handoverWindow: Double = 5

    @Option(help: "Bytes of buffer each link's handover may hold at most (e.g. 32MiB); the oldest go first.")
    var handoverMaxBytes: String = "32MiB"

    @Flag(help: "Serve no web console at / (the HTTP API stays).")
    var noUi = false

    @Option(help: "The path a reverse proxy serves the controller under (e.g. /sluice): the console's links and requests go there; requests with or without it are taken.")
    var uiBasePath: String = "/"

    func validate() throws {
        guard tailQueue > 0 else { throw ValidationError("--tail-queue must be at least 1") }
        guard maxReaders > 0 else { throw ValidationError("--max-readers must be at least 1") }
        guard maxReadersPerApp > 0 else { throw ValidationError("--max-readers-per-app must be at least 1") }
        guard handoverWindow >= 0, handoverWindow <= 3600 else {
            throw ValidationError("--handover-window: \(handoverWindow) is not between 0 and 3600 seconds")
        }
        _ = try parseSize(handoverMaxBytes, option: "--handover-max-bytes")
        _ = try basePath()
    }

    func basePath() throws -> ConsoleBasePath {
        do { return try ConsoleBasePath(parsing: uiBasePath) } catch { throw ValidationError("--ui-base-path: \(error)") }
    }

    func apply(to settings: inout MemberSettings) throws {
        settings.tailQueueLimit = tailQueue
        settings.maxReaders = maxReaders
        settings.maxReadersPerApp = maxReadersPerApp
        settings.console = .init(enabled: !noUi, basePath: try basePath())
        settings.handover = .init(
            window: .nanoseconds(Int64(handoverWindow * 1e9)), maxBytes: try parseSize(handoverMaxBytes, option: "--handover-max-bytes"))
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

/// A listener's limits: servers, controllers, agents and `sluice up`.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Connections each listener keeps open at once; past it a new one is closed at once, logged and counted.")
    var maxConnections: Int = 10_000

    @Option(
        help:
            "Seconds a connection may take to send its first message, or to finish one it began (a frame, a syslog message, an HTTP request); past it the connection is closed, logged and counted. 0: no limit."
    )
    var stallTimeout: Double = 30

    @Option(
        help:
            "Seconds a graceful stop (SIGTERM) may take: a buffer server waits this long for its zone's controllers to take its apps and history (docs/reliability.md)."
    )
    var shutdownTimeout: Double = 10

    /// `--shutdown-timeout`.
    var shutdown: TimeAmount { .milliseconds(Int64(shutdownTimeout * 1000)) }

    func validate() throws {
        guard (0...3600).contains(shutdownTimeout) else {
            throw ValidationError("--shutdown-timeout must be from 0 to 3600 seconds")
        }
        guard maxConnections > 0 else { throw ValidationError("--max-connections must be at least 1") }
        guard stallTimeout == 0 || (0.1...86_400).contains(stallTimeout) else {
            throw ValidationError("--stall-timeout must be 0 (none) or from 0.1 to 86400 seconds")
        }
    }

    var settings: ConnectionGuard.Settings {
        ConnectionGuard.Settings(
            maxConnections: maxConnections,
            stallTimeout: stallTimeout > 0 ? .milliseconds(Int64(stallTimeout * 1000)) : nil)
    }
}

/// Where drain bindings are kept.
struct BindingsOptions: ParsableArguments {
    @Option(
        help:
            "Drain bindings: a SQLite file or a postgres:// URL (default $SLUICE_HOME/bindings.sqlite; a non-empty $SLUICE_BINDINGS wins over this flag, as every SLUICE_* variable does)."
    )
    var bindings: String?

    @Option(
        help: ArgumentHelp(
            "A file holding the PostgreSQL password (its first line), used instead of one in the --bindings URL.",
            valueName: "FILE"))
    var bindingsPasswordFile: String?

    /// The store, opened; a store that cannot be opened is a runtime
    /// failure, said without the usage text.
    func open(logger: Logger) async throws -> any BindingStore {
        let spec = SluiceConfig.bindings(bindings)
        do {
            let password = try bindingsPasswordFile.map { path in
                do {
                    let text = try String(contentsOfFile: path, encoding: .utf8)
                    return String(text.prefix { $0 != "\n" && $0 != "\r" })
                } catch {
                    throw CommandFailure("--bindings-password-file: cannot read \(path): \(error.localizedDescription)")
                }
            }
            return try await BindingStores.open(spec, password: password, logger: logger)
        } catch {
            throw CommandFailure("cannot open the bindings store \(BindingStores.redacted(spec)): \(ErrorText.describe(error))")
        }
    }

    var redacted: String { BindingStores.redacted(SluiceConfig.bindings(bindings)) }
}

/// How a controller checks readers' tokens: `sluice controller` and `sluice up`.
struct AuthOptions: ParsableArguments {
    @Option(help: ArgumentHelp("A file holding a shared secret: HS256 tokens signed with it are taken. Repeatable.", valueName: "FILE"))
    var tokenSecret: [String] = []

    @Option(
        help: ArgumentHelp(
            "A PEM public key or certificate (RSA: RS256, EC P-256: ES256) whose tokens are taken. Repeatable: list the old key beside the new during a rotation.",
            valueName: "FILE"))
    var tokenPublicKey: [String] = []

    @Option(help: ArgumentHelp("A JWKS file, as a UAA or OIDC issuer publishes it (every key with a kid). Repeatable.", valueName: "FILE"))
    var tokenJwks: [String] = []

    @Option(help: "The iss a token must have.")
    var tokenIssuer: String?

    @Option(help: "A value the token's aud must include.")
    var tokenAudience: String?

    @Option(
        help: ArgumentHelp(
            "Asked with the caller's token about a valid token that names no such app, e.g. http://cc.internal/internal/v4/log_access/{app}: a 2xx is yes; answers are kept 5 s; when it cannot be asked the reader gets 503.",
            valueName: "URL"))
    var authorizeUrl: String?

    @Option(help: ArgumentHelp("PEM CA certificates for an https --authorize-url (default: the system's).", valueName: "FILE"))
    var authorizeCa: String?

    @Flag(help: "Check no tokens: anyone who can reach the controller reads every app. For a trusted network only.")
    var noAuth = false

    var hasKeys: Bool { !(tokenSecret.isEmpty && tokenPublicKey.isEmpty && tokenJwks.isEmpty) }

    func validate() throws {
        if noAuth && hasKeys { throw ValidationError("--no-auth and token keys do not go together") }
        if let authorizeUrl {
            do { _ = try HTTPURL(parsing: Authorizer.url(authorizeUrl, app: "app")) } catch {
                throw ValidationError("--authorize-url: \(error)")
            }
            guard authorizeUrl.contains("{app}") else { throw ValidationError("--authorize-url needs an {app} placeholder") }
        }
    }

    /// The settings, with `defaultSecret` as the key when none is given
    /// (`sluice up`'s own); nil with --no-auth.
    func settings(defaultSecret: String? = nil) -> TokenSettings? {
        if noAuth { return nil }
        return TokenSettings(
            secretFiles: hasKeys ? tokenSecret : (defaultSecret.map { [$0] } ?? []), publicKeyFiles: tokenPublicKey,
            jwksFiles: tokenJwks, issuer: tokenIssuer, audience: tokenAudience, authorizeURL: authorizeUrl)
    }

    /// The controllers' authorizer, its keys read; nil with --no-auth.
    func authorizer(defaultSecret: String? = nil, logger: Logger) async throws -> Authorizer? {
        guard let settings = settings(defaultSecret: defaultSecret) else {
            logger.warning("--no-auth: every reader may read every app without a token")
            return nil
        }
        guard settings.hasKeys else {
            throw ValidationError(
                "a controller checks readers' tokens: give --token-secret, --token-public-key or --token-jwks (or --no-auth to check none)")
        }
        let verifier: TokenVerifier
        do {
            verifier = try await TokenVerifier(settings: settings)
        } catch {
            throw CommandFailure("token keys: \(error)")
        }
        logger.info("checking tokens", metadata: ["sluice.keys": "\(verifier.summary)"])
        return Authorizer(verifier: verifier, check: AuthorizeCheck.http(trustRoots: authorizeCa))
    }
}
