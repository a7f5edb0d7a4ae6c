import Foundation
import NIOCore
import NIOHTTP1
import SluiceCLI
import SluiceProto
import SluiceWire
import SwiftProtobuf
import Testing

/// Faults of real networks, on hosts made of network namespaces
/// (`bin/netns-cluster`): each member of a 2-zone cluster on its own host
/// and address, and partitions that drop packets silently, as when a host
/// vanishes: no reset, no closed socket, only silence (docs/reliability.md).
/// The tests and the load run here, in the root namespace, which reaches
/// every host.
@Suite(.serialized, .enabled(if: NetnsBed.available || NetnsBed.required))
struct PartitionTests {
    static let rate = 20_000
    /// Five seconds at 20,000 a second: as many as one recent read returns.
    static let total = 100_000

    static let z1Hosts = ProcessCluster.twoZoneHosts.filter { $0.hasPrefix("z1-") }
    static let z2Hosts = ProcessCluster.twoZoneHosts.filter { $0.hasPrefix("z2-") }

    /// A cluster on a fresh test bed; servers keep every line of the run.
    /// `prepare` runs on the bed before any member starts (a delay between
    /// hosts must: it takes only connections made after it).
    static func cluster(prepare: (NetnsBed) throws -> Void = { _ in }) async throws -> (NetnsBed, ProcessCluster) {
        let bed = try NetnsBed.up(ProcessCluster.twoZoneHosts)
        do {
            try prepare(bed)
            let cluster = try await ProcessCluster.twoZones(on: bed, serverArguments: ["--recent-per-app", "\(total + 10_000)"])
            try await cluster.startAll()
            return (bed, cluster)
        } catch {
            bed.down()
            throw error
        }
    }

    @Test func aSilentPartitionFromTheOwnerMovesItsAppsToTheStandInAndBack() async throws {
        let (bed, cluster) = try await Self.cluster()
        defer { bed.down() }
        defer { cluster.stopAll() }
        let app = "partitioned-owner"
        let owner = cluster.owner(of: app, in: "z1")
        let standIn = ["z1-server-1", "z1-server-2"].first { $0 != owner }!
        let counter = SequenceCounter(total: Self.total)
        // Tailed through the other zone's controller, which reaches every server throughout.
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        let load = Task {
            try await cluster.load(
                app: app, controllers: [cluster.client(zone: "z1").ingress], rate: Self.rate, count: Self.total)
        }
        #expect(await counter.wait(for: 5_000, timeout: .seconds(60)))
        let standInBefore = try await cluster.serverMetric(standIn, MetricNames.serverStored)
        try bed.partition(["z1-controller"], from: [owner])
        // The controller takes the silent owner for dead and routes the app
        // to the stand-in: the lines keep coming, through the stand-in.
        #expect(await counter.wait(for: 25_000, timeout: .seconds(60)))
        let standInDuring = try await cluster.serverMetric(standIn, MetricNames.serverStored)
        #expect(standInDuring > standInBefore, "the stand-in took nothing while the owner was cut off")
        try bed.heal()
        // The owner comes back and takes its app again while the load runs.
        let ownerAtHeal = try await cluster.serverMetric(owner, MetricNames.serverStored)
        var movedBack = false
        while !movedBack, counter.received < Self.total - 1_000 {
            try await Task.sleep(for: .milliseconds(100))
            movedBack = try await cluster.serverMetric(owner, MetricNames.serverStored) > ownerAtHeal
        }
        #expect(movedBack, "the app did not move back to its owner after the partition healed")
        try await load.value
        await ClusterProcessTests.expectEveryLineOnce(counter, total: Self.total)
        // A recent read afterwards, through the controller that was cut
        // off, holds every line once, in order.
        let numbers = try await Self.recentNumbers(cluster.client(zone: "z1"), app: app)
        let whole = numbers == Array(0..<Self.total)
        #expect(whole, "\(Self.describe(numbers))")
        await tail.close()
    }

    @Test func aZoneCutOffIsPartialWithinThreeSecondsAndComesBackToTheSameTail() async throws {
        let (bed, cluster) = try await Self.cluster()
        defer { bed.down() }
        defer { cluster.stopAll() }
        let app = "zone-cut-off"
        let z1 = cluster.client(zone: "z1")
        let z2 = cluster.client(zone: "z2")
        let received = Received()
        let tail = try await z1.tail(app: app, into: received)
        try await z1.emit(app: app, lines: ["before from z1"])
        try await z2.emit(app: app, lines: ["before from z2"])
        #expect(await received.wait { $0.count - $0.notices.count >= 2 })

        // The links between the zones carry nothing now but heartbeats.
        let cut = ContinuousClock.now
        try bed.partition(Self.z1Hosts, from: Self.z2Hosts)
        #expect(await received.wait(timeout: .seconds(10)) { $0.notices.contains { $0.text.contains("zone z2 is not answering") } })
        let told = ContinuousClock.now - cut
        #expect(told < .seconds(3), "the tail was told of zone z2 after \(told)")
        // A recent read says so too, at once.
        let asked = ContinuousClock.now
        let recent = try await HTTPClient.get(
            z1.http.with(path: "/apps/\(pathEscape(app))/recentlogs"), headers: z1.authorization)
        #expect(ContinuousClock.now - asked < .seconds(3))
        #expect(recent.headers["Sluice-Partial"].first == "z2")

        // Both sides keep taking ingress (each acknowledges what it took).
        try await z1.emit(app: app, lines: ["during from z1"])
        try await z2.emit(app: app, lines: ["during from z2"])
        #expect(await received.wait { $0.count - $0.notices.count >= 3 })

        try bed.heal()
        #expect(await received.wait(timeout: .seconds(15)) { $0.notices.contains { $0.text.contains("zone z2 is back") } })
        try await z2.emit(app: app, lines: ["after from z2"])
        // The same websocket: no reconnection, zone 2's lines come again.
        #expect(await received.wait { $0.count - $0.notices.count >= 5 })
        // What zone 2 took while it was cut off comes too: the renewed
        // subscriptions ask for what the servers stored while the links
        // were down. Each line once.
        let lines = received.envelopes.filter { !$0.isNotice }.map(\.text)
        #expect(
            lines.sorted() == ["after from z2", "before from z1", "before from z2", "during from z1", "during from z2"],
            "\(lines)")
        // What zone 2 took while cut off is in its servers, and a recent
        // read through zone 1 has it now.
        let whole = try await z1.recent(app: app)
        #expect(Set(whole.map(\.text)).isSuperset(of: ["before from z1", "before from z2", "during from z1", "during from z2"]))
        await tail.close()
    }

    /// 100 ms more each way between the zones (a 200 ms round trip), then
    /// 20 ms each way with 2% of chunks stalled as lost segments stall TCP: the
    /// tail, through the other zone's controller, gets every line once and
    /// a recent read through it holds every line. The load's time within
    /// its own zone is printed for docs/reliability.md.
    @Test(arguments: [(100.0, 0.0), (20.0, 2.0)])
    func aSlowOrLossyLinkBetweenZonesLosesNothing(delay: Double, loss: Double) async throws {
        let (bed, cluster) = try await Self.cluster { bed in
            try bed.delay(Self.z1Hosts, from: Self.z2Hosts, milliseconds: delay, lossPercent: loss)
        }
        defer { bed.down() }
        defer { cluster.stopAll() }
        let app = "far-zone"
        let counter = SequenceCounter(total: Self.total)
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        // The tail's subscriptions cross the slow link too, and a line
        // sent before they are in place is not this tail's to get: a line
        // that came back through them says they are.
        var subscribed = false
        for _ in 0..<30 where !subscribed {
            try await cluster.client(zone: "z1").emit(app: app, lines: ["subscribed?"])
            subscribed = await waitUntil(timeout: .seconds(1)) { counter.unnumbered >= 1 }
        }
        #expect(subscribed)
        let started = ContinuousClock.now
        try await cluster.load(
            app: app, controllers: [cluster.client(zone: "z1").ingress], rate: Self.rate, count: Self.total)
        let took = ContinuousClock.now - started
        print("\(Self.total) lines at \(Self.rate)/s into zone 1 with \(delay) ms each way and \(loss)% stalls to zone 2: all acknowledged in \(took)")
        await ClusterProcessTests.expectEveryLineOnce(counter, total: Self.total)
        // Zone 1's 100,000 lines cross the slow link within the zone
        // timeout (2 s) or the answer is marked partial, as it should be:
        // a partial answer is asked again, up to three times.
        var numbers: [Int] = []
        for _ in 0..<3 {
            let answer = try await Self.recent(cluster.client(zone: "z2"), app: app, partialAllowed: true)
            numbers = answer.numbers
            if !answer.partial { break }
        }
        let whole = numbers == Array(0..<Self.total)
        #expect(whole, "\(Self.describe(numbers))")
        await tail.close()
    }

    /// The numbered lines of a recent read (protobuf), in the order given.
    static func recentNumbers(_ client: ControllerClient, app: String, limit: Int = total) async throws -> [Int] {
        try await recent(client, app: app, limit: limit).numbers
    }

    /// A whole recent read (protobuf): its numbered lines in the order
    /// given, and the texts of Sluice's notices among them.
    static func recent(_ client: ControllerClient, app: String, limit: Int = total) async throws -> (
        numbers: [Int], notices: [String]
    ) {
        let answer = try await recent(client, app: app, limit: limit, partialAllowed: false)
        return (answer.numbers, answer.notices)
    }

    /// `recent`, saying whether the answer was partial (a zone did not
    /// answer in time); unless `partialAllowed`, a partial one fails the test.
    static func recent(_ client: ControllerClient, app: String, limit: Int = total, partialAllowed: Bool) async throws -> (
        numbers: [Int], notices: [String], partial: Bool
    ) {
        let response = try await HTTPClient.get(
            client.http.with(path: "/apps/\(pathEscape(app))/recentlogs?limit=\(limit)"),
            headers: [("Accept", "application/x-protobuf")] + client.authorization)
        let partial = !response.headers["Sluice-Partial"].isEmpty
        if !partialAllowed { #expect(!partial, "Sluice-Partial: \(response.headers["Sluice-Partial"])") }
        let batch = try Loggregator_V2_EnvelopeBatch(serializedBytes: Array(response.body.readableBytesView))
        var numbers: [Int] = []
        var notices: [String] = []
        for envelope in batch.batch {
            if envelope.tags["sluice_notice"] != nil {
                notices.append(String(decoding: envelope.log.payload, as: UTF8.self))
            } else if let number = Int(String(decoding: envelope.log.payload.prefix(12), as: UTF8.self)) {
                numbers.append(number)
            }
        }
        return (numbers, notices, partial)
    }

    /// What a recent read that is not 0..<total got wrong: how many lines,
    /// the runs missing, and where the order first breaks.
    static func describe(_ numbers: [Int], total: Int = total) -> String {
        let seen = Set(numbers)
        var runs: [String] = []
        var number = 0
        while number < total, runs.count < 8 {
            guard !seen.contains(number) else {
                number += 1
                continue
            }
            let start = number
            while number < total, !seen.contains(number) { number += 1 }
            runs.append("\(start)..<\(number)")
        }
        let disorder = numbers.indices.dropLast().first { numbers[$0] > numbers[$0 + 1] }
        return "\(numbers.count) lines, \(numbers.count - seen.count) duplicated, missing \(runs), "
            + (disorder.map { "out of order at \($0): \(numbers[max(0, $0 - 2)..<min(numbers.count, $0 + 3)])" } ?? "in order")
    }
}
