import Foundation
import NIOCore
import NIOHTTP1
import Prometheus
import SluiceCLI
import SluiceController
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

/// Acknowledged delivery: a buffer server or a controller that dies loses
/// nothing, and a reader sees every line once.
@Suite(.serialized)
struct FailoverTests {
    static let total = 20_000

    /// Emits `total` numbered lines in batches of 100 through `client`.
    static func emitAll(_ client: IngressClient, app: String) async throws {
        try await emit(0..<total, through: client, app: app)
        try await client.close()
    }

    /// Emits the numbered lines of `range` in batches of 100.
    static func emit(_ range: Range<Int>, through client: IngressClient, app: String) async throws {
        let fields = LogEnvelopeFields(sourceID: app)
        var builder = BatchFrameBuilder()
        for index in range {
            var line = "line \(index)"
            line.withUTF8 { builder.appendLog(fields, timestamp: WallClock.nowNanos(), payload: UnsafeRawBufferPointer($0)) }
            if builder.count == 100 { try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!) }
        }
        if let rest = builder.finish(type: .envelopes, sequence: 0) { try await client.send(frame: rest) }
    }

    static func checkEveryLineOnce(_ received: Received) {
        let texts = received.envelopes.filter { !$0.isNotice }.map(\.text)
        #expect(texts.count == total, "got \(texts.count) lines")
        #expect(Set(texts).count == texts.count, "duplicates")
        #expect(Set(texts) == Set((0..<total).map { "line \($0)" }), "lost lines")
    }

    /// A server that leaves on purpose is down on the controller's gauge
    /// too (a rolling restart waits for it to read 1 again before it
    /// stops the next member; it stayed 1 after a graceful leave).
    @Test func theServerUpGaugeFallsWhenAServerLeaves() async throws {
        let cluster = try await TestCluster.start(servers: 2)
        defer { Task { await cluster.shutdown() } }
        func values() -> [Double] {
            cluster.registry.emitToString().split(separator: "\n")
                .filter { $0.hasPrefix("sluice_controller_buffer_server_up{") }.map { Double(String($0.split(separator: " ").last!)) ?? -1 }
                .sorted()
        }
        #expect(await waitUntil { values() == [1, 1] }, "\(values())")
        await cluster.servers[0].leave()
        #expect(await waitUntil { values() == [0, 1] }, "\(values())")
    }

    /// What an operator's alerts read: the zone's servers known and up (none
    /// up: reads are partial), and how long acknowledgements take.
    @Test func theZoneGaugesCountServersUpAndAcknowledgementsAreTimed() async throws {
        let cluster = try await TestCluster.start(servers: 2)
        defer { Task { await cluster.shutdown() } }
        let up = #"sluice_controller_zone_servers_up{zone="z1"}"#
        #expect(cluster.metric(#"sluice_controller_zone_servers{zone="z1"}"#) == 2)
        #expect(await waitUntil { cluster.metric(up) == 2 }, "\(String(describing: cluster.metric(up)))")
        try await cluster.emit(app: "timed", lines: (0..<500).map { "line \($0)" })
        #expect(await waitUntil { (try? await cluster.recent(app: "timed").count) == 500 })
        let acknowledged = cluster.metric(#"sluice_controller_batch_ack_seconds_count{zone="z1"}"#) ?? 0
        #expect(acknowledged >= 1, "\(cluster.registry.emitToString())")
        // Each acknowledgement on loopback came within 2.5 s: all are in that bucket.
        #expect(cluster.metric(#"sluice_controller_batch_ack_seconds_bucket{zone="z1",le="2.5"}"#) == acknowledged)
        await cluster.servers[0].leave()
        #expect(await waitUntil { cluster.metric(up) == 1 }, "\(String(describing: cluster.metric(up)))")
        try await cluster.servers[1].shutdown()
        #expect(await waitUntil { cluster.metric(up) == 0 }, "\(String(describing: cluster.metric(up)))")
        #expect(cluster.metric(#"sluice_controller_zone_servers{zone="z1"}"#) == 2)
    }

    /// `GET /readyz`: a controller is ready while a server of its zone
    /// answers, and not once none does or while it stops; a server's
    /// `--metrics` port says ready until it leaves.
    @Test func readinessFollowsTheServersAndAStop() async throws {
        let cluster = try await TestCluster.start(servers: 2)
        defer { Task { await cluster.shutdown() } }
        func ready(_ url: HTTPURL) async -> (status: UInt, body: String) {
            guard let response = try? await HTTPClient.get(url) else { return (0, "") }
            return (response.status.code, String(buffer: response.body))
        }
        let controller = cluster.http.with(path: "/readyz")
        #expect(await waitUntil { await ready(controller).status == 200 })
        #expect(await ready(controller).body == #"{"status":"ready"}"#)

        let metrics = MetricsHTTPServer(
            listen: Endpoint(host: "127.0.0.1", port: 0), logger: .quiet, readiness: { cluster.servers[0].readiness },
            render: { [] })
        let bound = try await metrics.bind()
        defer { Task { await metrics.shutdown() } }
        let server = HTTPURL(host: bound.host, port: bound.port, path: "/readyz")
        #expect(await ready(server).status == 200)

        await cluster.servers[0].leave()
        let left = await ready(server)
        #expect(left.status == 503 && left.body.contains("leaving"), "\(left)")
        // One server of the zone still answers.
        #expect(await ready(controller).status == 200)
        try await cluster.servers[1].shutdown()
        #expect(await waitUntil { await ready(controller).status == 503 })
        #expect(await ready(controller).body.contains("no buffer server of zone z1 answers"))
        await cluster.controller.drain()
        #expect(await ready(controller).body == #"{"status":"not_ready","reason":"stopping"}"#)
    }

    @Test func aBufferServerDiesMidStream() async throws {
        let cluster = try await TestCluster.start(servers: 2)
        defer { Task { await cluster.shutdown() } }
        let app = "failover-app"
        let endpoints = try await cluster.servers.asyncMap { try await $0.bind() }
        let owner = try #require(RendezvousHash(nodes: endpoints.map(\.description)).owner(of: app))

        let received = Received()
        let tail = try await cluster.tail(app: app, into: received)
        let client = try await IngressClient.connect(to: cluster.ingress)
        let half = Self.total / 2
        let emitting = Task { try await Self.emit(0..<half, through: client, app: app) }

        // Part way through, the server that owns the app goes away; the
        // second half is emitted after, so the stand-in surely gets lines
        // however fast the first half went.
        #expect(await received.wait(for: Self.total / 4, timeout: .seconds(60)))
        try await cluster.servers[owner].shutdown()
        try await emitting.value
        try await Self.emit(half..<Self.total, through: client, app: app)
        try await client.close()
        let complete = await received.wait(timeout: .seconds(60)) { $0.count - $0.notices.count >= Self.total }
        #expect(complete)
        Self.checkEveryLineOnce(received)
        // The stand-in holds what arrived after the failover.
        #expect(cluster.servers[1 - owner].store.totals.envelopes > 0)
        await tail.close()
    }

    /// A zone's only server restarts: with no stand-in, what ingress sent
    /// meanwhile waits at the controller, and the tail is told the zone went
    /// and came back, then gets every line once.
    @Test func theOnlyServerRestartsAndTheTailResumes() async throws {
        let cluster = try await TestCluster.start(servers: 1)
        defer { Task { await cluster.shutdown() } }
        let endpoint = try await cluster.servers[0].bind()
        let app = "restarted"
        let received = Received()
        let tail = try await cluster.tail(app: app, into: received)
        let client = try await IngressClient.connect(to: [cluster.ingress])
        try await Self.emit(0..<100, through: client, app: app)
        #expect(await received.wait(for: 100, timeout: .seconds(60)))

        try await cluster.servers[0].shutdown()
        let gone = await received.wait(timeout: .seconds(30)) { !$0.notices.isEmpty }
        #expect(gone)
        try await Self.emit(100..<200, through: client, app: app)
        let again = BufferServer(configuration: .init(listen: endpoint), logger: .quiet)
        try await again.bind()
        defer { Task { try? await again.shutdown() } }
        try await client.close()
        let complete = await received.wait(timeout: .seconds(60)) { $0.count - $0.notices.count >= 200 }
        #expect(complete, "\(received.envelopes.count) received")
        let notices = received.envelopes.filter(\.isNotice).map(\.text)
        #expect(notices.first?.hasPrefix("Sluice: zone z1 is not answering") == true, "\(notices)")
        #expect(notices.contains("Sluice: zone z1 is back; its live lines resume"), "\(notices)")
        let lines = received.envelopes.filter { !$0.isNotice }.map(\.text)
        #expect(Set(lines).count == 200 && lines.count == 200)
        await tail.close()
    }

    /// Lines routed while no server of the zone was up wait at the server
    /// that owns their app; when another server comes up first they go to
    /// it rather than wait for their own, and the emitter is acknowledged.
    @Test func linesWaitingForADeadServerGoToTheFirstThatComesUp() async throws {
        let dead = Endpoint(host: "127.0.0.1", port: try ProcessCluster.freePort())
        let late = Endpoint(host: "127.0.0.1", port: try ProcessCluster.freePort())
        let hash = RendezvousHash(nodes: ["\(dead)", "\(late)"])
        let app = (0..<1000).map { "waiting-\($0)" }.first { hash.owner(of: $0) == 0 }!
        let controller = Controller(
            configuration: .init(
                ingress: Endpoint(host: "127.0.0.1", port: 0), http: Endpoint(host: "127.0.0.1", port: 0),
                zones: ["z1": [dead, late]]),
            logger: .quiet)
        let (ingress, http) = try await controller.bind()
        defer { Task { try? await controller.shutdown() } }
        let client = try await IngressClient.connect(to: [ingress])
        try await Self.emit(0..<50, through: client, app: app)

        let server = BufferServer(configuration: .init(listen: late), logger: .quiet)
        try await server.bind()
        defer { Task { try? await server.shutdown() } }
        try await client.close(timeout: .seconds(30))
        let reader = ControllerClient(ingress: ingress, http: HTTPURL(host: http.host, port: http.port))
        let recent = try await reader.recent(app: app)
        #expect(recent.map(\.text) == (0..<50).map { "line \($0)" })
    }

    @Test func aControllerDiesMidStream() async throws {
        let cluster = try await TestCluster.start(servers: 2)
        defer { Task { await cluster.shutdown() } }
        let endpoints = try await cluster.servers.asyncMap { try await $0.bind() }
        // A second controller in the same zone, which the emitter fails over to.
        let second = Controller(
            configuration: .init(
                ingress: Endpoint(host: "127.0.0.1", port: 0), http: Endpoint(host: "127.0.0.1", port: 0),
                zones: ["z1": endpoints]),
            logger: .quiet)
        let (ingress, http) = try await second.bind()
        defer { Task { try? await second.shutdown() } }
        let reader = ControllerClient(ingress: ingress, http: HTTPURL(host: http.host, port: http.port))

        let app = "controller-failover"
        let received = Received()
        let tail = try await reader.tail(app: app, into: received)
        let client = try await IngressClient.connect(to: [cluster.ingress, ingress])
        #expect(await client.currentController == cluster.ingress)
        let emitting = Task { try await Self.emitAll(client, app: app) }

        #expect(await received.wait(for: Self.total / 4, timeout: .seconds(60)))
        try await cluster.controller.shutdown()

        try await emitting.value
        let complete = await received.wait(timeout: .seconds(60)) { $0.count - $0.notices.count >= Self.total }
        #expect(complete)
        Self.checkEveryLineOnce(received)
        await tail.close()
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
