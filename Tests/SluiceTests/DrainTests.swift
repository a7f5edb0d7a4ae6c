import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SluiceBindings
import SluiceCLI
import SluiceDrain
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

/// Drains end to end: bindings made through the controller's API, a real
/// rsyslogd (TCP, TLS and UDP) or an HTTPS collector as the endpoint, and
/// what happens while the endpoint is down.
@Suite(.serialized) struct DrainTests {
    /// A cluster with a SQLite bindings store, short backoffs, and helpers.
    struct Bed {
        let directory: URL
        let cluster: TestCluster
        var drains: Drains { Drains(base: cluster.http) }

        static func start(
            queueCapacity: Int = 10_000, recentPerApp: Int = 10_000, noticeInterval: Duration = .seconds(10)
        ) async throws -> Bed {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "sluice-drains-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let store = try SQLiteBindingStore(
                path: directory.appendingPathComponent("bindings.sqlite").path, pollInterval: .milliseconds(50))
            let cluster = try await TestCluster.start(
                recentPerApp: recentPerApp, bindings: store,
                drainSettings: .init(
                    queueCapacity: queueCapacity, minBackoff: .milliseconds(100), maxBackoff: .seconds(1),
                    noticeInterval: noticeInterval, noticeDelay: .milliseconds(500)))
            return Bed(directory: directory, cluster: cluster)
        }

        /// Adds a drain through the API and waits until every server runs it.
        func add(app: String, url: String, name: String? = nil) async throws -> Drains.Binding {
            let binding = try await drains.add(app: app, url: url, name: name)
            let running = await waitUntil(timeout: .seconds(10)) {
                cluster.drains.allSatisfy { manager in manager.runners.contains { $0.id == binding.id } }
            }
            try #require(running, "the servers did not start drain \(binding.id)")
            return binding
        }

        func runners(_ id: String) -> [DrainRunner] {
            cluster.drains.flatMap(\.runners).filter { $0.id == id }
        }

        func shutdown() async {
            await cluster.shutdown()
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// The line a drain must write for a log envelope emitted by `emit`
    /// (REFERENCE §4), built here by hand.
    static func expectedLine(_ envelope: Loggregator_V2_Envelope, hostname: String? = nil) -> String {
        let pri = envelope.log.type == .err ? "<11>" : "<14>"
        let time = WallClock.utcTime(nanoseconds: envelope.timestamp)
        let app = envelope.sourceID
        return "\(pri)1 \(time) \(hostname ?? app) \(app) [APP/PROC/WEB/0] - - "
            + String(decoding: envelope.log.payload, as: UTF8.self)
    }

    static func lines(_ count: Int, from start: Int = 0) -> [String] {
        (start..<start + count).map { "line \($0) \"quoted\" é ] end" }
    }

    @Test func syslogOverTCPDeliversEveryLineInOrderByteExact() async throws {
        let bed = try await Bed.start()
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        let app = "drain-tcp"
        let binding = try await bed.add(app: app, url: "syslog://127.0.0.1:\(receiver.port)")
        try await bed.cluster.emit(app: app, lines: Self.lines(10_000))
        let received = try await receiver.waitForLines(10_000, timeout: .seconds(60))
        let sent = try await bed.cluster.recent(app: app, limit: 10_000)
        try #require(sent.count == 10_000)
        #expect(received.count == 10_000)
        let expected = sent.map { Self.expectedLine($0) }
        let firstDifference = received.indices.first { $0 >= expected.count || received[$0] != expected[$0] }
        #expect(firstDifference == nil, "first difference at line \(firstDifference ?? -1)")
        #expect(bed.cluster.metric("sluice_server_drain_envelopes_sent_total{drain=\"\(binding.id)\"}") == 10_000)
        receiver.stop()
        await bed.shutdown()
    }

    @Test func syslogOverTLSVerifiesTheCertificateAgainstTheGivenCA() async throws {
        let bed = try await Bed.start()
        let certificates = try TestCertificates.make(in: bed.directory.appendingPathComponent("certs"))
        let receiver = try RsyslogReceiver.start(mode: .tls(certificates), directory: bed.directory)
        let app = "drain-tls"
        _ = try await bed.add(
            app: app, url: "syslog-tls://localhost:\(receiver.port)?ca=\(certificates.caPath)&hostname=web-1")
        try await bed.cluster.emit(app: app, lines: Self.lines(10_000))
        let received = try await receiver.waitForLines(10_000, timeout: .seconds(60))
        let sent = try await bed.cluster.recent(app: app, limit: 10_000)
        #expect(received == sent.map { Self.expectedLine($0, hostname: "web-1") })
        receiver.stop()
        await bed.shutdown()
    }

    /// Without the CA the certificate does not verify: nothing is sent, the
    /// lines stay queued, and the drain says it is down.
    @Test func syslogOverTLSRefusesAnUnknownCertificate() async throws {
        let bed = try await Bed.start()
        let certificates = try TestCertificates.make(in: bed.directory.appendingPathComponent("certs"))
        let receiver = try RsyslogReceiver.start(mode: .tls(certificates), directory: bed.directory)
        let app = "drain-tls-unknown-ca"
        let binding = try await bed.add(app: app, url: "syslog-tls://localhost:\(receiver.port)")
        try await bed.cluster.emit(app: app, lines: Self.lines(10))
        let queued = await waitUntil(timeout: .seconds(10)) {
            bed.runners(binding.id).contains { $0.queuedCount == 10 }
                && bed.cluster.metric("sluice_server_drain_up{drain=\"\(binding.id)\"}") == 0
        }
        #expect(queued)
        #expect(receiver.lines().isEmpty)
        // With ?skip-verify=true the same endpoint takes them.
        let unchecked = "drain-tls-skip-verify"
        _ = try await bed.add(app: unchecked, url: "syslog-tls://localhost:\(receiver.port)?skip-verify=true")
        try await bed.cluster.emit(app: unchecked, lines: Self.lines(10))
        let received = try await receiver.waitForLines(10, timeout: .seconds(20))
        #expect(received.allSatisfy { $0.contains(" \(unchecked) \(unchecked) ") })
        receiver.stop()
        await bed.shutdown()
    }

    @Test func syslogOverUDPSendsOneDatagramPerLineCutTo2048Bytes() async throws {
        let bed = try await Bed.start()
        let receiver = try RsyslogReceiver.start(mode: .udp, directory: bed.directory)
        let app = "drain-udp"
        _ = try await bed.add(app: app, url: "syslog-udp://127.0.0.1:\(receiver.port)")
        let long = String(repeating: "x", count: 5000)
        try await bed.cluster.emit(app: app, lines: Self.lines(50) + [long])
        let received = try await receiver.waitForLines(51, timeout: .seconds(30))
        let sent = try await bed.cluster.recent(app: app)
        #expect(Array(received.prefix(50)) == sent.prefix(50).map { Self.expectedLine($0) })
        let cut = try #require(received.last)
        #expect(cut.utf8.count + 1 == 2048, "the datagram with its LF is 2048 bytes")
        #expect(cut.hasSuffix(String(decoding: DrainLine.cutMarker.dropLast(), as: UTF8.self)))
        #expect(cut.hasPrefix(String(Self.expectedLine(sent.last!).prefix(200))))
        receiver.stop()
        await bed.shutdown()
    }

    /// The endpoint goes away; what is emitted meanwhile is held and
    /// delivered, in order, when it returns.
    @Test func linesEmittedWhileTheReceiverIsDownArriveWhenItReturns() async throws {
        let bed = try await Bed.start()
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        let app = "drain-restart"
        let binding = try await bed.add(app: app, url: "syslog://127.0.0.1:\(receiver.port)")
        try await bed.cluster.emit(app: app, lines: Self.lines(100))
        _ = try await receiver.waitForLines(100, timeout: .seconds(30))
        receiver.stop()
        // The drain has seen its connection close before anything more is sent.
        #expect(await waitUntil(timeout: .seconds(10)) { !bed.runners(binding.id).contains { $0.connectionIsOpen } })
        try await bed.cluster.emit(app: app, lines: Self.lines(5000, from: 100))
        #expect(await waitUntil(timeout: .seconds(10)) { bed.runners(binding.id).contains { $0.queuedCount == 5000 } })
        try receiver.restart()
        let received = try await receiver.waitForLines(5100, timeout: .seconds(60))
        let sent = try await bed.cluster.recent(app: app, limit: 10_000)
        #expect(received == sent.map { Self.expectedLine($0) })
        receiver.stop()
        await bed.shutdown()
    }

    /// A graceful stop delivers what a drain holds before the drain stops:
    /// without the flush, stopping would discard the 2,000 lines queued
    /// while the receiver was down.
    @Test func aGracefulStopDeliversWhatADrainHoldsFirst() async throws {
        let bed = try await Bed.start()
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        receiver.stop()
        let app = "drain-flush"
        let binding = try await bed.add(app: app, url: "syslog://127.0.0.1:\(receiver.port)")
        try await bed.cluster.emit(app: app, lines: Self.lines(2000))
        #expect(await waitUntil(timeout: .seconds(10)) { bed.runners(binding.id).contains { $0.queuedCount == 2000 } })
        try receiver.restart()
        // The stop begins now, with every line still queued.
        var emptied = true
        for manager in bed.cluster.drains where !(await manager.flush(within: .seconds(30))) { emptied = false }
        #expect(emptied)
        for manager in bed.cluster.drains { await manager.shutdown() }
        let received = try await receiver.waitForLines(2000, timeout: .seconds(30))
        #expect(received.count == 2000)
        receiver.stop()
        await bed.shutdown()
    }

    /// A server that leaves while a drain's endpoint is down hands what the
    /// drain holds to the server that takes the app next, which delivers it
    /// once the endpoint is back: the stop drops nothing. Without the
    /// handoff the leaving server's drain would hold the 2,000 lines until
    /// its stop, then drop them.
    @Test func aServerLeavingWhileADrainIsDownHandsItsLinesToTheNextServer() async throws {
        let bed = try await Bed.start()
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        receiver.stop()
        let app = "drain-handoff"
        let binding = try await bed.add(app: app, url: "syslog://127.0.0.1:\(receiver.port)")
        try await bed.cluster.emit(app: app, lines: Self.lines(2000))
        let holding = { @Sendable (runner: DrainRunner) in runner.queuedCount == 2000 && runner.endpointIsDown }
        #expect(await waitUntil(timeout: .seconds(10)) { bed.runners(binding.id).contains(where: holding) })
        let managers = bed.cluster.drains
        let leaving = try #require(managers.firstIndex { $0.runners.contains { $0.id == binding.id && holding($0) } })
        let next = try #require(managers.indices.first { $0 != leaving })
        let runner = { (index: Int) in managers[index].runners.first { $0.id == binding.id }! }

        await bed.cluster.servers[leaving].leave()
        #expect(await waitUntil(timeout: .seconds(10)) { runner(next).queuedCount == 2000 })
        #expect(runner(leaving).queuedCount == 0)
        // The leaving server's drains have nothing left to wait for or drop.
        #expect(await managers[leaving].flush(within: .seconds(1)))
        await managers[leaving].shutdown()
        let id = "{drain=\"\(binding.id)\"}"
        #expect(await waitUntil { bed.cluster.metric("sluice_server_drain_envelopes_handed_off_total\(id)") == 2000 })
        #expect(await waitUntil { bed.cluster.metric("sluice_server_drain_envelopes_taken_over_total\(id)") == 2000 })
        #expect((bed.cluster.metric("sluice_server_drain_envelopes_dropped_total\(id)") ?? 0) == 0)

        try receiver.restart()
        let received = try await receiver.waitForLines(2000, timeout: .seconds(30))
        #expect(received.map { $0.components(separatedBy: " - - ").last! } == Self.lines(2000))
        receiver.stop()
        await bed.shutdown()
    }

    /// Past the queue's size, the oldest are dropped; the app's readers are
    /// told how many, naming the drain; the newest are delivered.
    @Test func overflowWhileDownIsToldInBandWithTheRightCount() async throws {
        let bed = try await Bed.start(queueCapacity: 1000)
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        receiver.stop()
        let app = "drain-overflow"
        let binding = try await bed.add(
            app: app, url: "syslog://user:s3cret@127.0.0.1:\(receiver.port)", name: "my-rsyslog")
        try await bed.cluster.emit(app: app, lines: Self.lines(1500))
        let metric = "sluice_server_drain_envelopes_dropped_total{drain=\"\(binding.id)\"}"
        #expect(await waitUntil(timeout: .seconds(10)) { bed.cluster.metric(metric) == 500 })
        var notices: [String] = []
        let told = await waitUntil(timeout: .seconds(20)) {
            notices = ((try? await bed.cluster.recent(app: app, limit: 10_000)) ?? [])
                .filter { $0.tags["sluice_notice"] == "dropped" }
                .map { String(decoding: $0.log.payload, as: UTF8.self) }
            return Self.droppedCount(notices) == 500
        }
        #expect(told, "notices: \(notices)")
        #expect(notices.allSatisfy { $0.contains("my-rsyslog") && $0.contains("syslog://***@127.0.0.1") })
        #expect(!notices.contains { $0.contains("s3cret") })
        try receiver.restart()
        let received = try await receiver.waitForLines(1000, timeout: .seconds(60))
        #expect(received.map { $0.components(separatedBy: " - - ").last! } == Self.lines(1000, from: 500))
        receiver.stop()
        await bed.shutdown()
    }

    /// The sum of "N messages dropped" over drop notices.
    static func droppedCount(_ notices: [String]) -> Int {
        notices.compactMap { text -> Int? in
            guard let range = text.range(of: " messages dropped") else { return nil }
            return Int(text[..<range.lowerBound].split(separator: " ").last ?? "")
        }.reduce(0, +)
    }

    @Test func httpsBatchesAreLogplexFramesRetriedOn500AndDroppedOn400() async throws {
        let bed = try await Bed.start()
        let certificates = try TestCertificates.make(in: bed.directory.appendingPathComponent("certs"))
        let collector = try await HTTPSReceiver.start(certificates: certificates)
        let app = "drain-https"
        let binding = try await bed.add(
            app: app, url: "https://user:pw@localhost:\(collector.port)/logs?token=t0k&ca=\(certificates.caPath)")
        collector.setResponses([500])
        try await bed.cluster.emit(app: app, lines: Self.lines(10))
        let first = try await collector.waitForRequests(2, timeout: .seconds(20))
        #expect(first[0].body == first[1].body, "a 500 is retried with the same batch")
        #expect(first[0].header("Logplex-Frame-Id") == first[1].header("Logplex-Frame-Id"))
        for request in first {
            #expect(request.method == .POST)
            #expect(request.uri == "/logs?token=t0k")
            #expect(request.header("Content-Type") == "application/logplex-1")
            #expect(request.header("Authorization") == "Basic " + Data("user:pw".utf8).base64EncodedString())
            let frames = try HTTPSReceiver.logplexFrames(request.body)
            #expect(request.header("Logplex-Msg-Count") == String(frames.count))
            let sent = try await bed.cluster.recent(app: app)
            #expect(frames.map { String(decoding: $0, as: UTF8.self) } == sent.map { Self.expectedLine($0) + "\n" })
        }
        collector.setResponses([400])
        try await bed.cluster.emit(app: app, lines: Self.lines(5, from: 10))
        _ = try await collector.waitForRequests(3, timeout: .seconds(20))
        try await bed.cluster.emit(app: app, lines: Self.lines(3, from: 15))
        let all = try await collector.waitForRequests(4, timeout: .seconds(20))
        let last = try HTTPSReceiver.logplexFrames(all[3].body).map { String(decoding: $0, as: UTF8.self) }
        #expect(last.map { $0.components(separatedBy: " - - ").last! } == Self.lines(3, from: 15).map { $0 + "\n" })
        #expect(bed.cluster.metric("sluice_server_drain_envelopes_dropped_total{drain=\"\(binding.id)\"}") == 5)
        // 429 (too many requests) is tried again, as a 5xx is.
        collector.setResponses([429])
        try await bed.cluster.emit(app: app, lines: Self.lines(2, from: 18))
        let throttled = try await collector.waitForRequests(6, timeout: .seconds(20))
        #expect(throttled[4].body == throttled[5].body)
        #expect(throttled[4].header("Logplex-Frame-Id") == throttled[5].header("Logplex-Frame-Id"))
        #expect(throttled[4].header("Logplex-Frame-Id") != throttled[3].header("Logplex-Frame-Id"))
        #expect(await waitUntil(timeout: .seconds(10)) {
            let notices = ((try? await bed.cluster.recent(app: app)) ?? []).filter { $0.tags["sluice_notice"] == "dropped" }
            return Self.droppedCount(notices.map { String(decoding: $0.log.payload, as: UTF8.self) }) == 5
        })
        try await collector.stop()
        await bed.shutdown()
    }

    /// One drain's endpoint takes the connection but never reads. It fills,
    /// its drain drops and counts; the app's other drain and its tail get
    /// every line.
    @Test func aStalledDrainSlowsNothingElse() async throws {
        // Queues that hold the whole run, so that the working drain loses
        // nothing even on a loaded machine: what is checked is that the
        // stuck one does not hold it up.
        let bed = try await Bed.start(queueCapacity: 100_000)
        let stalled = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelOption(.autoRead, value: false)
            .childChannelOption(.socketOption(.so_rcvbuf), value: 4096)
            .bind(host: "127.0.0.1", port: 0).get()
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        let app = "drain-stalled"
        let stuck = try await bed.add(app: app, url: "syslog://127.0.0.1:\(stalled.localAddress!.port!)", name: "stuck")
        let working = try await bed.add(app: app, url: "syslog://127.0.0.1:\(receiver.port)", name: "working")
        let received = Received()
        let tail = try await bed.cluster.tail(app: app, into: received)
        // More than the socket buffers hold (about 9 MB of lines).
        let total = 30_000
        let long = String(repeating: "y", count: 300)
        try await bed.cluster.emit(app: app, lines: (0..<total).map { "\($0) \(long)" })
        let lines = try await receiver.waitForLines(total, timeout: .seconds(60))
        #expect(lines.count == total)
        #expect(await received.wait(for: total, timeout: .seconds(60)))
        let stuckSent = bed.cluster.metric("sluice_server_drain_envelopes_sent_total{drain=\"\(stuck.id)\"}") ?? 0
        #expect(stuckSent < Double(total), "the stuck drain sent \(stuckSent)")
        #expect(bed.runners(stuck.id).contains { $0.queuedCount > 0 })
        #expect(bed.cluster.metric("sluice_server_drain_envelopes_dropped_total{drain=\"\(working.id)\"}") == 0)
        await tail.close()
        try await stalled.close()
        receiver.stop()
        await bed.shutdown()
    }

    /// The server that owns the app goes away; the stand-in server that takes
    /// its lines drains them.
    @Test func theStandInServerDrainsAfterAFailover() async throws {
        let bed = try await Bed.start()
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: bed.directory)
        let app = "drain-failover"
        _ = try await bed.add(app: app, url: "syslog://127.0.0.1:\(receiver.port)")
        try await bed.cluster.emit(app: app, lines: Self.lines(100))
        _ = try await receiver.waitForLines(100, timeout: .seconds(30))
        let owner = try #require(bed.cluster.servers.firstIndex { $0.store.totals.apps > 0 })
        await bed.cluster.drains[owner].shutdown()
        try await bed.cluster.servers[owner].shutdown()
        try await bed.cluster.emit(app: app, lines: Self.lines(100, from: 100))
        let lines = try await receiver.waitForLines(200, timeout: .seconds(30))
        #expect(lines.map { $0.components(separatedBy: " - - ").last! } == Self.lines(200))
        receiver.stop()
        await bed.shutdown()
    }

    /// Controllers write to PostgreSQL, servers LISTEN: a binding added
    /// through the API is running on every server within 2 s, and so is its
    /// removal. The two sides use separate connections, as separate
    /// processes would.
    @Test func thePostgreSQLStoreCarriesBindingsFromControllerToServers() async throws {
        let postgres = try await PostgresServer.start()
        let serverSide = try await BindingStores.open(postgres.url, logger: .quiet)
        let controllerSide = try await BindingStores.open(postgres.url, logger: .quiet)
        let cluster = try await TestCluster.start(bindings: serverSide, controllerBindings: controllerSide)
        let drains = Drains(base: cluster.http)
        // Both servers have read the (empty) set: their LISTEN is in place.
        #expect(await waitUntil(timeout: .seconds(10)) { cluster.drains.allSatisfy { $0.appliedCount > 0 } })

        let added = ContinuousClock.now
        let binding = try await drains.add(app: "pg-app", url: "syslog://127.0.0.1:9", name: "pg-drain")
        #expect(await waitUntil(timeout: .seconds(10)) {
            cluster.drains.allSatisfy { $0.runners.contains { $0.id == binding.id && $0.name == "pg-drain" } }
        })
        let took = ContinuousClock.now - added
        #expect(took < .seconds(2), "a server applied the binding after \(took)")
        #expect(try await drains.list(app: nil).map(\.id) == [binding.id])

        let removed = ContinuousClock.now
        try await drains.remove(app: "pg-app", drain: "pg-drain")
        #expect(await waitUntil(timeout: .seconds(10)) { cluster.drains.allSatisfy { $0.runners.isEmpty } })
        #expect(ContinuousClock.now - removed < .seconds(2))

        // Reopening migrates nothing twice and keeps what is there.
        let again = try await BindingStores.open(postgres.url, logger: .quiet)
        #expect(try await again.list(app: nil).isEmpty)
        await again.close()
        await cluster.shutdown()
        await serverSide.close()
        await controllerSide.close()
        postgres.stop()
    }

    @Test func theAPIAddsListsAndRemovesBindingsAndExplainsRefusals() async throws {
        let bed = try await Bed.start()
        let added = try await bed.drains.add(app: "api-app", url: "syslog://user:s3cret@logs.example.com", name: "pt")
        #expect(added.url == "syslog://***@logs.example.com")
        #expect(added.name == "pt")
        let other = try await bed.drains.add(app: "api-app", url: "https://c.example.com/in?api_key=k3y", name: nil)
        #expect(other.name == other.id)
        #expect(!other.url.contains("k3y"))
        #expect(try await bed.drains.list(app: "api-app").map(\.id) == [added.id, other.id])
        #expect(try await bed.drains.list(app: nil).count == 2)

        await Self.expectRefusal(409, "already has a drain") {
            _ = try await bed.drains.add(app: "api-app", url: "syslog://user:s3cret@logs.example.com", name: nil)
        }
        await Self.expectRefusal(409, "named pt") {
            _ = try await bed.drains.add(app: "api-app", url: "syslog://elsewhere", name: "pt")
        }
        await Self.expectRefusal(422, "scheme") {
            _ = try await bed.drains.add(app: "api-app", url: "ftp://h", name: nil)
        }
        await Self.expectRefusal(422, "port") {
            _ = try await bed.drains.add(app: "api-app", url: "syslog://h:99999", name: nil)
        }
        await Self.expectRefusal(422, "unknown option") {
            _ = try await bed.drains.add(app: "api-app", url: "syslog://h?nonsense=1", name: nil)
        }
        let badJSON = try await HTTPClient.request(
            .POST, bed.cluster.http.with(path: "/apps/api-app/drains"), body: ByteBuffer(string: "{url:"))
        #expect(badJSON.status.code == 400)

        try await bed.drains.remove(app: "api-app", drain: "pt")
        try await bed.drains.remove(app: "api-app", drain: other.id)
        await Self.expectRefusal(404, "no drain") { try await bed.drains.remove(app: "api-app", drain: "pt") }
        #expect(try await bed.drains.list(app: "api-app").isEmpty)
        await bed.shutdown()
    }

    static func expectRefusal(
        _ status: Int, _ text: String, sourceLocation: SourceLocation = #_sourceLocation,
        _ call: () async throws -> Void
    ) async {
        do {
            try await call()
            Issue.record("expected \(status), but the call succeeded", sourceLocation: sourceLocation)
        } catch let failure as Drains.Failure {
            #expect(failure.description.hasPrefix("\(status) "), "\(failure)", sourceLocation: sourceLocation)
            #expect(failure.description.contains(text), "\(failure)", sourceLocation: sourceLocation)
            #expect(!failure.description.contains("s3cret"), sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }
}
