import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceController
import SluiceServer
import SluiceShipping
import SluiceProto
import SluiceTransport
import SluiceWire
import Testing

/// Listeners' limits: hostile or idle clients by the thousand, one over the
/// connection limit, a sender that drips a byte at a time. Well-behaved
/// clients are served throughout, and every closing is counted.
@Suite(.serialized) struct ConnectionLimitTests {
    static let lines = (1...1_000).map { "well behaved line \($0)" }

    /// Opens `count` connections to `endpoint`: with `garbage`, the even ones
    /// send bytes no frame starts with; the others send two bytes of a
    /// message, then nothing.
    static func hostile(
        _ count: Int, at endpoint: Endpoint, garbage: Bool = true, start: String = "SL"
    ) async throws -> [RawConnection] {
        var connections: [RawConnection] = []
        for index in 0..<count {
            let connection = try await RawConnection.connect(to: endpoint)
            // A listener may close a hostile connection before this write
            // is done with (on a loaded machine, while it closes the ones
            // before): that is what is being tested, not a failure.
            try? await connection.write(garbage && index % 2 == 0 ? "GET / HTTP/1.1\r\n\r\nnot a frame at all" : start)
            connections.append(connection)
        }
        return connections
    }

    @Test func aThousandHostileConnectionsLeaveTheControllerAndServerServing() async throws {
        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1, logger: log.logger,
            connections: ConnectionGuard.Settings(maxConnections: 5_000, stallTimeout: .seconds(2)))
        let server = try await cluster.servers[0].bind()
        let received = Received()
        let tail = try await cluster.tail(app: "good", into: received)

        let atController = try await Self.hostile(1_000, at: cluster.ingress)
        let atServer = try await Self.hostile(1_000, at: server)
        try await cluster.emit(app: "good", lines: Self.lines)
        #expect(await received.wait(for: Self.lines.count))
        #expect(try await cluster.recent(app: "good").map(\.text) == Self.lines)

        // Every hostile connection is closed: garbage at once, the stalled
        // ones when the stall timeout passes.
        for connection in atController + atServer { #expect(await connection.waitForClose()) }
        // The 500 that stalled, each counted once. A garbage connection
        // whose bytes a loaded listener had not yet read when the stall
        // timeout passed is closed as stalled too (seen once in CI): a few
        // more, never fewer.
        for role in ["controller-ingress", "server"] {
            let stalled = cluster.metric(#"sluice_connections_closed_total{role="\#(role)",reason="stalled"}"#) ?? 0
            #expect((500...510).contains(stalled), "\(role): \(stalled) closed as stalled")
        }
        // At most one warning per listener and reason in 10 s, not one per
        // connection: 1,000 closings, a handful of lines.
        let warnings = log.entries.filter { $0.message == "connection closed: nothing sent in time" }.count
        #expect((2...20).contains(warnings), "\(warnings) warnings")
        // The live reader, quiet past the stall timeout, is still served.
        try await cluster.emit(app: "good", lines: ["after the storm"])
        #expect(await received.wait(for: Self.lines.count + 1))
        await tail.close()
        await cluster.shutdown()
    }

    @Test func oneOverTheLimitIsClosedAndTheOthersServed() async throws {
        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1, logger: log.logger, connections: ConnectionGuard.Settings(maxConnections: 4, stallTimeout: nil))
        var idle: [RawConnection] = []
        for _ in 0..<4 { idle.append(try await RawConnection.connect(to: cluster.ingress)) }
        // All four taken in before the fifth knocks.
        #expect(await waitUntil { cluster.controller.openIngressConnections == 4 })
        let extra = try await RawConnection.connect(to: cluster.ingress)
        #expect(await extra.waitForClose())
        #expect(cluster.metric(#"sluice_connections_closed_total{role="controller-ingress",reason="max_connections"}"#) == 1)
        let warning = await log.first { $0.message == "connection refused: the listener is full" }
        #expect(warning?.metadata["sluice.limit"] == "4")
        // A place frees up: a sender gets in and is served.
        idle.removeFirst().close()
        #expect(await waitUntil { cluster.controller.openIngressConnections < 4 })
        try await cluster.emit(app: "room", lines: ["there is room now"])
        #expect(try await cluster.recent(app: "room").map(\.text) == ["there is room now"])
        for connection in idle { connection.close() }
        await cluster.shutdown()
    }

    @Test func aSenderThatDripsAByteAtATimeIsClosed() async throws {
        let cluster = try await TestCluster.start(
            servers: 1, connections: ConnectionGuard.Settings(maxConnections: 100, stallTimeout: .seconds(2)))
        let drip = try await RawConnection.connect(to: cluster.ingress)
        var frame = BatchFrameBuilder()
        var line = String(repeating: "dripped ", count: 40)
        line.withUTF8 { frame.appendLog(LogEnvelopeFields(sourceID: "drip"), timestamp: 1, payload: UnsafeRawBufferPointer($0)) }
        let bytes = Array(frame.finish(type: .envelopes, sequence: 1)!.readableBytesView)
        // A byte every 50 ms: bytes keep coming (the whole frame would take
        // over 15 s), and the connection is closed while they do, not after
        // they stop.
        var sent = 0
        for byte in bytes {
            guard drip.channel.isActive else { break }
            try? await drip.channel.writeAndFlush(ByteBuffer(bytes: [byte]))
            sent += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(sent < bytes.count, "\(sent) of \(bytes.count) bytes went before the close")
        #expect(await drip.waitForClose())
        #expect(cluster.metric(#"sluice_connections_closed_total{role="controller-ingress",reason="stalled"}"#) == 1)
        #expect(try await cluster.recent(app: "drip").isEmpty)
        await cluster.shutdown()
    }

    @Test func anHTTPClientThatStallsIsClosedAndATailIsNot() async throws {
        let cluster = try await TestCluster.start(
            servers: 1, connections: ConnectionGuard.Settings(maxConnections: 100, stallTimeout: .seconds(2)))
        let received = Received()
        let tail = try await cluster.tail(app: "http-stall", into: received)
        // A keep-alive client that sent whole requests stays open past it.
        let keepAlive = try await RawConnection.connect(to: Endpoint(host: cluster.http.host, port: cluster.http.port))
        try await keepAlive.write("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let half = try await RawConnection.connect(to: Endpoint(host: cluster.http.host, port: cluster.http.port))
        try await half.write("GET /healthz HTTP/1.1\r\nHost: x\r\n")
        #expect(await half.waitForClose())
        #expect(cluster.metric(#"sluice_connections_closed_total{role="controller-http",reason="stalled"}"#) == 1)
        #expect(keepAlive.channel.isActive)
        // The websocket, quiet for longer than the stall timeout, still
        // carries lines.
        try await cluster.emit(app: "http-stall", lines: ["still here"])
        #expect(await received.wait(for: 1))
        // A whole request is answered as ever.
        let health = try await HTTPClient.get(cluster.http.with(path: "/healthz"))
        #expect(health.status == .ok)
        await tail.close()
        await cluster.shutdown()
    }

    @Test func theAgentsListenersKeepServingThroughAStorm() async throws {
        let cluster = try await TestCluster.start(servers: 1)
        let loopback = Endpoint(host: "127.0.0.1", port: 0)
        var configuration = Agent.Configuration(
            controllers: [cluster.ingress], listen: loopback, syslogTCP: loopback, http: loopback)
        configuration.connections = ConnectionGuard.Settings(maxConnections: 5_000, stallTimeout: .seconds(2))
        let registry = PrometheusCollectorRegistry()
        let agent = Agent(configuration: configuration, logger: .quiet, registry: registry)
        let addresses = try await agent.bind()
        let received = Received()
        let tail = try await cluster.tail(app: "agent-good", into: received)

        var hostile = try await Self.hostile(400, at: addresses.listen)
        hostile += try await Self.hostile(300, at: try #require(addresses.syslogTCP), garbage: false)
        hostile += try await Self.hostile(
            300, at: try #require(addresses.http), garbage: false, start: "POST /logs HTTP/1.1\r\nHost: x\r\n")
        let syslog = try await RawConnection.connect(to: try #require(addresses.syslogTCP))
        let messages = (1...200).map { octetCounted("<14>1 2026-11-29T10:00:00Z host agent-good [APP/PROC/WEB/0] - - syslog \($0)") }
        try await syslog.write(messages.joined())
        #expect(await received.wait(for: 200))
        for connection in hostile { #expect(await connection.waitForClose()) }
        let stalled = ["agent-ingress", "agent-syslog", "agent-http"].map {
            registry.value(of: #"sluice_connections_closed_total{role="\#($0)",reason="stalled"}"#) ?? 0
        }
        #expect(stalled == [200, 300, 300], "\(stalled)")
        syslog.close()
        await tail.close()
        try await agent.shutdown(timeout: .seconds(1))
        await cluster.shutdown()
    }
}

/// `--max-readers` and `--max-readers-per-app`: a reader past either is
/// answered 429 with the reason and counted; the readers already served
/// keep getting every line, and a place freed is taken again.
@Suite struct ReaderLimitTests {
    enum Outcome {
        case served
        case refused(WebSocketRefused)
        case failed(any Error)

        var refusal: WebSocketRefused? {
            if case .refused(let refusal) = self { refusal } else { nil }
        }
        var served: Bool {
            if case .served = self { true } else { false }
        }
    }

    /// Opens a tail of `app` and closes it again: served, refused with an
    /// answer, or failed some other way.
    static func tail(_ cluster: TestCluster, app: String) async -> Outcome {
        do {
            let client = try await cluster.tail(app: app, into: Received())
            await client.close()
            return .served
        } catch let refused as WebSocketRefused {
            return .refused(refused)
        } catch {
            return .failed(error)
        }
    }

    @Test func readersPastTheLimitsAre429AndTheOthersServed() async throws {
        let log = LogRecorder()
        let cluster = try await TestCluster.start(servers: 1, logger: log.logger, maxReaders: (total: 3, perApp: 2))
        let first = Received()
        let second = Received()
        let a1 = try await cluster.tail(app: "a", into: first)
        let a2 = try await cluster.tail(app: "a", into: second)

        let perApp = await Self.tail(cluster, app: "a").refusal
        #expect(perApp?.status == 429)
        #expect(perApp?.message == "app a has 2 readers, the limit (--max-readers-per-app)")
        let b = try await cluster.tail(app: "b", into: Received())
        let total = await Self.tail(cluster, app: "c").refusal
        #expect(total?.status == 429)
        #expect(
            total?.message
                == "this controller serves 3 readers, its limit (--max-readers): try again later or another controller")
        #expect(cluster.metric(#"sluice_controller_stream_readers_refused_total{reason="per_app"}"#) == 1)
        #expect(cluster.metric(#"sluice_controller_stream_readers_refused_total{reason="total"}"#) == 1)
        #expect(await log.first { $0.message.hasPrefix("refusing a reader: app a has 2 readers") } != nil)

        // The readers taken get every line.
        let lines = (1...100).map { "line \($0)" }
        try await cluster.emit(app: "a", lines: lines)
        #expect(await first.wait(for: lines.count))
        #expect(await second.wait(for: lines.count))

        // A reader that leaves frees its place.
        await b.close()
        #expect(await waitUntil { await Self.tail(cluster, app: "c").served })
        await a1.close()
        await a2.close()
        await cluster.shutdown()
    }
}
