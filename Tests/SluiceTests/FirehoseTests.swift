import Foundation
import NIOCore
import SluiceAuth
import SluiceCLI
import SluiceProto
import SluiceServer
import SluiceShipping
import SluiceTransport
import SluiceWire
import SwiftProtobuf
import Testing

/// The operators' firehose: every app's envelopes from every zone, admin
/// only; readers sharing a subscription id split it, each envelope to one.
@Suite(.serialized) struct FirehoseTests {
    static func reader(_ client: ControllerClient, subscription: String, token: String?, into received: Received) async throws
        -> WebSocketClient
    {
        try await WebSocketClient.connect(
            client.http.with(path: "/firehose/\(subscription)"), headers: HTTPClient.bearer(token)
        ) { message in
            if case .binary(let bytes) = message,
                let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView))
            {
                received.add(envelope)
            }
        }
    }

    /// Numbered lines over many apps, through both zones' controllers.
    static func send(_ zones: ZonesTests.Zones, _ range: Range<Int>) async throws {
        for (index, start) in stride(from: range.lowerBound, to: range.upperBound, by: 100).enumerated() {
            let client = zones.clients[index % 2 == 0 ? "z1" : "z2"]!
            let ingress = try await IngressClient.connect(to: client.ingress)
            var builder = BatchFrameBuilder()
            for number in start..<min(start + 100, range.upperBound) {
                let fields = LogEnvelopeFields(sourceID: "fh-app-\(number % 17)")
                Array("line \(number)".utf8).withUnsafeBytes {
                    builder.appendLog(fields, timestamp: WallClock.nowNanos(), payload: $0)
                }
            }
            try await ingress.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
            try await ingress.close()
        }
    }

    static func lines(_ received: Received) -> [String] {
        received.envelopes.filter { !$0.isNotice }.map(\.text)
    }

    @Test func readersSharingAnIdSplitEveryEnvelopeAndAnotherIdGetsThemAll() async throws {
        let tokens = try await TestTokens.make("firehose")
        defer { tokens.remove() }
        let zones = try await ZonesTests.Zones.start(authorizer: tokens.authorizer)
        let admin = try await tokens.token(admin: true)
        let appToken = try await tokens.token(apps: ["fh-app-1"])
        let z1 = zones.clients["z1"]!
        let z2 = zones.clients["z2"]!

        // Only an admin reads the firehose.
        for (token, status) in [(nil, 401), (appToken, 403)] as [(String?, Int)] {
            do {
                let client = try await WebSocketClient.connect(
                    z1.http.with(path: "/firehose/nozzle"), headers: HTTPClient.bearer(token)
                ) { _ in }
                await client.close()
                Issue.record("the firehose took a token that is no admin's")
            } catch let refused as WebSocketRefused {
                #expect(refused.status == status)
            }
        }

        // Three readers share "nozzle", over both controllers; one reads "audit".
        let shares = [Received(), Received(), Received()]
        let audit = Received()
        var readers = [
            try await Self.reader(z1, subscription: "nozzle", token: admin, into: shares[0]),
            try await Self.reader(z2, subscription: "nozzle", token: admin, into: shares[1]),
            try await Self.reader(z1, subscription: "nozzle", token: admin, into: shares[2]),
        ]
        let auditReader = try await Self.reader(z2, subscription: "audit", token: admin, into: audit)
        let servers = zones.servers.values.flatMap { $0 }
        #expect(await waitUntil {
            servers.allSatisfy { $0.store.firehoseSubscriptions == ["nozzle": 3, "audit": 1] }
        })

        try await Self.send(zones, 0..<3000)
        let first = Set((0..<3000).map { "line \($0)" })
        #expect(await audit.wait(for: 3000))
        #expect(await waitUntil { shares.map { Self.lines($0).count }.reduce(0, +) >= 3000 })
        let counts = shares.map { Self.lines($0).count }
        #expect(counts.reduce(0, +) == 3000, "disjoint: \(counts)")
        #expect(Set(shares.flatMap(Self.lines)) == first, "their union is every line")
        #expect(Set(Self.lines(audit)) == first)
        #expect(counts.allSatisfy { abs($0 - 1000) <= 100 }, "within 10 % of each other: \(counts)")
        // Each reader's lines of one app keep their order.
        for share in shares {
            let numbers = Self.lines(share).map { Int($0.dropFirst(5))! }
            for app in 0..<17 {
                let own = numbers.filter { $0 % 17 == app }
                #expect(own == own.sorted())
            }
        }

        // One leaves; the other two share what comes after, losing nothing.
        await readers.remove(at: 2).close()
        #expect(await waitUntil { servers.allSatisfy { $0.store.firehoseSubscriptions["nozzle"] == 2 } })
        try await Self.send(zones, 3000..<4000)
        let second = Set((3000..<4000).map { "line \($0)" })
        #expect(await waitUntil { Self.lines(shares[0]).count + Self.lines(shares[1]).count >= 3000 - counts[2] + 1000 })
        let after = shares.prefix(2).flatMap { Self.lines($0).filter { second.contains($0) } }
        #expect(after.count == 1000)
        #expect(Set(after) == second)
        #expect(await audit.wait(for: 4000))

        for reader in readers { await reader.close() }
        await auditReader.close()
        await zones.shutdown()
    }

    /// A firehose reader that stops reading is treated as a tail is: its
    /// oldest envelopes go, it is told in band, and the drops are counted;
    /// a reader of another id gets everything meanwhile.
    @Test func aStalledReaderLosesItsOldestWithANoticeWhileAnotherGetsEverything() async throws {
        let cluster = try await TestCluster.start(servers: 1, tailQueueLimit: 200)
        defer { Task { await cluster.shutdown() } }
        let fast = Received()
        let slow = Received()
        let fastClient = try await Self.reader(cluster.client, subscription: "fast", token: nil, into: fast)
        let slowClient = try await Self.reader(cluster.client, subscription: "slow", token: nil, into: slow)
        try await slowClient.setReading(false)
        #expect(await waitUntil { cluster.servers[0].store.firehoseSubscriptions == ["fast": 1, "slow": 1] })

        // 4 KiB lines over three apps: more than the socket buffers and the
        // reader's queue hold. Each chunk goes once the fast reader has the
        // one before.
        let total = 6_000
        let filler = String(repeating: "x", count: 4096)
        for start in stride(from: 0, to: total, by: 100) {
            for app in 0..<3 {
                let lines = (start..<start + 100).filter { $0 % 3 == app }.map { "\($0) \(filler)" }
                try await cluster.emit(app: "stalled-\(app)", lines: lines)
            }
            #expect(await fast.wait(for: start + 100, timeout: .seconds(60)))
        }
        #expect(fast.envelopes.filter { !$0.isNotice }.count == total)

        try await slowClient.setReading(true)
        let complete = await slow.wait(timeout: .seconds(60)) { seen in
            let notices = seen.notices
            return !notices.isEmpty
                && seen.count - notices.count + notices.map(SlowReaderTests.reported).reduce(0, +) == total
        }
        #expect(complete, "the stalled reader got \(slow.envelopes.count)")
        let notices = slow.envelopes.filter(\.isNotice)
        let reported = notices.map(SlowReaderTests.reported).reduce(0, +)
        #expect(reported > 0)
        #expect(notices.allSatisfy { $0.sourceID == "firehose" && $0.text.hasPrefix("Error L10 (output buffer overflow): ") })
        let metric = cluster.metric(#"sluice_controller_stream_envelopes_dropped_total{reason="slow_reader"}"#)
        #expect(metric.map { Int($0) } == reported)
        await fastClient.close()
        await slowClient.close()
    }
}
