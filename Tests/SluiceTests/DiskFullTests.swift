import Foundation
import NIOCore
import NIOHTTP1
import SluiceAgent
import SluiceServer
import SluiceTransport
import SluiceBindings
import SluiceCLI
import SluiceController
import SluiceDrain
import SluiceShipping
import SluiceWire
import Testing

/// A small tmpfs of the test's own (mounting needs root, as CI runs), which
/// a filler file fills to the last byte.
final class SmallDisk {
    let path: String
    private var filler: String { path + "/filler" }

    init(bytes: Int) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-disk-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", path])
    }

    /// Writes until the disk says it is full.
    func fill() {
        let fd = open(filler, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { return }
        let block = [UInt8](repeating: 0x55, count: 4096)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
        // The last partial block too.
        while write(fd, block, 1) > 0 {}
        close(fd)
    }

    func free() {
        unlink(filler)
    }

    func remove() {
        try? run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    private func run(_ program: String, _ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ProcessClusterError(description: "\(program) \(arguments.joined(separator: " ")) failed")
        }
    }
}

/// A disk that fills under the agent's spool or the SQLite bindings store:
/// a clear error, counted, and the pipeline goes on in memory.
@Suite(.serialized, .enabled(if: geteuid() == 0, "mounting a small tmpfs needs root (CI runs as root)"))
struct DiskFullTests {
    /// The spool's disk is full from the start and the agent's controller
    /// is not up: every line is held in memory (nothing dropped) and the
    /// failed writes are counted. With room again and a controller, every
    /// line is delivered, and the spool is written again.
    @Test func aFullDiskUnderTheSpoolKeepsTheLinesInMemoryAndCountsTheErrors() async throws {
        let disk = try SmallDisk(bytes: 256 * 1024)
        defer { disk.remove() }
        disk.fill()
        // Segments larger than the disk: the one being written stays (and
        // shows in sluice_agent_spool_bytes) once the disk has room.
        var spool = Spool.Settings(directory: disk.path + "/spool", maxBytes: 64 << 20, segmentBytes: 1 << 20)
        // Every write tries the disk again (the default waits 5 s).
        spool.retryInterval = 1
        let reserved = ReservedPort()
        let port = reserved.port
        let harness = try await AgentHarness.start(
            controllers: [Endpoint(host: "127.0.0.1", port: port)], cluster: try await TestCluster.start(recentPerApp: 10_000),
            spool: spool)
        defer { Task { await harness.shutdown() } }
        let connection = try await RawConnection.connect(to: try #require(harness.addresses.syslogTCP))
        let app = "full-disk"
        func send(_ range: Range<Int>) async throws {
            var body = ""
            for index in range {
                body += octetCounted("<14>1 - - \(app) - - - line \(index) " + String(repeating: "x", count: 100))
            }
            try await connection.write(body)
        }
        try await send(0..<2_000)
        let taken = await waitUntil {
            harness.metric(#"sluice_agent_envelopes_received_total{input="syslog_tcp"}"#) == 2_000
        }
        #expect(taken)
        let errors = harness.metric(#"sluice_agent_spool_errors_total{op="write"}"#) ?? 0
        #expect(errors >= 1, "\(errors)")
        #expect(harness.agent.shipper.droppedTotal == 0)
        // The bound an alert on the spool filling divides by.
        #expect(harness.metric("sluice_agent_spool_max_bytes") == Double(64 << 20))

        // Room again, and a controller where the agent looks for one.
        disk.free()
        reserved.release()
        let late = try await harness.lateController(port: port)
        defer { Task { try? await late.shutdown() } }
        try await send(2_000..<3_000)
        // Lines sent once the disk has room are written to it. (Once, in a
        // full run of the suite, none of these 1,000 was: more lines are
        // sent, ten at a time, until one is.)
        var sent = 3_000
        let written = await waitUntil {
            if (harness.metric("sluice_agent_spool_bytes") ?? 0) > 0 { return true }
            try? await send(sent..<sent + 10)
            sent += 10
            return false
        }
        #expect(
            written,
            "errors \(harness.metric(#"sluice_agent_spool_errors_total{op="write"}"#) ?? -1), bytes \(harness.metric("sluice_agent_spool_bytes") ?? -1), files \((try? FileManager.default.contentsOfDirectory(atPath: disk.path + "/spool")) ?? [])"
        )
        let total = sent
        let delivered = await waitUntil(timeout: .seconds(30)) {
            ((try? await harness.cluster.recent(app: app, limit: 20_000)) ?? []).count >= total
        }
        #expect(delivered)
        let lines = try await harness.cluster.recent(app: app, limit: 20_000)
        #expect(lines.map { Int($0.text.split(separator: " ")[1]) ?? -1 } == Array(0..<total))
        let notices = lines.filter(\.isNotice).count
        #expect(notices == 0)
        connection.close()
    }

    /// The SQLite bindings store's disk fills: adding a drain is refused
    /// with the store's own reason (503) and counted, the drain already
    /// bound goes on delivering, and with room again adding works.
    @Test func aFullDiskUnderTheBindingsStoreRefusesChangesAndTheDrainsGoOn() async throws {
        let disk = try SmallDisk(bytes: 4 << 20)
        defer { disk.remove() }
        let store = try SQLiteBindingStore(path: disk.path + "/bindings.sqlite", pollInterval: .milliseconds(50))
        let cluster = try await TestCluster.start(recentPerApp: 10_000, bindings: store)
        defer { Task { await cluster.shutdown() } }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-full-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: directory)
        defer { receiver.stop() }
        let drains = Drains(base: cluster.http)
        let app = "bound-before"
        let binding = try await drains.add(app: app, url: "syslog://127.0.0.1:\(receiver.port)", name: nil)
        let running = await waitUntil(timeout: .seconds(10)) {
            cluster.drains.allSatisfy { manager in manager.runners.contains { $0.id == binding.id } }
        }
        try #require(running)

        disk.fill()
        let refused = try await HTTPClient.request(
            .POST, cluster.http.with(path: "/apps/another/drains"), headers: [("Content-Type", "application/json")],
            body: ByteBuffer(string: #"{"url": "syslog://127.0.0.1:\#(receiver.port)"}"#))
        let text = String(buffer: refused.body)
        #expect(refused.status.code == 503, "\(text)")
        #expect(text.contains("store_unavailable") && text.contains("full"), "\(text)")
        #expect(cluster.metric(MetricNames.controllerBindingsStoreErrors) == 1)

        try await cluster.emit(app: app, lines: (0..<1_000).map { "line \($0)" })
        let received = try await receiver.waitForLines(1_000, timeout: .seconds(30))
        #expect(received.count == 1_000)

        disk.free()
        let added = try await HTTPClient.request(
            .POST, cluster.http.with(path: "/apps/another/drains"), headers: [("Content-Type", "application/json")],
            body: ByteBuffer(string: #"{"url": "syslog://127.0.0.1:\#(receiver.port)"}"#))
        #expect(added.status.code == 201, "\(String(buffer: added.body))")
    }
}
