import Foundation
import NIOCore
import NIOHTTP1
import SluiceAuth
import SluiceCLI
import SluiceController
import SluiceServer
import SluiceProto
import SluiceShipping
import SluiceTransport
import SluiceWire
import SwiftProtobuf
import Testing

/// log-cache's HTTP API on the controller, read by a Python client that
/// does what the cf CLI does (`Tests/Clients/cf_logcache.py`): the recent
/// read of `cf logs --recent` and the walk of `cf logs`.
@Suite(.serialized) struct LogCacheTests {
    static let client = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Clients/cf_logcache.py").path

    static func line(_ number: Int) -> String { String(format: "line %06d", number) }

    /// Starts the client; the caller reads its output once it has done its part.
    static func start(
        _ url: HTTPURL, app: String, _ mode: String, out: String, _ extra: [String] = [], token: String? = nil
    ) throws -> Process {
        let process = Process()
        if let token { process.environment = ProcessInfo.processInfo.environment.merging(["CF_TOKEN": token]) { $1 } }
        process.executableURL = URL(fileURLWithPath: findProgram("python3") ?? "/usr/bin/python3")
        process.arguments = [client, "http://\(url.host):\(url.port)", app, mode, out] + extra
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return process
    }

    /// Waits for the client to finish; its status and stderr.
    static func finish(_ process: Process, timeout: Duration = .seconds(120)) throws -> (Int32, String) {
        let pipes = [process.standardOutput as! Pipe, process.standardError as! Pipe].map(\.fileHandleForReading)
        guard let output = readToEnd(pipes, before: .now + timeout) else {
            stopProcess(process)
            throw ChildProcessError("cf_logcache.py did not finish within \(timeout)")
        }
        try waitForExit(process, timeout: .seconds(10), "cf_logcache.py")
        return (process.terminationStatus, String(decoding: output[1], as: UTF8.self))
    }

    static func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    /// `cf logs`: the walk starts before lines arrive, and gets all 4,000
    /// of them once each, in order, while they come at about 1,000 a
    /// second; `cf logs --recent` then gets the newest 1,000 in order.
    @Test func theCLIsWalkAndRecentReadGetEveryLineOnceInOrder() async throws {
        let cluster = try await TestCluster.start(servers: 2, recentPerApp: 20_000)
        defer { Task { await cluster.shutdown() } }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-logcache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let app = "lc-walk"
        let total = 4_000
        try await cluster.emit(app: app, lines: [Self.line(0)])
        let walked = directory.appendingPathComponent("walk").path
        // The walk starts a second before the newest line it first sees: the
        // rest come once it has seen line 0 (a walker slow to start under
        // load saw a later line first, and began after line 0).
        let started = directory.appendingPathComponent("started").path
        let walker = try Self.start(
            cluster.http, app: app, "walk", out: walked, ["--expect", "\(total)", "--timeout", "90", "--started", started])
        #expect(await waitUntil(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: started) || !walker.isRunning })
        // A steady 1,000 lines a second, in batches of 100.
        for start in stride(from: 1, to: total, by: 100) {
            try await cluster.emit(app: app, lines: (start..<min(start + 100, total)).map(Self.line))
            try await Task.sleep(for: .milliseconds(100))
        }
        let (status, errors) = try Self.finish(walker)
        let got = try Self.lines(walked)
        // Which lines the walk passed by, if any, and whether the servers
        // hold them: what to look at if this fails.
        let missing = Set((0..<total).map(Self.line)).subtracting(got).sorted()
        var held = "?"
        if !missing.isEmpty {
            let recent = try await cluster.recent(app: app, limit: 20_000).map { String(decoding: $0.log.payload, as: UTF8.self) }
            held = "\(Set(missing).isSubset(of: recent) ? "all" : "not all") held by the servers"
        }
        #expect(status == 0, "\(errors); missing \(missing.count): \(missing.prefix(5))…\(missing.suffix(5)), \(held)")
        #expect(got == (0..<total).map(Self.line), "\(got.count) lines, missing \(missing.count)")

        let recent = directory.appendingPathComponent("recent").path
        let (recentStatus, recentErrors) = try Self.finish(try Self.start(cluster.http, app: app, "recent", out: recent))
        #expect(recentStatus == 0, "\(recentErrors)")
        #expect(try Self.lines(recent) == ((total - 1_000)..<total).map(Self.line))
    }

    /// What a walk read while lines arrived at about 1,000 a second and the
    /// app's owning server stopped half way (`total` lines, the stop after
    /// line `stop`).
    struct FailoverWalk {
        var out: [String]
        var cluster: TestCluster
        var owner: Endpoint
        /// When each batch of 100 lines was emitted.
        var emittedAt: [ContinuousClock.Instant]
        /// When the owner was stopped.
        var stoppedAt: ContinuousClock.Instant
        static let total = 6_000
        static let stop = 3_000

        var notices: [(offset: Int, element: String)] { out.enumerated().filter { $0.element.hasPrefix("Sluice: ") } }
        var numbers: [Int] { out.filter { !$0.hasPrefix("Sluice: ") }.compactMap { Int($0.dropFirst("line ".count)) } }
    }

    static func walkAcrossAFailover(app: String, handover: ServerLink.Handover) async throws -> FailoverWalk {
        let cluster = try await TestCluster.start(servers: 2, recentPerApp: 20_000, handover: handover)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-logcache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let endpoints = try await cluster.servers.asyncMap { try await $0.bind() }
        let owner = try #require(RendezvousHash(nodes: endpoints.map(\.description)).owner(of: app))
        let (total, stop) = (FailoverWalk.total, FailoverWalk.stop)
        try await cluster.emit(app: app, lines: [Self.line(0)])
        let walked = directory.appendingPathComponent("walk").path
        let started = directory.appendingPathComponent("started").path
        let walker = try Self.start(
            cluster.http, app: app, "walk", out: walked,
            ["--until", Self.line(total - 1), "--timeout", "120", "--started", started])
        // The rest once the walk has seen line 0 (see the test above).
        #expect(await waitUntil(timeout: .seconds(30)) { FileManager.default.fileExists(atPath: started) || !walker.isRunning })
        var emittedAt: [ContinuousClock.Instant] = []
        var stoppedAt = ContinuousClock.now
        for start in stride(from: 1, to: total, by: 100) {
            if start > stop && emittedAt.count == stop / 100 {
                // Every line before here was acknowledged by the owner.
                stoppedAt = .now
                try await cluster.servers[owner].shutdown()
                // Once the controller has noticed, lines go to the stand-in.
                let noticed = await waitUntil(timeout: .seconds(30)) {
                    let response = try? await HTTPClient.get(
                        cluster.http.with(path: "/api/v1/read/\(app)?envelope_types=LOG&limit=1000"))
                    return response.map { String(buffer: $0.body).contains(#""sluice_notice":"server_lost""#) } ?? false
                }
                #expect(noticed, "reads never told of the stop")
            }
            emittedAt.append(.now)
            try await cluster.emit(app: app, lines: (start..<min(start + 100, total)).map(Self.line))
            try await Task.sleep(for: .milliseconds(100))
        }
        let (status, errors) = try Self.finish(walker)
        #expect(status == 0, "\(errors)")
        return FailoverWalk(
            out: try Self.lines(walked), cluster: cluster, owner: endpoints[owner], emittedAt: emittedAt, stoppedAt: stoppedAt)
    }

    /// `cf logs` across a buffer server failover: the controller hands what
    /// the stopped owner acknowledged lately (five seconds by default, 30
    /// here, so that the whole run is handed over however slow the
    /// machine) to the stand-in, so the walk, which reads up to two seconds
    /// ago, misses nothing. Reads of the app's history are told where what
    /// the owner held stops.
    @Test func aWalkAcrossAServerFailoverMissesNothing() async throws {
        let app = "lc-failover"
        let walk = try await Self.walkAcrossAFailover(app: app, handover: .init(window: .seconds(30)))
        defer { Task { await walk.cluster.shutdown() } }
        #expect(walk.notices.isEmpty, "\(walk.notices)")
        #expect(walk.numbers == Array(0..<FailoverWalk.total), "\(walk.numbers.count) lines")
        // The oldest log the app's servers have now is the notice: the
        // stand-in holds the five seconds handed to it, which reach back
        // before the first line here, and what is newer.
        let response = try await HTTPClient.get(
            walk.cluster.http.with(path: "/api/v1/read/\(app)?envelope_types=LOG&limit=1000"))
        let body = String(buffer: response.body)
        #expect(response.headers["Sluice-Partial"] == ["z1"])
        let notice = try #require(body.range(of: #""sluice_notice":"server_lost""#))
        let lineZero = try #require(body.range(of: Data(Self.line(0).utf8).base64EncodedString()))
        #expect(notice.lowerBound < lineZero.lowerBound)
        #expect(walk.cluster.metric(#"sluice_controller_history_envelopes_total{outcome="handed_over"}"#) ?? 0 >= Double(FailoverWalk.stop))
    }

    /// With no handover (`--handover-window 0`), the lines the owner held
    /// that the walk had not yet read are gone with it, as with
    /// log-cache's nodes: the walk gets every other line once, in order,
    /// and where the gap is it meets the notice that tells of it.
    @Test func withoutAHandoverAWalkIsToldWhatItMissed() async throws {
        let walk = try await Self.walkAcrossAFailover(app: "lc-failover-0", handover: .init(window: .zero, maxBytes: 0))
        defer { Task { await walk.cluster.shutdown() } }
        let (out, notices, numbers) = (walk.out, walk.notices, walk.numbers)
        let (total, stop) = (FailoverWalk.total, FailoverWalk.stop)
        #expect(notices.count == 1, "\(notices)")
        let expected = "Sluice: buffer server \(walk.owner) of zone z1 stopped answering at "
        #expect(notices.first?.element.hasPrefix(expected) == true, "\(notices)")
        #expect(numbers.count == out.count - notices.count, "lines that are neither a line nor a notice")
        #expect(numbers == numbers.sorted() && Set(numbers).count == numbers.count, "out of order or twice")
        // What is missing is one run of lines just before the stop: the
        // owner had them, the walk had not read them.
        let missing = Set(0..<total).subtracting(numbers).sorted()
        #expect(!missing.isEmpty && missing == Array(missing[0]..<(stop + 1)), "missing \(missing.prefix(5))…\(missing.suffix(5))")
        if let first = missing.first {
            // Emitted within the walk's lag of two seconds (and its 250 ms
            // between reads), with a second to spare for a loaded machine.
            let lag = walk.stoppedAt - walk.emittedAt[(first - 1) / 100]
            #expect(lag < .seconds(3.5), "lines emitted \(lag) before the stop were lost")
        }
        #expect(numbers.contains(0) && numbers.suffix(total - stop - 1) == Array((stop + 1)..<total))
        // The notice stands where the gap is.
        if let notice = notices.first {
            let before = out[..<notice.offset].compactMap { Int($0.dropFirst("line ".count)) }
            let after = out[(notice.offset + 1)...].compactMap { Int($0.dropFirst("line ".count)) }
            #expect(before.allSatisfy { $0 <= stop } && after.allSatisfy { $0 > stop })
        }
    }

    /// A read merges both zones by time, and meta adds up both zones.
    @Test func aReadMergesTheZones() async throws {
        let zones = try await ZonesTests.Zones.start()
        defer { Task { await zones.shutdown() } }
        let app = "lc-zones"
        for (index, start) in stride(from: 0, to: 600, by: 10).enumerated() {
            try await zones.clients[index % 2 == 0 ? "z1" : "z2"]!.emit(app: app, lines: (start..<start + 10).map(Self.line))
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-logcache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let recent = directory.appendingPathComponent("recent").path
        let (status, errors) = try Self.finish(try Self.start(zones.clients["z2"]!.http, app: app, "recent", out: recent))
        #expect(status == 0, "\(errors)")
        #expect(try Self.lines(recent) == (0..<600).map(Self.line))

        // Each zone's server keeps to the limit, and the merge takes the
        // newest (or oldest) of both: 25 lines from each zone here.
        for (query, expected) in [("descending=true&limit=50", Array((550..<600).reversed())), ("limit=50", Array(0..<50))] {
            let response = try await HTTPClient.get(zones.clients["z1"]!.http.with(path: "/api/v1/read/\(app)?\(query)"))
            let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            let batch = ((object?["envelopes"] as? [String: Any])?["batch"] as? [[String: Any]]) ?? []
            let lines = batch.compactMap { ($0["log"] as? [String: Any])?["payload"] as? String }
                .compactMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
            #expect(lines == expected.map(Self.line), "\(query)")
        }
        let meta = try await HTTPClient.get(zones.clients["z1"]!.http.with(path: "/api/v1/meta"))
        #expect(meta.status.code == 200)
        let object = try JSONSerialization.jsonObject(with: Data(meta.body.readableBytesView)) as? [String: Any]
        let entry = (object?["meta"] as? [String: Any])?[app] as? [String: String]
        #expect(entry?["count"] == "600")
        #expect(entry?["expired"] == "0")
        let oldest = Int64(entry?["oldestTimestamp"] ?? "") ?? 0
        let newest = Int64(entry?["newestTimestamp"] ?? "") ?? 0
        #expect(oldest > 0 && oldest < newest)
    }

    /// `envelope_types` and `name_filter` choose at the servers, before the
    /// limit; a gauge keeps only the metrics whose names match.
    @Test func typesAndNameFilter() async throws {
        let cluster = try await TestCluster.start(servers: 1)
        defer { Task { await cluster.shutdown() } }
        let app = "lc-types"
        var envelopes: [Loggregator_V2_Envelope] = []
        for number in 0..<30 {
            var envelope = Loggregator_V2_Envelope()
            envelope.sourceID = app
            envelope.timestamp = 1_000_000 + Int64(number)
            switch number % 3 {
            case 0: envelope.log.payload = Data(Self.line(number).utf8)
            case 1: envelope.counter.name = number % 2 == 0 ? "requests" : "errors"
            default: envelope.gauge.metrics = ["cpu": .with { $0.value = 1 }, "memory": .with { $0.value = 2 }]
            }
            envelopes.append(envelope)
        }
        var builder = BatchFrameBuilder()
        for envelope in envelopes {
            let bytes: [UInt8] = try envelope.serializedBytes()
            bytes.withUnsafeBytes { builder.append($0) }
        }
        let ingress = try await IngressClient.connect(to: [cluster.ingress])
        try await ingress.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await ingress.close()

        func read(_ query: String) async throws -> [[String: Any]] {
            let response = try await HTTPClient.get(cluster.http.with(path: "/api/v1/read/\(app)?\(query)"))
            #expect(response.status.code == 200, "\(String(buffer: response.body))")
            let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            return ((object?["envelopes"] as? [String: Any])?["batch"] as? [[String: Any]]) ?? []
        }
        let counters = try await read("envelope_types=COUNTER&limit=3")
        #expect(counters.compactMap { ($0["counter"] as? [String: Any])?["name"] as? String } == ["errors", "requests", "errors"])
        #expect(counters.map { $0["timestamp"] as? String } == ["1000001", "1000004", "1000007"])
        let requests = try await read("envelope_types=COUNTER&envelope_types=GAUGE&name_filter=%5Ereq%7Cmem&descending=true&limit=2")
        #expect(requests.count == 2)
        // Newest first: the gauge at 29 (memory only), the counter at 28.
        #expect(requests.map { $0["timestamp"] as? String } == ["1000029", "1000028"])
        let metrics = (requests.first?["gauge"] as? [String: Any])?["metrics"] as? [String: Any]
        #expect(metrics.map { Array($0.keys) } == ["memory"])
        let logs = try await read("envelope_types=LOG&start_time=1000003&end_time=1000010")
        #expect(logs.map { $0["timestamp"] as? String } == ["1000003", "1000006", "1000009"])
        #expect(try await read("start_time=1000010&end_time=1000010").isEmpty)
        let everything = try await read("limit=1000")
        #expect(everything.count == 30)
        let tooMany = try await HTTPClient.get(cluster.http.with(path: "/api/v1/read/\(app)?limit=1001"))
        #expect(tooMany.status.code == 400)
        #expect(String(buffer: tooMany.body).contains("limit (1001) must be 1000 or less"))
        let info = try await HTTPClient.get(cluster.http.with(path: "/api/v1/info"))
        #expect(String(buffer: info.body).hasPrefix(#"{"version":"3.0.0","vm_uptime":""#))
    }

    /// Every refusal is a 404 with log-cache's body; a token for the app
    /// reads it (sent as the cf CLI sends it, `bearer`), and meta shows a
    /// token only its own apps.
    @Test func accessIsNotFoundUnlessTheTokenNamesTheApp() async throws {
        let tokens = try await TestTokens.make("logcache")
        defer { tokens.remove() }
        let cluster = try await TestCluster.start(servers: 1, authorizer: tokens.authorizer)
        defer { Task { await cluster.shutdown() } }
        let admin = try await tokens.token(admin: true)
        let mine = try await tokens.token(apps: ["lc-mine"])
        var client = cluster.client
        client.token = admin
        try await client.emit(app: "lc-mine", lines: [Self.line(1)])
        try await client.emit(app: "lc-other", lines: [Self.line(2)])
        for (path, token) in [
            ("/api/v1/read/lc-mine", nil), ("/api/v1/read/lc-other", mine), ("/api/v1/read/lc-mine", "not.a.token"),
            ("/api/v1/meta", nil),
        ] as [(String, String?)] {
            let response = try await HTTPClient.get(cluster.http.with(path: path), headers: HTTPClient.bearer(token))
            #expect(response.status.code == 404, "\(path)")
            #expect(String(buffer: response.body).contains(#""error":"not_found","message":"resource not found""#))
        }
        let out = tokens.directory.appendingPathComponent("recent").path
        let (status, errors) = try Self.finish(try Self.start(cluster.http, app: "lc-mine", "recent", out: out, token: mine))
        #expect(status == 0, "\(errors)")
        #expect(try Self.lines(out) == [Self.line(1)])
        let meta = try await HTTPClient.get(cluster.http.with(path: "/api/v1/meta"), headers: HTTPClient.bearer(mine))
        let body = String(buffer: meta.body)
        #expect(body.contains(#""lc-mine":{"count":"1""#) && !body.contains("lc-other"), "\(body)")
        let all = try await HTTPClient.get(cluster.http.with(path: "/api/v1/meta"), headers: HTTPClient.bearer(admin))
        #expect(String(buffer: all.body).contains("lc-other"))
        // info is open, as log-cache's is.
        #expect(try await HTTPClient.get(cluster.http.with(path: "/api/v1/info")).status.code == 200)
    }
}
