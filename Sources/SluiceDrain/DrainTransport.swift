#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOSSL
import SluiceBindings
import SluiceWire

/// How a drain's lines reach its endpoint. One runner task uses a transport
/// at a time, so implementations need no locking of their own.
protocol DrainTransport: AnyObject, Sendable {
    /// Most lines per `send`.
    var maxBatchCount: Int { get }
    /// About the most bytes per `send`.
    var maxBatchBytes: Int { get }
    /// How long a batch may wait to fill before it goes out anyway.
    var batchDelay: Duration { get }
    /// Sends one batch; returns when the endpoint has it (as far as the
    /// protocol can tell). Throws `DrainSendError`.
    func send(_ batch: DrainBatch, batchID: UInt64) async throws
    func close() async
    /// Whether a connection is open now (for status and tests; any thread).
    var isOpen: Bool { get }
    /// Closes the connection from any thread, failing a send under way.
    func abort()
}

/// Why a send failed, and whether to try the batch again.
struct DrainSendError: Error, CustomStringConvertible {
    var reason: String
    /// True when the endpoint refused this batch for good (an HTTP 4xx).
    var permanent = false

    var description: String { reason }
}

extension DrainURL {
    /// The TLS client settings for this drain: the system's roots, or the
    /// `?ca=` file; no verification with `?skip-verify=true`.
    func tlsContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let caPath { configuration.trustRoots = .file(caPath) }
        if skipVerify { configuration.certificateVerification = .none }
        return try NIOSSLContext(configuration: configuration)
    }

    /// The name to send in SNI and to check the certificate against: none
    /// for an IP address, which SNI may not carry.
    var serverNameIndication: String? {
        var v4 = in_addr()
        var v6 = in6_addr()
        let isAddress = host.withCString { inet_pton(AF_INET, $0, &v4) == 1 || inet_pton(AF_INET6, $0, &v6) == 1 }
        return isAddress ? nil : host
    }
}
