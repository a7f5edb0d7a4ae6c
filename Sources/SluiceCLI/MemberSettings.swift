import NIOCore
import SluiceAgent
import SluiceAuth
import SluiceBindings
import SluiceController
import SluiceDrain
import SluiceServer
import SluiceTLS
import SluiceTransport
import SluiceWire

/// The settings every member of a kind shares unless its cluster-file entry
/// says otherwise: what `sluice server` and `sluice controller` take as
/// flags, and `sluice up` takes for all its members.
public struct MemberSettings: Sendable {
    /// Envelopes kept per app by each server.
    public var recentPerApp: Int = 1000
    /// Bytes kept over all apps by each server.
    public var memoryLimit: Int = 256 * 1024 * 1024
    /// The largest frame payload a server or a controller accepts.
    public var maxFramePayload: Int = FrameHeader.defaultMaxPayload
    /// Each drain's queue.
    public var drains = DrainRunner.Settings()
    /// Bytes per second of Log envelopes each app may store at its server,
    /// unless the bindings store holds its own limit. Nil: none.
    public var appLogRateLimit: Int? = nil
    /// Envelopes waiting for one websocket reader before the oldest drop.
    public var tailQueueLimit: Int = 100_000
    /// Live readers at once at each controller, in all and of one app.
    public var maxReaders: Int = 10_000
    public var maxReadersPerApp: Int = 100
    /// The web console every controller serves (`--no-ui`, `--ui-base-path`).
    public var console = ConsoleEndpoints.Settings()
    /// Checks every reader's token at every controller; nil: none checked.
    public var authorizer: Authorizer? = nil
    /// Mutual TLS on every link; nil: plain TCP.
    public var tls: LinkTLS? = nil
    /// The servers' own certificate, when it differs from `tls`'s.
    public var serverTLS: LinkTLS? = nil
    /// HTTPS on controllers' HTTP API.
    public var httpTLS: LinkTLS? = nil
    /// Every listener's limits.
    public var connections = ConnectionGuard.Settings()
    /// What a controller keeps of what each server acknowledged, for the
    /// servers standing in if it stops.
    public var handover = ServerLink.Handover()
    /// How long a graceful stop may take (`--shutdown-timeout`).
    public var shutdownTimeout: TimeAmount = .seconds(10)

    public init() {}

    /// A buffer server's settings; `entry`'s own limits win.
    public func server(zone: String, entry: ClusterConfig.Server, metrics: Endpoint? = nil) throws -> ServerSettings {
        let memory: Int
        if let text = entry.memoryLimit {
            guard let parsed = ByteSize.parse(text), parsed > 0 else {
                throw ClusterConfig.Invalid(description: "server \(entry.name): memoryLimit '\(text)' is not a size")
            }
            memory = parsed
        } else {
            memory = memoryLimit
        }
        var server = BufferServer.Configuration(
            zone: zone, listen: try Endpoint(parsing: entry.listen),
            limits: .init(
                recentPerApp: entry.recentPerApp ?? recentPerApp, memoryLimit: memory,
                appLogRateLimit: appLogRateLimit),
            maxFramePayload: maxFramePayload, tls: serverTLS ?? tls, connections: connections)
        server.shutdownTimeout = shutdownTimeout
        var drains = self.drains
        drains.shutdownTimeout = .nanoseconds(shutdownTimeout.nanoseconds)
        return ServerSettings(server: server, drains: drains, metrics: metrics)
    }

    /// A controller's settings; it reads every zone's `servers`.
    public func controller(
        zone: String, entry: ClusterConfig.Controller, servers: [String: [Endpoint]], bindings: (any BindingStore)?
    ) throws -> Controller.Configuration {
        var configuration = Controller.Configuration(
            zone: zone, ingress: try Endpoint(parsing: entry.ingress), http: try Endpoint(parsing: entry.http),
            zones: servers, maxFramePayload: maxFramePayload, tailQueueLimit: tailQueueLimit, bindings: bindings,
            authorizer: authorizer, tls: tls, httpTLS: httpTLS, connections: connections, maxReaders: maxReaders,
            maxReadersPerApp: maxReadersPerApp)
        configuration.handover = handover
        configuration.shutdownTimeout = shutdownTimeout
        configuration.console = console
        return configuration
    }
}
