import Foundation
import SluiceAuth
import NIOCore
import SluiceController
import SluiceProto
import SluiceServer
import SluiceTLS
import SluiceTransport
import SluiceWire
import SwiftProtobuf
import Testing

/// Loggregator's v2 gRPC services on a controller, called by Python
/// grpcio with stubs generated from Protos/ (`Tests/Clients/loggregator_grpc.py`).
@Suite(.serialized) struct GRPCTests {
    static let client = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Clients/loggregator_grpc.py").path
    static let python = findProgram("python3") ?? "/usr/bin/python3"

    /// Runs the client to its end; its stdout.
    static func run(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> String {
        let (status, out, errors) = try EventStreamTests.finish(
            EventStreamTests.start(python, [client] + arguments), timeout: timeout)
        guard status == 0 else { throw ChildProcessError("loggregator_grpc.py \(arguments) exited \(status): \(out) \(errors)") }
        return out
    }

    static func lines(_ out: String) -> [[String: Any]] {
        out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// `Send`, `BatchSender` and `Sender` each deliver every envelope once,
    /// in order, as their bytes: the recent logs hold them all, and the
    /// client was answered only once they were stored.
    @Test func everyIngressMethodDeliversEachEnvelopeOnce() async throws {
        let cluster = try await TestCluster.start(servers: 2, grpc: true)
        defer { Task { await cluster.shutdown() } }
        let target = try #require(cluster.grpc).description
        for method in ["send", "batch", "stream"] {
            let app = "grpc-\(method)"
            let out = try Self.run(["send", "--target", target, "--app", app, "--count", "1000", "--batch", "70", "--method", method])
            #expect(out.contains("sent 1000"))
            // Answered once stored: the recent read right after has them all.
            let recent = try await cluster.recent(app: app, limit: 2000)
            #expect(recent.map { String(decoding: $0.log.payload, as: UTF8.self) } == (0..<1000).map { "line \($0)" }, "\(method)")
            #expect(recent.allSatisfy { $0.tags["source_type"] == "APP/PROC/WEB" })
        }
        #expect(cluster.metric(#"sluice_controller_envelopes_received_total"#) == 3000)
    }

    /// A controller's graceful stop refuses new gRPC ingress calls before
    /// they take anything (and closes its gRPC ingress listener) and lets
    /// each `Send` in progress finish: every batch the client was answered
    /// OK for is stored, and none whose call failed is (a client sends a
    /// failed one again elsewhere, and it would come twice). Four threads
    /// of grpcio call `Send` without pause until the stop. Before this the
    /// calls in progress were cut when the controller closed, their
    /// batches often already stored.
    @Test func aStoppingControllerAnswersTheSendsInProgressAndStartsNoNewOne() async throws {
        let cluster = try await TestCluster.start(servers: 2, recentPerApp: 1_000_000, grpc: true)
        defer { Task { await cluster.shutdown() } }
        let target = try #require(cluster.grpc).description
        let app = "grpc-stop"
        let batch = 50
        let client = try EventStreamTests.start(
            Self.python, [Self.client, "sendloop", "--target", target, "--app", app, "--batch", "\(batch)", "--threads", "4"])
        let flowing = await waitUntil { (cluster.metric("sluice_controller_envelopes_received_total") ?? 0) >= 5_000 }
        #expect(flowing)
        await cluster.controller.drain()
        try await cluster.controller.shutdown()
        let (status, out, errors) = try EventStreamTests.finish(client, timeout: .seconds(60))
        #expect(status == 0, "\(errors)")
        let calls = Self.lines(out)
        let answered = Set(calls.filter { $0["ok"] as? Bool == true }.compactMap { $0["batch"] as? Int })
        let failed = calls.filter { $0["ok"] as? Bool == false }
        // Every thread ended on a refused call, none on a cut one.
        #expect(failed.count == 4, "\(failed)")
        #expect(failed.allSatisfy { $0["code"] as? String == "UNAVAILABLE" }, "\(failed)")
        // What the servers hold, read from their stores (the controller is gone).
        var stored: [Int: Int] = [:]
        for server in cluster.servers {
            for bytes in server.store.recentFrames(app: app, limit: 1_000_000, sequence: 1) {
                let header = try bytes.withUnsafeReadableBytes {
                    try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: $0[0..<FrameHeader.size]), maxPayload: 64 << 20)
                }
                let payload = bytes.getSlice(at: bytes.readerIndex + FrameHeader.size, length: Int(header.length))!
                let (entries, _) = try Frame(header: header, payload: payload).batchAndParts()
                try entries.forEachEnvelope { envelope, _ in
                    let text = (try? Loggregator_V2_Envelope(serializedBytes: Array(envelope.readableBytesView)))
                        .map { String(decoding: $0.log.payload, as: UTF8.self) } ?? ""
                    if let line = Int(text.dropFirst("line ".count)) { stored[line / batch, default: 0] += 1 }
                }
            }
        }
        #expect(!stored.isEmpty)
        #expect(stored.values.allSatisfy { $0 == batch }, "batches stored in part or twice")
        let extra = Set(stored.keys).subtracting(answered).sorted()
        let missing = answered.subtracting(stored.keys).sorted()
        #expect(extra.isEmpty, "stored though their calls failed: \(extra); failed calls: \(failed)")
        #expect(missing.isEmpty, "answered OK but not stored: \(missing)")
        #expect(answered.count * batch >= 5_000)
    }

    /// A nozzle's `BatchedReceiver` and `Receiver` with selectors get the
    /// types and names they asked for, of their app only, in order.
    @Test func nozzlesGetWhatTheirSelectorsTake() async throws {
        let cluster = try await TestCluster.start(servers: 2, grpc: true)
        defer { Task { await cluster.shutdown() } }
        let target = try #require(cluster.grpc).description
        let app = "grpc-nozzle"
        // 300 envelopes cycle log, counter, gauge: 100 logs, 50 counters
        // named requests0, 100 gauges of which 50 have "memory".
        let batched = try EventStreamTests.start(
            Self.python,
            [Self.client, "receive", "--target", target, "--source-id", app, "--batched", "--types", "log,counter",
             "--counter-name", "requests0", "--count", "150", "--timeout", "30"])
        let single = try EventStreamTests.start(
            Self.python,
            [Self.client, "receive", "--target", target, "--source-id", app, "--types", "gauge", "--gauge-name", "memory",
             "--count", "50", "--timeout", "30", "--legacy-tags"])
        #expect(await EventStreamTests.readers(cluster, 2))
        _ = try Self.run(["send", "--target", target, "--app", "grpc-other", "--count", "10"])
        _ = try Self.run(["send", "--target", target, "--app", app, "--count", "300", "--types", "log,counter,gauge", "--method", "batch"])

        let (status, out, errors) = try EventStreamTests.finish(batched)
        #expect(status == 0, "\(errors)")
        let got = Self.lines(out)
        #expect(got.count == 150, "\(out.suffix(500))")
        #expect(got.allSatisfy { $0["source_id"] as? String == app })
        #expect(got.filter { $0["type"] as? String == "log" }.map { $0["payload"] as? String } == stride(from: 0, to: 300, by: 3).map { "line \($0)" })
        let counters = got.filter { $0["type"] as? String == "counter" }
        #expect(counters.count == 50 && counters.allSatisfy { $0["name"] as? String == "requests0" })
        #expect(out.contains("done 150"))

        let (singleStatus, singleOut, singleErrors) = try EventStreamTests.finish(single)
        #expect(singleStatus == 0, "\(singleErrors)")
        let gauges = Self.lines(singleOut)
        #expect(gauges.count == 50)
        #expect(gauges.allSatisfy { ($0["names"] as? [String]) == ["cpu", "memory"] })
        // use_preferred_tags false: tags where v1 kept them.
        #expect(gauges.allSatisfy {
            ($0["deprecated_tags"] as? [String: String])?["source_type"] == "APP/PROC/WEB" && ($0["tags"] as? [String: String])?.isEmpty == true
        })
    }

    /// Over mutual TLS (the controller's `--tls` certificates, the server
    /// name `doppler` Loggregator's clients expect): two nozzles sharing a
    /// `shard_id` on the firehose split what `BatchSender` sent between
    /// them, each envelope to one of them; a client without a certificate
    /// is refused.
    @Test func nozzlesSharingAShardSplitTheFirehoseOverMutualTLS() async throws {
        let fixture = try TLSFixture("grpc-shard")
        defer { fixture.remove() }
        let cluster = try await TestCluster.start(
            servers: 2, tls: (try fixture.tls("controller"), try fixture.tls("server")), grpc: true)
        defer { Task { await cluster.shutdown() } }
        let target = try #require(cluster.grpc).description
        let client = fixture.files("client")
        let tls = ["--ca", client.ca, "--cert", client.cert, "--key", client.key, "--server-name", "doppler"]
        // Each writes what it gets to a file: a reader's pipe that fills
        // while the test reads the other's would hold it up.
        let outputs = (0..<2).map { index in FileManager.default.temporaryDirectory.appendingPathComponent("sluice-nozzle-\(index)-\(UUID().uuidString)").path }
        defer { for path in outputs { try? FileManager.default.removeItem(atPath: path) } }
        let nozzles = try outputs.map { path in
            try EventStreamTests.start(
                Self.python,
                [Self.client, "receive", "--target", target, "--batched", "--shard", "nozzle", "--types", "log",
                 "--timeout", "10", "--out", path] + tls)
        }
        #expect(await EventStreamTests.readers(cluster, 2))
        let apps = (0..<4).map { "grpc-shard-\($0)" }
        for app in apps {
            let out = try Self.run(
                ["send", "--target", target, "--app", app, "--count", "250", "--method", "batch", "--batch", "50"] + tls)
            #expect(out.contains("sent 250"))
        }
        var shares: [[String]] = []
        for (nozzle, path) in zip(nozzles, outputs) {
            let (status, _, errors) = try EventStreamTests.finish(nozzle, timeout: .seconds(30))
            #expect(status == 0, "\(errors)")
            shares.append(Self.lines(try String(contentsOfFile: path, encoding: .utf8)).map { "\($0["source_id"] as? String ?? "?") \($0["payload"] as? String ?? "?")" })
        }
        let everything = apps.flatMap { app in (0..<250).map { "\(app) line \($0)" } }
        #expect(shares.allSatisfy { !$0.isEmpty }, "\(shares.map(\.count))")
        #expect(Set(shares[0]).isDisjoint(with: shares[1]))
        let got = shares[0] + shares[1]
        let missing = Set(everything).subtracting(got)
        let extra = got.filter { !Set(everything).contains($0) }
        #expect(got.count == everything.count && missing.isEmpty && extra.isEmpty,
            "\(shares.map(\.count)) received, \(missing.count) missing: \(missing.sorted().prefix(8)), extra: \(extra.prefix(5))")

        // No client certificate: the handshake is refused.
        let (status, _, _) = try EventStreamTests.finish(
            EventStreamTests.start(
                Self.python,
                [Self.client, "send", "--target", target, "--app", apps[0], "--count", "1", "--ca", client.ca,
                 "--server-name", "doppler"]))
        #expect(status != 0)
    }

    /// What is not a good call is refused with a status and a reason; the
    /// listener and other calls go on.
    @Test func badCallsAreRefusedAndOthersGoOn() async throws {
        let cluster = try await TestCluster.start(servers: 1, grpc: true)
        defer { Task { await cluster.shutdown() } }
        let target = try #require(cluster.grpc).description
        #expect(try Self.run(["call", "--target", target, "--path", "/loggregator.v2.Nothing/Here"]).hasPrefix("UNIMPLEMENTED"))
        // An EnvelopeBatch whose one envelope's length runs past its end.
        let malformed = try Self.run(["call", "--target", target, "--path", "/loggregator.v2.Ingress/Send", "--raw", "0a05ff"])
        #expect(malformed.hasPrefix("INVALID_ARGUMENT"), "\(malformed)")
        // An egress request that selects nothing.
        let empty = try Self.run(["call", "--target", target, "--path", "/loggregator.v2.Egress/BatchedReceiver"])
        #expect(empty.hasPrefix("INVALID_ARGUMENT the request selects nothing"), "\(empty)")
        #expect(try Self.run(["send", "--target", target, "--app", "grpc-after", "--count", "5"]).contains("sent 5"))
        #expect(try await cluster.recent(app: "grpc-after").count == 5)
    }

    /// With tokens: a reader without one, or with one for another app, is
    /// refused with NOT_FOUND; past --max-readers-per-app with
    /// RESOURCE_EXHAUSTED; a reader that goes (its call cancelled) gives its
    /// place back.
    @Test func egressTokensLimitsAndReadersThatLeave() async throws {
        let tokens = try await TestTokens.make("grpc")
        defer { tokens.remove() }
        let cluster = try await TestCluster.start(
            servers: 1, authorizer: tokens.authorizer, maxReaders: (total: 10, perApp: 1), grpc: true)
        defer { Task { await cluster.shutdown() } }
        let target = try #require(cluster.grpc).description
        let mine = try await tokens.token(apps: ["grpc-a"])
        for (source, token) in [("grpc-a", nil), ("grpc-b", mine), ("", mine), ("grpc-a", "not.a.token")] as [(String, String?)] {
            let (status, out, _) = try EventStreamTests.finish(
                EventStreamTests.start(
                    Self.python,
                    [Self.client, "receive", "--target", target, "--timeout", "10"] + (source.isEmpty ? [] : ["--source-id", source])
                        + (token.map { ["--token", $0] } ?? [])))
            #expect(status == 3 && out.contains("status NOT_FOUND resource not found"), "\(source) \(token ?? "-"): \(out)")
        }
        // One reader of grpc-a, with its token: it stays until its timeout.
        let first = try EventStreamTests.start(
            Self.python, [Self.client, "receive", "--target", target, "--source-id", "grpc-a", "--token", mine, "--timeout", "6"])
        #expect(await EventStreamTests.readers(cluster, 1))
        let (status, out, _) = try EventStreamTests.finish(
            EventStreamTests.start(
                Self.python, [Self.client, "receive", "--target", target, "--source-id", "grpc-a", "--token", mine, "--timeout", "10"]))
        #expect(status == 3 && out.contains("status RESOURCE_EXHAUSTED"), "\(out)")
        var client = cluster.client
        client.token = mine
        try await client.emit(app: "grpc-a", lines: ["for the reader"])
        let (firstStatus, firstOut, firstErrors) = try EventStreamTests.finish(first)
        #expect(firstStatus == 0, "\(firstErrors)")
        #expect(Self.lines(firstOut).map { $0["payload"] as? String } == ["for the reader"])
        // Its call was cancelled at its deadline: the place is free again.
        #expect(await EventStreamTests.readers(cluster, 0))
        #expect(await waitUntil { cluster.metric(#"sluice_controller_stream_readers"#) == 0 })
    }
}
