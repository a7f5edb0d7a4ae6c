import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import SluiceCLI
import SluiceProto
import SluiceTransport
import SluiceShipping
import SluiceWire
import SwiftProtobuf
import Testing

/// The multi-zone cluster as separate processes: 2 zones × 2 buffer servers
/// and a controller per zone, with members killed by SIGKILL under load.
@Suite(.serialized)
struct ClusterProcessTests {
    static let rate = 20_000
    static let seconds = 10

    static var total: Int { rate * seconds }

    static func expectEveryLineOnce(_ counter: SequenceCounter, total: Int) async {
        #expect(await counter.wait(for: total, timeout: .seconds(60)))
        #expect(counter.received == total)
        #expect(counter.missing == 0, "\(counter.missing) lost")
        #expect(counter.duplicates == 0, "\(counter.duplicates) duplicated")
    }

    @Test func bothZonesMergeOnEitherController() async throws {
        let cluster = try await ProcessCluster.twoZones()
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let z1 = cluster.client(zone: "z1")
        let z2 = cluster.client(zone: "z2")
        let received = Received()
        let tail = try await z2.tail(app: "merged", into: received)
        var expected: [String] = []
        for round in 0..<5 {
            let one = (0..<20).map { "z1 \(round) \($0)" }
            let two = (0..<20).map { "z2 \(round) \($0)" }
            try await z1.emit(app: "merged", lines: one)
            try await z2.emit(app: "merged", lines: two)
            expected += one + two
        }
        for client in [z1, z2] {
            let recent = try await client.recent(app: "merged")
            #expect(recent.map(\.text) == expected)
        }
        #expect(await received.wait(for: expected.count))
        #expect(Set(received.envelopes.map(\.text)) == Set(expected))
        await tail.close()
    }

    @Test func killingTheOwningServerLosesNothing() async throws {
        let cluster = try await ProcessCluster.twoZones()
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let app = "steady-server"
        let counter = SequenceCounter(total: Self.total)
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        let load = Task {
            try await cluster.load(app: app, controllers: [cluster.client(zone: "z1").ingress], rate: Self.rate, count: Self.total)
        }
        #expect(await counter.wait(for: Self.rate * 3, timeout: .seconds(60)))
        cluster.kill(cluster.owner(of: app, in: "z1"))
        try await load.value
        await Self.expectEveryLineOnce(counter, total: Self.total)
        await tail.close()
    }

    @Test func aHungServerIsPassedOverAndLosesNothing() async throws {
        let cluster = try await ProcessCluster.twoZones()
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let app = "steady-hung"
        let counter = SequenceCounter(total: Self.total)
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        let load = Task {
            try await cluster.load(app: app, controllers: [cluster.client(zone: "z1").ingress], rate: Self.rate, count: Self.total)
        }
        #expect(await counter.wait(for: Self.rate * 3, timeout: .seconds(60)))
        // The owner hangs with its sockets open: only its silence tells.
        let owner = cluster.owner(of: app, in: "z1")
        cluster.pause(owner)
        try await load.value
        await Self.expectEveryLineOnce(counter, total: Self.total)
        // When it wakes it may store what was already sent elsewhere; the
        // reader still sees each line once.
        cluster.resume(owner)
        await tail.close()
    }

    @Test func killingTheControllerLosesNothing() async throws {
        let cluster = try await ProcessCluster.twoZones()
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let app = "steady-controller"
        let counter = SequenceCounter(total: Self.total)
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        // Own zone first, the other zone's controller next.
        let load = Task {
            try await cluster.load(
                app: app, controllers: [cluster.client(zone: "z1").ingress, cluster.client(zone: "z2").ingress],
                rate: Self.rate, count: Self.total)
        }
        #expect(await counter.wait(for: Self.rate * 3, timeout: .seconds(60)))
        cluster.kill("z1-controller")
        try await load.value
        await Self.expectEveryLineOnce(counter, total: Self.total)
        await tail.close()
    }

    /// Each server of zone 1 in turn gets SIGTERM under load and is
    /// started again, then zone 1's controller (the load's first). The
    /// controllers keep no acknowledged history of their own
    /// (`--handover-window 0`): only the servers' graceful handover
    /// (LEAVING, HANDOVER_REQUEST) can keep what they held.
    @Test func aRollingRestartOfEveryServerLosesNoLineAndNoHistory() async throws {
        let total = PartitionTests.total
        let cluster = try await ProcessCluster.twoZones(
            recentPerApp: total + 10_000, controllerArguments: ["--handover-window", "0"])
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let app = "rolling-servers"
        let counter = SequenceCounter(total: total)
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        let load = Task {
            try await cluster.load(
                app: app, controllers: [cluster.client(zone: "z1").ingress, cluster.client(zone: "z2").ingress],
                rate: Self.rate, count: total)
        }
        #expect(await counter.wait(for: 10_000, timeout: .seconds(60)))
        for member in ["z1-server-1", "z1-server-2", "z1-controller"] {
            let (status, took) = try await cluster.terminate(member)
            #expect(status == 0, "\(member) exited \(status)")
            #expect(took < .seconds(10), "\(member) took \(took) to stop")
            #expect(!cluster.log(member).contains("shutdown timeout"), "\(cluster.log(member))")
            try await cluster.start(member)
        }
        try await load.value
        await Self.expectEveryLineOnce(counter, total: total)
        for zone in ["z1", "z2"] {
            let (numbers, notices) = try await PartitionTests.recent(cluster.client(zone: zone), app: app)
            let whole = numbers == Array(0..<total)
            #expect(whole, "through \(zone): \(PartitionTests.describe(numbers))")
            // Nothing was lost, so nothing is told.
            #expect(notices.isEmpty, "\(notices)")
        }
        await tail.close()
        if let dir = ProcessInfo.processInfo.environment["KEEP_LOGS"] {
            for name in ["z1-controller", "z2-controller", "z1-server-1", "z1-server-2"] {
                try? cluster.log(name).write(toFile: "\(dir)/\(name).log", atomically: true, encoding: .utf8)
            }
        }
    }

    @Test func aStoppedZoneIsPartialAndComesBack() async throws {
        let cluster = try await ProcessCluster.twoZones()
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let z1 = cluster.client(zone: "z1")
        let z2 = cluster.client(zone: "z2")
        try await z1.emit(app: "zoned", lines: ["one from z1"])
        try await z2.emit(app: "zoned", lines: ["one from z2"])
        let received = Received()
        let tail = try await z1.tail(app: "zoned", into: received)

        cluster.kill("z2-server-1")
        cluster.kill("z2-server-2")
        #expect(await received.wait { $0.notices.contains { $0.text.contains("zone z2 is not answering") } })
        let started = ContinuousClock.now
        let response = try await HTTPClient.get(
            z1.http.with(path: "/apps/zoned/recentlogs"), headers: [("Accept", "application/x-protobuf")] + z1.authorization)
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(response.headers["Sluice-Partial"].first == "z2")
        let batch = try Loggregator_V2_EnvelopeBatch(serializedBytes: Array(response.body.readableBytesView))
        // Zone 2's servers are told of: what they held is not read while down.
        let notices = batch.batch.filter { $0.tags["sluice_notice"] == "server_lost" }.map(\.text)
        #expect(!notices.isEmpty && notices.allSatisfy { $0.contains(" of zone z2 stopped answering at ") }, "\(notices)")
        #expect(batch.batch.filter { $0.tags["sluice_notice"] == nil }.map(\.text) == ["one from z1"])

        try await cluster.start("z2-server-1")
        try await cluster.start("z2-server-2")
        #expect(await received.wait(timeout: .seconds(15)) { $0.notices.contains { $0.text.contains("zone z2 is back") } })
        // A recent request travels the same links after the renewed
        // subscriptions, so once it is answered they are in place; and the
        // answer is whole again.
        let whole = try await HTTPClient.get(
            z1.http.with(path: "/apps/\(pathEscape("zoned"))/recentlogs"), headers: z1.authorization)
        #expect(whole.headers["Sluice-Partial"].isEmpty)
        try await z2.emit(app: "zoned", lines: ["z2 again"])
        #expect(await received.wait { $0.count - $0.notices.count >= 1 })
        #expect(received.envelopes.filter { !$0.isNotice }.map(\.text) == ["z2 again"])
        await tail.close()
    }
}

/// Counts numbered lines from a websocket cheaply (no full decode, so a
/// debug-built test keeps up with 20,000 a second): which arrived, how many
/// twice, and Sluice's notices.
final class SequenceCounter: Sendable {
    private struct State {
        var seen: [Bool]
        var received = 0
        var duplicates = 0
        var notices: [String] = []
        /// Lines that are not numbered (a test's marker).
        var unnumbered = 0
    }

    private let state: NIOLockedValueBox<State>

    init(total: Int) {
        state = NIOLockedValueBox(State(seen: Array(repeating: false, count: total)))
    }

    func add(_ bytes: ByteBuffer) {
        if bytes.readableBytesView.withContiguousStorageIfAvailable({ Self.contains($0, Self.marker) }) == true {
            let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView))
            state.withLockedValue { $0.notices.append(envelope.map { String(decoding: $0.log.payload, as: UTF8.self) } ?? "?") }
            return
        }
        guard let number = Self.sequence(in: bytes) else {
            state.withLockedValue { $0.unnumbered += 1 }
            return
        }
        state.withLockedValue { state in
            guard number < state.seen.count else { return }
            if state.seen[number] { state.duplicates += 1 } else { state.seen[number] = true }
            state.received += 1
        }
    }

    var received: Int { state.withLockedValue { $0.received } }
    var unnumbered: Int { state.withLockedValue { $0.unnumbered } }
    var duplicates: Int { state.withLockedValue { $0.duplicates } }
    var missing: Int { state.withLockedValue { $0.seen.filter { !$0 }.count } }

    /// The first runs of lines neither this counter nor `other` saw.
    func missingRuns(alongside other: SequenceCounter) -> [String] {
        let theirs = other.state.withLockedValue { $0.seen }
        let mine = state.withLockedValue { $0.seen }
        var runs: [String] = []
        var number = 0
        while number < mine.count, runs.count < 8 {
            guard !mine[number] && !theirs[number] else {
                number += 1
                continue
            }
            let start = number
            while number < mine.count, !mine[number] && !theirs[number] { number += 1 }
            runs.append("\(start)..<\(number)")
        }
        return runs
    }

    /// Lines (below `limit`, if given) neither this counter nor `other` saw.
    func missing(alongside other: SequenceCounter, below limit: Int? = nil) -> Int {
        let theirs = other.state.withLockedValue { $0.seen }
        return state.withLockedValue { state in
            zip(state.seen, theirs).prefix(limit ?? state.seen.count).filter { !$0 && !$1 }.count
        }
    }

    /// The highest number seen, or -1.
    var highest: Int { state.withLockedValue { $0.seen.lastIndex(of: true) ?? -1 } }

    /// Waits until `count` lines arrived; false on timeout.
    func wait(for count: Int, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while received < count {
            if ContinuousClock.now > deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    private static let marker = Array("sluice_notice".utf8)

    private static func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
        guard haystack.count >= needle.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
            if haystack[start..<start + needle.count].elementsEqual(needle) { return true }
        }
        return false
    }

    /// N in a Log envelope whose payload starts with N in 12 digits (as
    /// `sluice bench load` writes).
    private static func sequence(in envelope: ByteBuffer) -> Int? {
        envelope.withUnsafeReadableBytes { bytes -> Int? in
            var reader = ProtoReader(bytes)
            while let (field, wireType) = try? reader.readTag() {
                guard field == 4, wireType == .lengthDelimited, let log = try? reader.readLengthDelimited() else {
                    try? reader.skip(wireType)
                    continue
                }
                var inner = ProtoReader(UnsafeRawBufferPointer(rebasing: bytes[log]))
                while let (innerField, innerType) = try? inner.readTag() {
                    guard innerField == 1, innerType == .lengthDelimited, let payload = try? inner.readLengthDelimited()
                    else {
                        try? inner.skip(innerType)
                        continue
                    }
                    let text = bytes[log.lowerBound + payload.lowerBound..<log.lowerBound + payload.upperBound]
                    guard text.count >= 12 else { return nil }
                    var value = 0
                    for digit in text.prefix(12) {
                        guard (48...57).contains(digit) else { return nil }
                        value = value * 10 + Int(digit - 48)
                    }
                    return value
                }
                return nil
            }
            return nil
        }
    }
}

extension ControllerClient {
    func tail(app: String, counting counter: SequenceCounter) async throws -> WebSocketClient {
        try await WebSocketClient.connect(http.with(path: "/apps/\(pathEscape(app))/stream"), headers: authorization) { message in
            if case .binary(let bytes) = message { counter.add(bytes) }
        }
    }
}
