import Foundation
import NIOCore
import NIOHTTP1
import SluiceCLI
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

/// Emit → controller → buffer servers → recent and live tail, on loopback.
@Suite(.serialized)
struct EndToEndTests {
    static let apps = ["app-alpha", "app-beta", "app-gamma"]
    static let linesPerApp = 3000

    static func line(_ app: String, _ index: Int) -> String { "\(app) line \(index)" }

    @Test func threeAppsRecentAndLiveTail() async throws {
        let cluster = try await TestCluster.start(servers: 2)
        defer { Task { await cluster.shutdown() } }

        // Tails are open before anything is emitted: they must see every line.
        var tails: [String: (Received, WebSocketClient)] = [:]
        for app in Self.apps {
            let received = Received()
            tails[app] = (received, try await cluster.tail(app: app, into: received))
        }
        let jsonReceived = Received()
        let jsonTail = try await cluster.tail(app: Self.apps[0], into: jsonReceived, json: true)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for app in Self.apps {
                group.addTask {
                    try await cluster.emit(app: app, lines: (0..<Self.linesPerApp).map { Self.line(app, $0) })
                }
            }
            try await group.waitForAll()
        }

        for app in Self.apps {
            let (received, client) = tails[app]!
            #expect(await received.wait(for: Self.linesPerApp), "tail of \(app) got \(received.envelopes.count)")
            let texts = received.envelopes.map(\.text)
            #expect(texts == (0..<Self.linesPerApp).map { Self.line(app, $0) }, "tail of \(app) lost or reordered lines")
            #expect(received.envelopes.allSatisfy { $0.sourceID == app && $0.instanceID == "0" })
            await client.close()
        }
        #expect(await jsonReceived.wait(for: Self.linesPerApp))
        #expect(jsonReceived.envelopes.map(\.text) == (0..<Self.linesPerApp).map { Self.line(Self.apps[0], $0) })
        await jsonTail.close()

        // Recent: exactly the newest 1000 per app, oldest first.
        for app in Self.apps {
            let recent = try await cluster.recent(app: app)
            #expect(recent.map(\.text) == (2000..<3000).map { Self.line(app, $0) })
            let five = try await cluster.recent(app: app, limit: 5)
            #expect(five.map(\.text) == (2995..<3000).map { Self.line(app, $0) })
        }

        // JSON recent: {"envelopes":{"batch":[…]}} in protobuf's JSON mapping.
        let response = try await HTTPClient.get(cluster.http.with(path: "/apps/app-beta/recentlogs?limit=3"))
        #expect(response.status == .ok)
        #expect(response.headers["Content-Type"].first == "application/json")
        let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
        let inner = try JSONSerialization.data(withJSONObject: try #require(object?["envelopes"]))
        let batch = try Loggregator_V2_EnvelopeBatch(jsonUTF8Data: inner)
        #expect(batch.batch.map(\.text) == (2997..<3000).map { Self.line("app-beta", $0) })
    }

    @Test func cliPrintsTheCFFormat() async throws {
        let cluster = try await TestCluster.start(servers: 2)
        defer { Task { await cluster.shutdown() } }
        try await cluster.emit(app: "cli-app", lines: ["first", "two\nlines"])
        try await cluster.emit(app: "cli-app", lines: ["oops"], isError: true)

        let result = try await runSluice(["logs", "cli-app", "--recent", "--controller", "\(cluster.http)"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(lines.count == 4)
        // "   2018-11-12T14:13:51.95+0900 [APP/PROC/WEB/0] OUT hello"
        let pattern = /^   \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d[+-]\d{4} \[APP\/PROC\/WEB\/0\] (OUT|ERR) (.*)$/
        let parsed = lines.compactMap { line in (try? pattern.wholeMatch(in: line)).map { (String($0.1), String($0.2)) } }
        #expect(parsed.count == 4, "lines not in cf format: \(lines)")
        #expect(parsed.map(\.0) == ["OUT", "OUT", "OUT", "ERR"])
        #expect(parsed.map(\.1) == ["first", "two", "lines", "oops"])
        // Not a terminal: no colour codes.
        #expect(!result.stdout.contains("\u{1B}["))

        let json = try await runSluice(["logs", "cli-app", "--recent", "--json", "--controller", "\(cluster.http)"])
        let envelopes = try json.stdout.split(separator: "\n").map { try Loggregator_V2_Envelope(jsonString: String($0)) }
        #expect(envelopes.map(\.text) == ["first", "two\nlines", "oops"])
        #expect(envelopes.last?.log.type == .err)
    }

    @Test func cliEmitAndTail() async throws {
        let cluster = try await TestCluster.start(servers: 1)
        defer { Task { await cluster.shutdown() } }
        let received = Received()
        let client = try await cluster.tail(app: "emit-app", into: received)
        let input = (0..<500).map { "stdin line \($0)" }.joined(separator: "\n") + "\n"
        let result = try await runSluice(
            ["emit", "--app", "emit-app", "--controller", "\(cluster.ingress)", "--err", "--instance", "3"],
            stdin: input)
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(await received.wait(for: 500))
        #expect(received.envelopes.map(\.text) == (0..<500).map { "stdin line \($0)" })
        #expect(received.envelopes.allSatisfy { $0.log.type == .err && $0.instanceID == "3" })
        await client.close()
    }

    @Test func streamPingsItsReaders() async throws {
        let cluster = try await TestCluster.start(servers: 1, pingInterval: .milliseconds(100))
        defer { Task { await cluster.shutdown() } }
        let received = Received()
        let client = try await cluster.tail(app: "quiet-app", into: received)
        // Pings keep an idle stream alive; the reader answers each with a pong.
        let deadline = ContinuousClock.now + .seconds(10)
        while client.pingsReceived < 3 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(client.pingsReceived >= 3)
        #expect(received.envelopes.isEmpty)
        await client.close()
    }

    @Test func httpErrorsAreClearJSON() async throws {
        let cluster = try await TestCluster.start(servers: 1)
        defer { Task { await cluster.shutdown() } }
        let cases: [(String, UInt, String)] = [
            ("/apps/x/recentlogs?limit=0", 400, "bad_limit"),
            ("/apps/x/recentlogs?limit=abc", 400, "bad_limit"),
            ("/apps/%2F/recentlogs", 400, "bad_app_id"),
            ("/apps/x/stream", 400, "websocket_required"),
            ("/nowhere", 404, "not_found"),
        ]
        for (path, status, error) in cases {
            let response = try await HTTPClient.get(cluster.http.with(path: path))
            #expect(response.status.code == status, "\(path)")
            let object = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any]
            #expect(object?["error"] as? String == error, "\(path)")
            #expect((object?["message"] as? String)?.isEmpty == false, "\(path)")
        }
        let health = try await HTTPClient.get(cluster.http.with(path: "/healthz"))
        #expect(health.status == .ok)
    }
}

/// Runs the built `sluice` executable with arguments and optional input.
/// Throws if it has not finished within `timeout` (it is stopped then, as on
/// any way out).
func runSluice(
    _ arguments: [String], stdin: String? = nil, environment extra: [String: String] = [:],
    timeout: Duration = .seconds(120)
) async throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = sluiceExecutable()
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["SLUICE_HOME"] = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-test-home").path
    environment.merge(extra) { $1 }
    process.environment = environment
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    defer { stopProcess(process) }
    let command = "sluice " + arguments.joined(separator: " ")
    if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
    try input.fileHandleForWriting.close()
    let deadline = ContinuousClock.now + timeout
    let output = await Task.detached {
        readToEnd([out.fileHandleForReading, err.fileHandleForReading], before: deadline)
    }.value
    guard let output else { throw ChildProcessError("\(command) did not finish within \(timeout)") }
    try waitForExit(process, timeout: .seconds(30), command)
    return (
        process.terminationStatus, String(decoding: output[0], as: UTF8.self), String(decoding: output[1], as: UTF8.self)
    )
}

/// The `sluice` binary beside the test bundle (or $SLUICE_BIN).
func sluiceExecutable() -> URL {
    if let path = ProcessInfo.processInfo.environment["SLUICE_BIN"] { return URL(fileURLWithPath: path) }
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<3 {
        let candidate = directory.appendingPathComponent("sluice")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    return URL(fileURLWithPath: ".build/debug/sluice")
}
