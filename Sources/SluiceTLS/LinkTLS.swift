import CoreMetrics
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SluiceWire

/// Mutual TLS for the links between Sluice's parts: one certificate and
/// key that this member shows, as server and as client, and the CA its
/// peers' certificates must chain to. Both sides verify: a listener takes
/// only clients with a certificate from the CA (and, if names are listed,
/// one of those names); a client takes only a server whose certificate
/// names the host it dialled, or `serverName`.
///
/// With an empty `ca` it only serves: a listener that asks clients for no
/// certificate (the controller's HTTPS API, the agent's TLS inputs).
///
/// `reload()` reads the files again; new connections use them, links that
/// are up keep the session they have.
public final class LinkTLS: Sendable {
    public let files: TLSFiles
    /// How the flags are named in errors: `--tls`, `--http-tls`, ….
    let flags: String
    private let contexts: NIOLockedValueBox<Contexts>
    private let refusals: NIOLockedValueBox<[String: Counter]>
    private let metrics: any MetricsFactory

    struct Contexts {
        var server: NIOSSLContext
        /// The same, offering ALPN `h2` (gRPC's listeners: gRPC clients
        /// refuse a TLS server that does not agree on it).
        var http2Server: NIOSSLContext
        /// Nil when serving only.
        var client: NIOSSLContext?
        var summary: String
        /// The soonest the certificate or an intermediate it is sent with
        /// expires: Unix seconds. (The CA file may hold more roots than
        /// are used, old ones among them: not counted.)
        var expiry: Int = 0
    }

    /// A file that could not be read or did not hold what it should.
    public struct LoadError: Error, CustomStringConvertible {
        public var description: String
    }

    public init(files: TLSFiles, metrics: any MetricsFactory = MetricsSystem.factory, flags: String = "--tls") throws {
        self.files = files
        self.metrics = metrics
        self.flags = flags
        let contexts = try Self.load(files, flags: flags)
        self.contexts = NIOLockedValueBox(contexts)
        self.refusals = NIOLockedValueBox([:])
        self.expiryGauge = Gauge(label: MetricNames.tlsCertificateExpiry, dimensions: [("use", flags)], factory: metrics)
        expiryGauge.record(contexts.expiry)
    }

    /// `sluice_tls_certificate_expiry_timestamp_seconds{use}`.
    private let expiryGauge: Gauge

    /// Serving only: `cert` and `key`, no client certificates asked.
    public convenience init(
        servingCert cert: String, key: String, metrics: any MetricsFactory = MetricsSystem.factory, flags: String
    ) throws {
        try self.init(files: TLSFiles(cert: cert, key: key, ca: ""), metrics: metrics, flags: flags)
    }

    /// Reads the certificate, key and CA files again.
    public func reload() throws {
        let fresh = try Self.load(files, flags: flags)
        contexts.withLockedValue { $0 = fresh }
        expiryGauge.record(fresh.expiry)
    }

    /// This member's certificate: its subject, names and expiry.
    public var summary: String { contexts.withLockedValue { $0.summary } }

    /// The handlers a listener puts first on each connection: TLS, then
    /// the check that logs, counts and closes a refused handshake.
    public func serverHandlers(role: String, logger: Logger, http2: Bool = false) -> [any ChannelHandler] {
        let context = contexts.withLockedValue { http2 ? $0.http2Server : $0.server }
        return [
            NIOSSLServerHandler(context: context),
            TLSPeerCheck(
                server: true, role: role, expectedNames: files.allowedNames ?? [], refused: refused(role), logger: logger),
        ]
    }

    /// The handlers a link to `host` puts first: TLS verifying the
    /// server's certificate against `serverName` or `host`, then the check.
    public func clientHandlers(host: String, role: String, logger: Logger) throws -> [any ChannelHandler] {
        guard let context = contexts.withLockedValue({ $0.client }) else {
            throw LoadError(description: "\(flags)-cert serves only: it has no CA to check a server with")
        }
        let name = files.serverName ?? (PeerNames.isAddress(host) ? nil : host)
        return [
            try NIOSSLClientHandler(context: context, serverHostname: name),
            TLSPeerCheck(
                server: false, role: role, expectedNames: files.serverName.map { [$0] } ?? [], refused: refused(role),
                logger: logger),
        ]
    }

    private func refused(_ role: String) -> Counter {
        refusals.withLockedValue { counters in
            if let counter = counters[role] { return counter }
            let counter = Counter(label: MetricNames.tlsRefused, dimensions: [("role", role)], factory: metrics)
            counters[role] = counter
            return counter
        }
    }

    static func load(_ files: TLSFiles, flags: String = "--tls") throws -> Contexts {
        let serving = files.ca.isEmpty
        let paths = [("\(flags)-cert", files.cert), ("\(flags)-key", files.key)] + (serving ? [] : [("\(flags)-ca", files.ca)])
        for (flag, path) in paths where !FileManager.default.isReadableFile(atPath: path) {
            throw LoadError(
                description: "\(flag) \(path): \(FileManager.default.fileExists(atPath: path) ? "cannot be read" : "no such file")")
        }
        if let name = files.serverName, PeerNames.isAddress(name) {
            throw LoadError(
                description:
                    "\(flags)-server-name \(name) is an address: give a DNS name the server's certificate carries (an address dialled is checked against the certificate's IP names already)"
            )
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(files.cert) } catch {
            throw LoadError(description: "\(flags)-cert \(files.cert): \(Self.reading(error))")
        }
        guard let leaf = chain.first else { throw LoadError(description: "\(flags)-cert \(files.cert) holds no certificate") }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: files.key, format: .pem) } catch {
            throw LoadError(description: "\(flags)-key \(files.key): \(Self.reading(error))")
        }
        var roots: [NIOSSLCertificate] = []
        if !serving {
            do { roots = try NIOSSLCertificate.fromPEMFile(files.ca) } catch {
                throw LoadError(description: "\(flags)-ca \(files.ca): \(Self.reading(error))")
            }
            guard !roots.isEmpty else { throw LoadError(description: "\(flags)-ca \(files.ca) holds no certificate") }
        }
        let now = time(nil)
        if leaf.notValidAfter < now {
            throw LoadError(
                description: "\(flags)-cert \(files.cert) expired at \(Self.date(leaf.notValidAfter)); make a new one")
        }

        var server =
            serving
            ? TLSConfiguration.makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            : TLSConfiguration.makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key),
                trustRoots: .certificates(roots))
        server.minimumTLSVersion = .tlsv12
        // A peer that never answers our close_notify is not waited for long.
        server.shutdownTimeout = .seconds(2)
        var client = TLSConfiguration.makeClientConfiguration()
        client.certificateChain = chain.map { .certificate($0) }
        client.privateKey = .privateKey(key)
        client.trustRoots = .certificates(roots)
        client.certificateVerification = .fullVerification
        client.minimumTLSVersion = .tlsv12
        client.shutdownTimeout = .seconds(2)
        var http2Server = server
        http2Server.applicationProtocols = ["h2"]
        do {
            return Contexts(
                server: try NIOSSLContext(configuration: server),
                http2Server: try NIOSSLContext(configuration: http2Server),
                client: serving ? nil : try NIOSSLContext(configuration: client),
                summary: "\(PeerNames.of(leaf).joined(separator: ",")) until \(Self.date(leaf.notValidAfter))",
                expiry: Int(chain.map(\.notValidAfter).min() ?? leaf.notValidAfter))
        } catch let error as BoringSSLError where !TLSRefusal.codes(of: error).contains("KEY_VALUES_MISMATCH") {
            throw LoadError(
                description:
                    "\(flags)-cert \(files.cert) with \(flags)-key \(files.key): \(TLSRefusal.codes(of: error).joined(separator: ", "))")
        } catch is BoringSSLError, NIOSSLError.failedToLoadPrivateKey {
            throw LoadError(description: "\(flags)-key \(files.key) is not the key of the certificate in \(files.cert)")
        } catch {
            throw LoadError(description: "\(flags)-cert \(files.cert) with \(flags)-key \(files.key): \(error)")
        }
    }

    static func date(_ t: time_t) -> String {
        Date(timeIntervalSince1970: TimeInterval(t)).formatted(.iso8601)
    }

    private static func reading(_ error: any Error) -> String {
        if let ssl = error as? NIOSSLError, ssl == .noSuchFilesystemObject { return "no such file" }
        if error is NIOSSLError || error is BoringSSLError { return "not PEM, or not what it should hold" }
        return "\(error)"
    }
}

extension LinkTLS {
    /// TLS as a listener of `role` uses it: client certificates required.
    public func listener(role: String, logger: Logger) -> TLSLayer {
        TLSLayer(tls: self, role: role, logger: logger, server: true)
    }

    /// TLS as a link of `role` dialling a server uses it.
    public func dialer(role: String, logger: Logger) -> TLSLayer {
        TLSLayer(tls: self, role: role, logger: logger, server: false)
    }
}

/// One side's TLS, ready to go first in each new connection's pipeline.
public struct TLSLayer: Sendable {
    public let tls: LinkTLS
    public let role: String
    let logger: Logger
    let server: Bool
    /// A listener that offers ALPN `h2` (gRPC).
    var http2 = false

    /// The same layer offering ALPN `protocols` (only `h2` is known).
    public func speaking(_ protocols: [String]) -> TLSLayer {
        var layer = self
        layer.http2 = protocols.contains("h2")
        return layer
    }

    /// Adds the TLS handlers at the front of `channel`'s pipeline; call on
    /// its event loop (in a channel initializer). `host` is what a dialler
    /// connected to.
    public func add(to channel: any Channel, host: String = "") throws {
        let handlers =
            server
            ? tls.serverHandlers(role: role, logger: logger, http2: http2)
            : try tls.clientHandlers(host: host, role: role, logger: logger)
        try channel.pipeline.syncOperations.addHandlers(handlers, position: .first)
    }
}

extension TLSLayer {
    /// Succeeds once `channel`'s TLS handshake is done and the peer let in;
    /// at once for a channel without TLS. Call on its event loop.
    public static func handshake(of channel: any Channel) -> EventLoopFuture<Void> {
        guard let check = try? channel.pipeline.syncOperations.handler(type: TLSPeerCheck.self),
            let done = check.handshakeDone
        else {
            return channel.isActive
                ? channel.eventLoop.makeSucceededVoidFuture() : channel.eventLoop.makeFailedFuture(ChannelError.inputClosed)
        }
        return done
    }

    /// Adds `handler` at the front of the connection as its application
    /// sees it: right after TLS when the connection has it, else first.
    /// Bytes written through its context are encrypted, never sent bare.
    public static func addAtFront(
        _ handler: any ChannelHandler, _ pipeline: ChannelPipeline.SynchronousOperations
    ) throws {
        if let check = try? pipeline.handler(type: TLSPeerCheck.self) {
            try pipeline.addHandler(handler, position: .after(check))
        } else {
            try pipeline.addHandler(handler, position: .first)
        }
    }

    /// Why `channel`'s peer was refused, if it was (a dialler under TLS 1.3
    /// learns of it only after its handshake). Call on its event loop,
    /// before its pipeline is torn down (in `channelInactive`, say).
    public static func refusal(of channel: any Channel) -> TLSRefusal? {
        (try? channel.pipeline.syncOperations.handler(type: TLSPeerCheck.self))?.refusal
    }

    /// `channel` once its handshake is done (closed and failed otherwise).
    public static func established(_ channel: any Channel) -> EventLoopFuture<any Channel> {
        guard channel.eventLoop.inEventLoop else {
            return channel.eventLoop.flatSubmit { established(channel) }
        }
        return handshake(of: channel).map { channel }.flatMapError { error in
            channel.close(promise: nil)
            return channel.eventLoop.makeFailedFuture(error)
        }
    }
}
