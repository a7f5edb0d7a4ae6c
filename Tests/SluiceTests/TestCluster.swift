import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SluiceAuth
import SluiceBindings
import SluiceCLI
import SluiceController
import SluiceDrain
import SluiceProto
import SluiceServer
import SluiceTLS
import SluiceTransport
import SluiceShipping
import SluiceWire
import SwiftProtobuf
import Testing

/// A controller and buffer servers on loopback ports chosen by the kernel.
/// The servers run on a thread of their own, as they would in their own
/// process: another test's busy event loop cannot silence them long enough
/// for the controller's watchdog to take them for dead.
struct TestCluster {
    let servers: [BufferServer]
    let serverGroup: MultiThreadedEventLoopGroup
    let controller: Controller
    let ingress: Endpoint
    let http: HTTPURL
    let registry: PrometheusCollectorRegistry
    /// One per server when the cluster runs drains.
    var drains: [DrainManager] = []

    static func start(
        servers count: Int = 2, recentPerApp: Int = 1000, tailQueueLimit: Int = 10_000,
        maxFramePayload: Int = FrameHeader.defaultMaxPayload, pingInterval: TimeAmount = .seconds(30),
        bindings: (any BindingStore)? = nil, controllerBindings: (any BindingStore)? = nil,
        drainSettings: DrainRunner.Settings = .init(), authorizer: Authorizer? = nil,
        tls: (controller: LinkTLS, server: LinkTLS)? = nil, logger: Logger = .quiet,
        connections: ConnectionGuard.Settings = .init(), maxReaders: (total: Int, perApp: Int) = (10_000, 100),
        events: (heartbeat: TimeAmount, timeout: TimeAmount)? = nil, grpc: Bool = false,
        handover: ServerLink.Handover = .init()
    ) async throws -> TestCluster {
        let registry = PrometheusCollectorRegistry()
        let factory = PrometheusMetricsFactory(registry: registry)
        var servers: [BufferServer] = []
        var endpoints: [Endpoint] = []
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        for _ in 0..<count {
            let server = BufferServer(
                configuration: .init(
                    listen: Endpoint(host: "127.0.0.1", port: 0), limits: .init(recentPerApp: recentPerApp),
                    maxFramePayload: maxFramePayload, tls: tls?.server, connections: connections),
                group: serverGroup, logger: logger, metrics: factory)
            endpoints.append(try await server.bind())
            servers.append(server)
        }
        var drains: [DrainManager] = []
        if let bindings {
            for server in servers {
                let manager = DrainManager(
                    store: server.store, bindings: bindings, settings: drainSettings, logger: .quiet, metrics: factory)
                manager.start()
                drains.append(manager)
            }
        }
        var configuration = Controller.Configuration(
            ingress: Endpoint(host: "127.0.0.1", port: 0), http: Endpoint(host: "127.0.0.1", port: 0),
            zones: ["z1": endpoints], maxFramePayload: maxFramePayload, tailQueueLimit: tailQueueLimit,
            pingInterval: pingInterval, bindings: controllerBindings ?? bindings, authorizer: authorizer,
            tls: tls?.controller, connections: connections, maxReaders: maxReaders.total,
            maxReadersPerApp: maxReaders.perApp)
        if let events {
            configuration.eventHeartbeat = events.heartbeat
            configuration.eventStreamTimeout = events.timeout
        }
        configuration.handover = handover
        if grpc {
            // One listener serving both services.
            configuration.grpcIngress = Endpoint(host: "127.0.0.1", port: 0)
            configuration.grpcEgress = configuration.grpcIngress
        }
        let controller = Controller(configuration: configuration, logger: logger, registry: registry)
        let (ingress, http) = try await controller.bind()
        return TestCluster(
            servers: servers, serverGroup: serverGroup, controller: controller, ingress: ingress,
            http: HTTPURL(host: http.host, port: http.port), registry: registry, drains: drains)
    }

    func shutdown() async {
        for manager in drains { await manager.shutdown() }
        try? await controller.shutdown()
        for server in servers { try? await server.shutdown() }
        try? await serverGroup.shutdownGracefully()
    }

    /// The controller's gRPC listener (ingress and egress), with `grpc: true`.
    var grpc: Endpoint? { controller.grpcAddresses.ingress }

    var client: ControllerClient { ControllerClient(ingress: ingress, http: http) }

    func emit(app: String, lines: [String], isError: Bool = false, batch: Int = 100) async throws {
        try await client.emit(app: app, lines: lines, isError: isError, batch: batch)
    }

    func recent(app: String, limit: Int? = nil) async throws -> [Loggregator_V2_Envelope] {
        try await client.recent(app: app, limit: limit)
    }

    /// The value of a metric line in the registry's text output.
    func metric(_ line: String) -> Double? {
        registry.value(of: line)
    }
}

extension PrometheusCollectorRegistry {
    /// The value of a metric line (name and labels) in the text output.
    func value(of line: String) -> Double? {
        for text in emitToString().split(separator: "\n") where text.hasPrefix(line + " ") {
            return Double(text.dropFirst(line.count + 1))
        }
        return nil
    }
}

/// Collects what a websocket reader receives and lets a test wait for it.
final class Received: Sendable {
    /// What a wait condition sees: counts, and Sluice's notices (few).
    struct Snapshot {
        var count = 0
        var notices: [Loggregator_V2_Envelope] = []
    }

    typealias Condition = @Sendable (Snapshot) -> Bool

    private struct State {
        var envelopes: [Loggregator_V2_Envelope] = []
        var snapshot = Snapshot()
        var waiters: [(condition: Condition, continuation: CheckedContinuation<Bool, Never>)] = []
    }

    private let state = NIOLockedValueBox(State())

    func add(_ envelope: Loggregator_V2_Envelope) {
        let ready = state.withLockedValue { state -> [CheckedContinuation<Bool, Never>] in
            state.envelopes.append(envelope)
            state.snapshot.count += 1
            if envelope.isNotice { state.snapshot.notices.append(envelope) }
            let snapshot = state.snapshot
            let ready = state.waiters.filter { $0.condition(snapshot) }.map(\.continuation)
            state.waiters.removeAll { $0.condition(snapshot) }
            return ready
        }
        for continuation in ready { continuation.resume(returning: true) }
    }

    var envelopes: [Loggregator_V2_Envelope] { state.withLockedValue { $0.envelopes } }

    /// Waits until `count` envelopes have arrived; false if `timeout` passed first.
    func wait(for count: Int, timeout: Duration = .seconds(30)) async -> Bool {
        await wait(timeout: timeout) { $0.count >= count }
    }

    /// Waits until `condition` holds for what has arrived; false on timeout.
    func wait(timeout: Duration = .seconds(30), until condition: @escaping Condition) async -> Bool {
        let timer = Task {
            try await Task.sleep(for: timeout)
            let stuck = state.withLockedValue { state in
                let all = state.waiters.map(\.continuation)
                state.waiters.removeAll()
                return all
            }
            for continuation in stuck { continuation.resume(returning: false) }
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { continuation in
            let now = state.withLockedValue { state -> Bool in
                if condition(state.snapshot) { return true }
                state.waiters.append((condition, continuation))
                return false
            }
            if now { continuation.resume(returning: true) }
        }
    }
}

/// A controller as clients see it: its ingress and its HTTP API.
struct ControllerClient {
    let ingress: Endpoint
    let http: HTTPURL
    /// Sent with every read.
    var token: String? = nil
    /// Shown to a TLS ingress.
    var tls: LinkTLS? = nil

    var authorization: [(String, String)] { HTTPClient.bearer(token) }

    /// Sends lines for an app through the ingress, batched as `sluice emit` does.
    func emit(app: String, lines: [String], isError: Bool = false, batch: Int = 100) async throws {
        let client = try await IngressClient.connect(to: [ingress], tls: tls?.dialer(role: "test", logger: .quiet))
        let fields = LogEnvelopeFields(sourceID: app, isError: isError)
        var builder = BatchFrameBuilder()
        for (index, line) in lines.enumerated() {
            var line = line
            line.withUTF8 { builder.appendLog(fields, timestamp: WallClock.nowNanos(), payload: UnsafeRawBufferPointer($0)) }
            if builder.count == batch || index == lines.count - 1 {
                try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
            }
        }
        try await client.close()
    }

    /// The recent envelopes of an app, decoded, from the protobuf answer.
    func recent(app: String, limit: Int? = nil) async throws -> [Loggregator_V2_Envelope] {
        let query = limit.map { "?limit=\($0)" } ?? ""
        let response = try await HTTPClient.get(
            http.with(path: "/apps/\(pathEscape(app))/recentlogs\(query)"),
            headers: [("Accept", "application/x-protobuf")] + authorization)
        #expect(response.status.code == 200)
        return try Loggregator_V2_EnvelopeBatch(serializedBytes: Array(response.body.readableBytesView)).batch
    }

    /// Opens a websocket tail of `app` whose envelopes go to `received`.
    func tail(app: String, into received: Received, json: Bool = false) async throws -> WebSocketClient {
        let url = http.with(path: "/apps/\(pathEscape(app))/stream\(json ? "?format=json" : "")")
        return try await WebSocketClient.connect(url, headers: authorization) { message in
            switch message {
            case .binary(let bytes):
                if let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView)) {
                    received.add(envelope)
                }
            case .text(let text):
                if let envelope = try? Loggregator_V2_Envelope(jsonString: text) {
                    received.add(envelope)
                }
            }
        }
    }
}

extension Loggregator_V2_Envelope {
    var text: String { String(decoding: log.payload, as: UTF8.self) }
    var isNotice: Bool { tags["source_type"] == Notice.sourceType }
}

extension TestCluster {
    func tail(app: String, into received: Received, json: Bool = false) async throws -> WebSocketClient {
        try await client.tail(app: app, into: received, json: json)
    }
}
