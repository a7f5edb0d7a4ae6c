import Foundation
import SluiceAgent
import SluiceCLI
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

/// Peers no one here wrote: a C emitter built with protobuf-c from our
/// Protos/, and a libwebsockets client tailing a stream
/// (Tests/Interop/*.c, built by bin/build-interop).
@Suite(.serialized)
struct InteropTests {
    /// The folder the C peers are built into, once per test run.
    static let peers: Result<String, any Error> = Result {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-interop-\(getpid())").path
        let built = try runProgram(root.appendingPathComponent("bin/build-interop").path, [out])
        guard built.status == 0 else { throw BuildFailed(output: built.stderr) }
        return out
    }

    struct BuildFailed: Error, CustomStringConvertible {
        var output: String
        var description: String { "bin/build-interop failed (bin/test installs its packages): \(output)" }
    }

    @Test func aProtobufCEmitterIsUnderstood() async throws {
        let peers = try Self.peers.get()
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let received = try await harness.tail("c-app")
        let listen = harness.addresses.listen
        let result = try runProgram("\(peers)/sluice-c-emitter", [listen.host, "\(listen.port)", "c-app", "250"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(await received.wait(for: 250))
        let envelopes = received.envelopes
        #expect(envelopes.count == 250)
        for (index, envelope) in envelopes.enumerated() {
            let payload: [UInt8] = Array("c-line \(index) ".utf8) + [0x00, 0xC3, 0xA9]
            #expect(Array(envelope.log.payload) == payload)
            #expect(envelope.log.type == (index % 2 == 1 ? .err : .out))
            #expect(envelope.instanceID == "7")
            #expect(envelope.tags == ["source_type": "C/EMITTER", "lang": "c"])
        }
        #expect(envelopes.map(\.timestamp) == envelopes.map(\.timestamp).sorted())
    }

    @Test func aLibwebsocketsClientTails() async throws {
        let peers = try Self.peers.get()
        let harness = try await AgentHarness.start()
        defer { Task { await harness.shutdown() } }
        let http = harness.cluster.http
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "\(peers)/sluice-c-tail")
        process.arguments = [http.host, "\(http.port)", "/apps/lws-app/stream", "5", "20"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { stopProcess(process) }
        var text = try read(out) { $0.contains("connected\n") }
        #expect(text.hasPrefix("connected\n"))
        let lines = (1...5).map { "seen by lws \($0)" }
        try await harness.cluster.emit(app: "lws-app", lines: lines)
        // The client gives up by itself after 20 s; this only keeps a stuck one from hanging the test.
        guard let rest = readToEnd([out.fileHandleForReading], before: ContinuousClock.now + .seconds(60)) else {
            throw ChildProcessError("sluice-c-tail did not finish within 60 s; it wrote: \(text.debugDescription)")
        }
        text += String(decoding: rest[0], as: UTF8.self)
        try waitForExit(process, timeout: .seconds(30), "sluice-c-tail")
        #expect(process.terminationStatus == 0)
        let messages = text.split(separator: "\n").dropFirst().map { hex in
            try? Loggregator_V2_Envelope(serializedBytes: Self.bytes(fromHex: hex))
        }
        #expect(messages.map { $0.map { String(decoding: $0.log.payload, as: UTF8.self) } } == lines)
    }

    static func bytes(fromHex hex: Substring) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }
}
