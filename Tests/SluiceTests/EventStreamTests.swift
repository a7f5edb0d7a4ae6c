import Foundation
import NIOCore
import NIOHTTP1
import SluiceAuth
import SluiceCLI
import SluiceProto
import SluiceShipping
import SluiceTransport
import SluiceWire
import SwiftProtobuf
import Testing

/// The RLP gateway's `GET /v2/read` on the controller, read by a Python
/// nozzle (`Tests/Clients/rlp_sse.py`) and by `curl -N`.
@Suite(.serialized) struct EventStreamTests {
    static let client = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Clients/rlp_sse.py").path

    static func line(_ number: Int) -> String { String(format: "line %06d", number) }

    /// Starts a program; its output is read once the stream has closed.
    static func start(_ path: String, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return process
    }

    static func finish(_ process: Process, timeout: Duration = .seconds(60)) throws -> (Int32, String, String) {
        let pipes = [process.standardOutput as! Pipe, process.standardError as! Pipe].map(\.fileHandleForReading)
        guard let output = readToEnd(pipes, before: .now + timeout) else {
            stopProcess(process)
            throw ChildProcessError("\(process.arguments ?? []) did not finish within \(timeout)")
        }
        try waitForExit(process, timeout: .seconds(10), "\(process.arguments ?? [])")
        return (
            process.terminationStatus, String(decoding: output[0], as: UTF8.self), String(decoding: output[1], as: UTF8.self)
        )
    }

    /// Waits until the controller serves `count` live readers.
    static func readers(_ cluster: TestCluster, _ count: Int) async -> Bool {
        await waitUntil { cluster.metric("sluice_controller_stream_readers") == Double(count) }
    }

    /// Lines and counters of one app while a nozzle reads its logs: the
    /// nozzle gets every line once, in order, no counter; then, with
    /// nothing more to send, a heartbeat, and at the stream timeout the
    /// closing event, after which the server ends the stream.
    @Test func aNozzleGetsItsLogsHeartbeatsAndTheClosingEvent() async throws {
        let cluster = try await TestCluster.start(servers: 2, events: (heartbeat: .seconds(1), timeout: .seconds(5)))
        defer { Task { await cluster.shutdown() } }
        let app = "sse-app"
        let nozzle = try Self.start(
            findProgram("python3") ?? "/usr/bin/python3",
            [Self.client, "http://\(cluster.http.host):\(cluster.http.port)/v2/read?log&source_id=\(app)"])
        #expect(await Self.readers(cluster, 1))
        try await cluster.emit(app: app, lines: (0..<300).map(Self.line))
        try await cluster.emit(app: "sse-other", lines: ["not for this nozzle"])
        var counter = Loggregator_V2_Envelope()
        counter.sourceID = app
        counter.counter.name = "requests"
        counter.counter.total = 5
        var builder = BatchFrameBuilder()
        let bytes: [UInt8] = try counter.serializedBytes()
        bytes.withUnsafeBytes { builder.append($0) }
        let ingress = try await IngressClient.connect(to: [cluster.ingress])
        try await ingress.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await ingress.close()

        let (status, out, errors) = try Self.finish(nozzle)
        #expect(status == 0, "\(errors)")
        let report = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        #expect(report?["logs"] as? [String] == (0..<300).map(Self.line))
        #expect(Set(report?["types"] as? [String] ?? []) == ["log"])
        #expect((report?["heartbeats"] as? Int ?? 0) >= 1)
        #expect(report?["closing"] as? Bool == true)
        let headers = report?["headers"] as? [String: String]
        #expect(headers?["content-type"] == "text/event-stream")
        #expect(headers?["cache-control"] == "no-cache")
        // The reader's place is given back when the stream ends.
        #expect(await Self.readers(cluster, 0))
    }

    /// `counter.name` selects counters of that name only; `curl -N` shows
    /// the events as they are written.
    @Test func curlSeesTheCountersItSelected() async throws {
        let cluster = try await TestCluster.start(servers: 1, events: (heartbeat: .seconds(30), timeout: .seconds(4)))
        defer { Task { await cluster.shutdown() } }
        let app = "sse-counters"
        let curl = try Self.start(
            findProgram("curl") ?? "/usr/bin/curl",
            ["-sN", "--max-time", "20", "http://\(cluster.http.host):\(cluster.http.port)/v2/read?counter.name=requests&source_id=\(app)"])
        #expect(await Self.readers(cluster, 1))
        var builder = BatchFrameBuilder()
        for (index, name) in ["requests", "errors", "requests"].enumerated() {
            var counter = Loggregator_V2_Envelope()
            counter.sourceID = app
            counter.timestamp = Int64(index + 1)
            counter.counter.name = name
            counter.counter.total = UInt64(index + 10)
            let bytes: [UInt8] = try counter.serializedBytes()
            bytes.withUnsafeBytes { builder.append($0) }
        }
        try await cluster.emit(app: app, lines: ["a log line"])
        let ingress = try await IngressClient.connect(to: [cluster.ingress])
        try await ingress.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await ingress.close()
        let (_, out, _) = try Self.finish(curl)
        let data = out.split(separator: "\n").filter { $0.hasPrefix("data: {") }
        let counters = data.flatMap { line -> [[String: Any]] in
            let body = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
            return body?["batch"] as? [[String: Any]] ?? []
        }
        #expect(counters.compactMap { $0["timestamp"] as? String } == ["1", "3"], "\(out)")
        #expect(counters.allSatisfy { ($0["counter"] as? [String: Any])?["name"] as? String == "requests" })
        #expect(out.hasSuffix("event: closing\ndata: closing due to stream timeout\n\n"), "\(out)")
    }

    /// The gateway's JSON errors for a bad query, and 405 for another method.
    @Test func badQueriesGetTheGatewaysErrors() async throws {
        let cluster = try await TestCluster.start(servers: 1)
        defer { Task { await cluster.shutdown() } }
        for (query, error, message) in [
            ("", "empty_query", "query cannot be empty"),
            ("?source_id=a", "missing_envelope_type", "query must provide at least one envelope type"),
            ("?counter.name", "missing_counter_name", "counter.name is invalid without value"),
            ("?gauge.name=", "missing_gauge_name", "gauge.name is invalid without value"),
        ] {
            let response = try await HTTPClient.get(cluster.http.with(path: "/v2/read\(query)"))
            #expect(response.status.code == 400, "\(query)")
            let body = try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: String]
            #expect(body?["error"] == error && body?["message"] == message, "\(query): \(String(buffer: response.body))")
        }
        let post = try await HTTPClient.request(.POST, cluster.http.with(path: "/v2/read"))
        #expect(post.status.code == 405)
        #expect(String(buffer: post.body).contains(#""error":"method_not_allowed""#))
    }

    /// A token must read every source id asked for; the firehose (no
    /// source id) takes an admin; every refusal is the gateway's 404.
    @Test func everyRefusalIsNotFound() async throws {
        let tokens = try await TestTokens.make("sse")
        defer { tokens.remove() }
        let cluster = try await TestCluster.start(
            servers: 1, authorizer: tokens.authorizer, events: (heartbeat: .seconds(30), timeout: .seconds(3)))
        defer { Task { await cluster.shutdown() } }
        let mine = try await tokens.token(apps: ["sse-a"])
        for (query, token) in [
            ("?log&source_id=sse-a", nil), ("?log&source_id=sse-a&source_id=sse-b", mine), ("?log", mine),
            ("?log&source_id=sse-a", "not.a.token"),
        ] as [(String, String?)] {
            let response = try await HTTPClient.get(cluster.http.with(path: "/v2/read\(query)"), headers: HTTPClient.bearer(token))
            #expect(response.status.code == 404, "\(query)")
            #expect(String(buffer: response.body).contains(#""error":"not_found","message":"resource not found""#))
        }
        let nozzle = try Self.start(
            findProgram("python3") ?? "/usr/bin/python3",
            [Self.client, "http://\(cluster.http.host):\(cluster.http.port)/v2/read?log&source_id=sse-a", "--token", mine])
        #expect(await Self.readers(cluster, 1))
        var client = cluster.client
        client.token = mine
        try await client.emit(app: "sse-a", lines: [Self.line(7)])
        let (status, out, errors) = try Self.finish(nozzle)
        #expect(status == 0, "\(errors)")
        let report = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        #expect(report?["logs"] as? [String] == [Self.line(7)])
    }
}
