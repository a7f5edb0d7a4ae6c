import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceController
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import Testing

@Suite(.serialized)
struct AgentTests {
    /// The agent's `GET /readyz` is 503 while no controller is connected
    /// (it takes lines and holds them meanwhile) and 200 once one is.
    @Test func theAgentIsReadyOnceAControllerIsConnected() async throws {
        let reserved = ReservedPort()
        let harness = try await AgentHarness.start(controllers: [Endpoint(host: "127.0.0.1", port: reserved.port)])
        defer { Task { await harness.shutdown() } }
        let http = try #require(harness.addresses.http)
        let url = HTTPURL(host: http.host, port: http.port, path: "/readyz")
        func ready() async -> (status: UInt, body: String) {
            guard let response = try? await HTTPClient.get(url) else { return (0, "") }
            return (response.status.code, String(buffer: response.body))
        }
        let before = await ready()
        #expect(before.status == 503 && before.body.contains("no controller is connected"), "\(before)")
        reserved.release()
        let late = try await harness.lateController(port: reserved.port)
        defer { Task { try? await late.shutdown() } }
        #expect(await waitUntil { await ready().status == 200 })
        #expect(await ready().body == #"{"status":"ready"}"#)
    }

    @Test func framedEnvelopesPassThroughUnchanged() async throws {
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("framed-app")

        let client = try await IngressClient.connect(to: harness.addresses.listen)
        let fields = LogEnvelopeFields(sourceID: "framed-app", instanceID: "3", sourceType: "APP/PROC/WORKER")
        var builder = BatchFrameBuilder()
        for index in 0..<2500 {
            let line = Array("line \(index) \u{1}\u{0}é".utf8)
            line.withUnsafeBytes {
                builder.appendLog(fields, timestamp: 1_000 + Int64(index), payload: $0, extraTags: [LogTag("k", "v")])
            }
            if builder.count == 100 { try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!) }
        }
        try await client.close()

        #expect(await received.wait(for: 2500))
        let envelopes = received.envelopes
        #expect(envelopes.map(\.text) == (0..<2500).map { "line \($0) \u{1}\u{0}é" })
        let first = try #require(envelopes.first)
        #expect(first.instanceID == "3")
        #expect(first.timestamp == 1_000)
        #expect(first.tags == ["source_type": "APP/PROC/WORKER", "k": "v"])
        #expect(harness.metric(#"sluice_agent_envelopes_received_total{input="framed"}"#) == 2500)
    }

    @Test func utilLinuxLoggerOverTCPAndUDPArrives() async throws {
        let logger = try #require(findProgram("logger"), "util-linux's logger is not installed")
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let tcp = try #require(harness.addresses.syslogTCP)
        let udp = try #require(harness.addresses.syslogUDP)
        let received = try await harness.tail("logger-app")

        let octet = try runProgram(
            logger,
            ["--tcp", "--octet-count", "--rfc5424", "-n", "127.0.0.1", "-P", "\(tcp.port)", "-t", "logger-app",
             "-p", "user.err", "octet counted over tcp"])
        #expect(octet.status == 0, "\(octet.stderr)")
        #expect(await received.wait(for: 1))
        let newline = try runProgram(
            logger,
            ["--tcp", "--rfc5424", "-n", "127.0.0.1", "-P", "\(tcp.port)", "-t", "logger-app", "newline framed over tcp"])
        #expect(newline.status == 0, "\(newline.stderr)")
        #expect(await received.wait(for: 2))
        let datagram = try runProgram(
            logger,
            ["--udp", "--rfc5424", "-n", "127.0.0.1", "-P", "\(udp.port)", "-t", "logger-app", "-p", "user.info",
             "one datagram over udp"])
        #expect(datagram.status == 0, "\(datagram.stderr)")
        #expect(await received.wait(for: 3))

        let recent = try await harness.cluster.recent(app: "logger-app")
        #expect(recent.map(\.text) == ["octet counted over tcp", "newline framed over tcp", "one datagram over udp"])
        #expect(recent.map(\.log.type) == [.err, .out, .out])
        // logger's own structured data arrives as tags.
        #expect(recent.first?.tags["timeQuality.tzKnown"] != nil, "\(recent.first?.tags ?? [:])")
        // And `sluice logs --recent` prints them as cf logs does.
        let printed = try await runSluice(["logs", "logger-app", "--recent", "--controller", "\(harness.cluster.http)"])
        #expect(printed.status == 0, "\(printed.stderr)")
        let lines = printed.stdout.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 1).last.map(String.init) ?? "" }
        #expect(
            lines == ["[SYSLOG] ERR octet counted over tcp", "[SYSLOG] OUT newline framed over tcp", "[SYSLOG] OUT one datagram over udp"],
            "\(printed.stdout)")
    }

    @Test func rsyslogForwardsEveryLineOfAFileInOrder() async throws {
        let rsyslogd = try #require(findProgram("rsyslogd"), "rsyslog is not installed (bin/test installs it)")
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let tcp = try #require(harness.addresses.syslogTCP)
        let received = try await harness.tail("rsyslog-app")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-rsyslog-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let lines = (1...10_000).map { "rsyslog line \($0) of the file" }
        try (lines.joined(separator: "\n") + "\n").write(
            to: directory.appendingPathComponent("app.log"), atomically: true, encoding: .utf8)
        let config = """
            global(workDirectory="\(directory.path)")
            module(load="imfile")
            input(type="imfile" File="\(directory.path)/app.log" Tag="rsyslog-app" Severity="info" Facility="local0" ruleset="forward")
            ruleset(name="forward") {
              action(type="omfwd" target="127.0.0.1" port="\(tcp.port)" protocol="tcp" TCP_Framing="octet-counted"
                     template="RSYSLOG_SyslogProtocol23Format")
            }
            """
        let arrived = try await withRsyslogd(rsyslogd, config: config, in: directory) {
            await received.wait(for: lines.count, timeout: .seconds(60))
        }
        #expect(arrived)
        #expect(received.envelopes.map(\.text) == lines)
        #expect(received.envelopes.allSatisfy { $0.sourceID == "rsyslog-app" && $0.log.type == .out })
    }

    @Test func logplexBodiesAreTakenWholeOrRejectedWithTheReason() async throws {
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("shuttle-app")

        let frames = [
            "<13>1 2026-11-24T10:00:00.000001Z host shuttle-app [APP/PROC/WEB/1] - [tags@47450 color=\"blue\"] first",
            "<11>1 2026-11-24T10:00:00.000002Z host shuttle-app [APP/PROC/WEB/1] - - second, an error",
        ]
        let good = try await harness.post(frames.map(octetCounted).joined(), headers: [("Logplex-Msg-Count", "2")])
        #expect(good.status == .noContent)
        // The app query parameter names the app whatever APP-NAME says.
        let named = try await harness.post(
            octetCounted("<14>1 - host token - - - via the query"), path: "/logs?app=shuttle-app")
        #expect(named.status == .noContent)

        // Rejected whole: nothing of these lands.
        let wrongType = try await harness.post(octetCounted(frames[0]), contentType: "text/plain")
        #expect(wrongType.status == .badRequest)
        #expect(String(buffer: wrongType.body).contains("application/logplex-1"))
        let truncated = try await harness.post(octetCounted(frames[0]) + "500 <13>1 - - shuttle-app - - - cut")
        #expect(truncated.status == .badRequest)
        #expect(String(buffer: truncated.body).contains("runs past the end"), "\(String(buffer: truncated.body))")
        let miscounted = try await harness.post(octetCounted(frames[0]), headers: [("Logplex-Msg-Count", "3")])
        #expect(miscounted.status == .badRequest)
        let wrongMethod = try await HTTPClient.get(
            HTTPURL(host: harness.addresses.http!.host, port: harness.addresses.http!.port).with(path: "/logs"))
        #expect(wrongMethod.status == .methodNotAllowed)

        #expect(await received.wait(for: 3))
        let recent = try await harness.cluster.recent(app: "shuttle-app")
        #expect(recent.map(\.text) == ["first", "second, an error", "via the query"])
        // Who sent it is kept: HOSTNAME and the facility as tags (MSGID was `-`).
        #expect(recent[0].tags == ["source_type": "APP/PROC/WEB", "color": "blue", "hostname": "host", "facility": "user"])
        #expect(recent[0].instanceID == "1")
        #expect(recent[0].timestamp == 1_795_514_400_000_001_000)
        #expect(recent.map(\.log.type) == [.out, .err, .out])
    }

    @Test func unparseableSyslogGoesToTheDefaultAppOrIsCounted() async throws {
        let harness = try await AgentHarness.start(defaultApp: "unparsed")
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("unparsed")
        let tcp = try #require(harness.addresses.syslogTCP)
        let connection = try await RawConnection.connect(to: tcp)
        try await connection.write("just some text\n<13>1 - - - - - - no app name\n")
        #expect(await received.wait(for: 2))
        #expect(received.envelopes.map(\.text) == ["just some text", "<13>1 - - - - - - no app name"])
        connection.close()

        let strict = try await AgentHarness.start(cluster: harness.cluster)
        defer { Task { try? await strict.agent.shutdown(timeout: .seconds(1)) } }
        let other = try await RawConnection.connect(to: try #require(strict.addresses.syslogTCP))
        try await other.write("not syslog\n<14>1 - - strict-app - - - parsed\n")
        let strictReceived = try await strict.tail("strict-app")
        try await other.write("<14>1 - - strict-app - - - after the tail\n")
        #expect(await strictReceived.wait(for: 1))
        #expect(strict.metric(#"sluice_agent_syslog_unparsed_total{outcome="dropped"}"#) == 1)
        other.close()
    }

    /// Three identical lines with a whole-second timestamp and no
    /// structured data, as Heroku-style senders write them: three lines in
    /// the tail and three in `--recent`, and who sent them is kept.
    @Test func identicalSyslogLinesAreAllKept() async throws {
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("dup-app")
        let connection = try await RawConnection.connect(to: try #require(harness.addresses.syslogTCP))
        let line = "<13>1 2026-11-29T10:55:00Z vm dup-app - - - heartbeat"
        try await connection.write(String(repeating: line + "\n", count: 3))
        #expect(await received.wait(for: 3))
        #expect(received.envelopes.map(\.text) == ["heartbeat", "heartbeat", "heartbeat"])
        let recent = try await harness.cluster.recent(app: "dup-app")
        #expect(recent.map(\.text) == ["heartbeat", "heartbeat", "heartbeat"])
        #expect(recent.allSatisfy { $0.tags["hostname"] == "vm" && $0.tags["facility"] == "user" && $0.tags["msgid"] == nil })
        connection.close()
    }

    /// A line that names no host (`-`, or a BSD line without one) is
    /// tagged with the agent's `--hostname` (the node it serves); a line
    /// that names one keeps its own; so does a line kept whole under the
    /// default app.
    @Test func linesNamingNoHostGetTheAgentsHostname() async throws {
        let harness = try await AgentHarness.start(defaultApp: "unparsed", hostname: "node-7")
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("host-app")
        let unparsed = try await harness.tail("unparsed")
        let connection = try await RawConnection.connect(to: try #require(harness.addresses.syslogTCP))
        try await connection.write(
            "<13>1 2026-11-29T10:55:00Z - host-app - - - nameless\n"
                + "<13>Nov 29 10:55:00 host-app[12]: bsd without a host\n"
                + "<13>1 2026-11-29T10:55:00Z vm host-app - - - from vm\n"
                + "not syslog at all\n")
        #expect(await received.wait(for: 3))
        #expect(received.envelopes.map(\.text) == ["nameless", "bsd without a host", "from vm"])
        #expect(received.envelopes.map { $0.tags["hostname"] } == ["node-7", "node-7", "vm"])
        #expect(await unparsed.wait(for: 1))
        #expect(unparsed.envelopes.map { $0.tags["hostname"] } == ["node-7"])
        connection.close()
    }

    @Test func aBadSyslogFrameClosesOnlyItsConnection() async throws {
        let harness = try await AgentHarness.start(maxMessageBytes: 1024)
        defer { Task { await harness.shutdown() } }
        let tcp = try #require(harness.addresses.syslogTCP)
        let received = try await harness.tail("good-app")

        let good = try await RawConnection.connect(to: tcp)
        let oversized = try await RawConnection.connect(to: tcp)
        let garbled = try await RawConnection.connect(to: tcp)
        try await oversized.write("99999 <13>1 - - good-app - - - too big")
        try await garbled.write("12x <13>1 - - good-app - - - bad count")
        #expect(await oversized.waitForClose())
        #expect(await garbled.waitForClose())
        try await good.write(octetCounted("<13>1 - - good-app - - - still here"))
        #expect(await received.wait(for: 1))
        #expect(received.envelopes.map(\.text) == ["still here"])
        good.close()
    }

    /// The per-app drop counter names the first apps to drop only; the
    /// rest are summed under `app="_other"` (no unbounded label).
    @Test func perAppDropCountersAreBoundedAndTheRestSummed() async throws {
        let reserved = ReservedPort()
        let harness = try await AgentHarness.start(
            bufferBytes: 64 * 1024, controllers: [Endpoint(host: "127.0.0.1", port: reserved.port)], appSeriesLimit: 2)
        defer { Task { await harness.shutdown() } }
        let connection = try await RawConnection.connect(to: try #require(harness.addresses.syslogTCP))
        let count = 6_000
        let apps = (0..<5).map { "many-\($0)" }
        var body = ""
        for index in 0..<count {
            body += octetCounted("<14>1 - - \(apps[index % apps.count]) - - - line \(index) " + String(repeating: "x", count: 40))
        }
        try await connection.write(body)
        #expect(await waitUntil { harness.metric(#"sluice_agent_envelopes_received_total{input="syslog_tcp"}"#) == Double(count) })
        let dropped = Double(harness.agent.shipper.droppedTotal)
        let series = harness.registry.emitToString().split(separator: "\n").filter { $0.hasPrefix("sluice_agent_app_envelopes_dropped_total{") }
        #expect(series.count == 3, "\(series)")
        #expect(series.filter { $0.contains(#"app="_other""#) }.count == 1, "\(series)")
        let total = series.compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
        #expect(dropped > 0 && total == dropped, "\(series), dropped \(dropped)")
        connection.close()
    }

    @Test func aFullBufferDropsTheOldestAndTellsEachAppOnceDeliveryResumes() async throws {
        // The agent starts with no controller at its address; one comes up later.
        let reserved = ReservedPort()
        let port = reserved.port
        let harness = try await AgentHarness.start(
            bufferBytes: 256 * 1024, controllers: [Endpoint(host: "127.0.0.1", port: port)],
            cluster: try await TestCluster.start(recentPerApp: 20_000))
        defer { Task { await harness.shutdown() } }
        let connection = try await RawConnection.connect(to: try #require(harness.addresses.syslogTCP))
        let count = 20_000
        var body = ""
        for index in 0..<count {
            let app = index % 2 == 0 ? "busy-a" : "busy-b"
            body += octetCounted("<14>1 - - \(app) - - - line \(index) " + String(repeating: "x", count: 40))
        }
        try await connection.write(body)
        // Every line is taken in (TCP never pushes back) and most are dropped.
        let allTaken = await waitUntil {
            harness.metric(#"sluice_agent_envelopes_received_total{input="syslog_tcp"}"#) == Double(count)
        }
        #expect(allTaken)
        let dropped = harness.agent.shipper.droppedTotal
        #expect(dropped > count / 2, "\(dropped)")
        #expect(harness.metric(#"sluice_agent_envelopes_dropped_total{reason="buffer_full"}"#) == Double(dropped))
        let perApp = ["busy-a", "busy-b"].map { harness.metric("sluice_agent_app_envelopes_dropped_total{app=\"\($0)\"}") ?? 0 }
        #expect(perApp.reduce(0, +) == Double(dropped), "\(perApp)")

        // A controller comes up where the agent looks for one.
        reserved.release()
        let late = try await harness.lateController(port: port)
        defer { Task { try? await late.shutdown() } }
        let delivered = await waitUntil(timeout: .seconds(30)) {
            let a = (try? await harness.cluster.recent(app: "busy-a", limit: 20_000)) ?? []
            let b = (try? await harness.cluster.recent(app: "busy-b", limit: 20_000)) ?? []
            return a.count + b.count == count - dropped + 2
        }
        #expect(delivered)
        let a = try await harness.cluster.recent(app: "busy-a", limit: 20_000)
        let b = try await harness.cluster.recent(app: "busy-b", limit: 20_000)
        let notices = (a + b).filter(\.isNotice)
        #expect(notices.count == 2)
        let counts = notices.map { notice -> Int in
            let text = notice.text
            #expect(text.hasPrefix("Error L10 (output buffer overflow): "), "\(text)")
            return Int(text.split(separator: " ")[5]) ?? -1
        }
        #expect(counts.reduce(0, +) == dropped, "\(notices.map(\.text))")
        // What is kept is the newest: the last line of each app arrived.
        #expect(a.contains { $0.text.hasPrefix("line \(count - 2) ") })
        #expect(b.contains { $0.text.hasPrefix("line \(count - 1) ") })
        connection.close()
    }
}
