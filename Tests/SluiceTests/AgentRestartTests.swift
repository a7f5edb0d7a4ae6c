import Foundation
import SluiceCLI
import SluiceWire
import Testing

/// An agent (a `sluice agent` process with `--spool`) in front of the
/// process cluster: killed with what it acknowledged, and restarted with
/// every other member under load. In `ClusterProcessTests`, so that these
/// run with the other process tests, one at a time.
extension ClusterProcessTests {
    /// The agent's only controller is down, so 20,000 lines it acknowledged
    /// to the load wait in its spool when it is killed with SIGKILL.
    /// Started again with the controller back, it sends them, and a tail
    /// gets every one once. (Without `--spool` all 20,000 are lost.)
    @Test func anAgentKilledWithItsSpoolFullSendsEveryLineOnceAfterItsRestart() async throws {
        let total = 20_000
        let cluster = try await ProcessCluster.twoZones(recentPerApp: total + 1_000)
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let app = "spooled"
        let listen = "127.0.0.1:\(try ProcessCluster.freePort())"
        let arguments = [
            "--controller", cluster.client(zone: "z1").ingress.description, "--spool",
            cluster.directory.appendingPathComponent("spool").path, "--log-level", "info",
        ]
        cluster.kill("z1-controller")
        try await cluster.startAgent(listen: listen, arguments: arguments)
        try await cluster.load(app: app, controllers: [try Endpoint(parsing: listen)], rate: Self.rate, count: total)
        cluster.kill("agent")

        let counter = SequenceCounter(total: total)
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        try await cluster.start("z1-controller")
        try await cluster.startAgent(listen: listen, arguments: arguments)
        await Self.expectEveryLineOnce(counter, total: total)
        let numbers = try await PartitionTests.recentNumbers(cluster.client(zone: "z2"), app: app, limit: total)
        let whole = numbers == Array(0..<total)
        #expect(whole, "\(PartitionTests.describe(numbers, total: total))")
        let log = cluster.log("agent")
        #expect(log.contains("sending them again") && log.contains("\(total)"), "\(log.suffix(3000))")
        await tail.close()
    }

    /// Every member in turn gets SIGTERM under 20,000 lines a second that go
    /// through an agent with a spool, and is started again: each server,
    /// then each controller, then the agent. The lines are of two apps:
    /// `rolling` (4,000 a second, 100,000 in all: what a recent read can
    /// hold) and `bulk` (16,000 a second). No line of either is lost, none
    /// comes twice to a tail, and `rolling`'s `--recent` holds no line twice
    /// and every line since the restarts in both zones. Each member is back with the controllers before
    /// the next stops (`ProcessCluster.rejoined`, as `bin/cluster
    /// rolling-restart` waits). A tail ends with its controller, so one tail per
    /// app (zone 2) runs until zone 2's controller stops, and another (zone
    /// 1, opened once zone 1's controller is back) from then on: between
    /// them they see every line, and neither sees one twice.
    @Test func aRollingRestartOfEveryMemberAndTheAgentLosesAndRepeatsNothing() async throws {
        let seconds = 25
        let apps = [(name: "rolling", rate: 4_000), (name: "bulk", rate: Self.rate - 4_000)]
        let cluster = try await ProcessCluster.twoZones(
            recentPerApp: 110_000, controllerArguments: ["--handover-window", "0"])
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let listen = "127.0.0.1:\(try ProcessCluster.freePort())"
        let controllers = [cluster.client(zone: "z1").ingress, cluster.client(zone: "z2").ingress]
        let arguments = [
            "--controller", controllers.map(\.description).joined(separator: ","), "--spool",
            cluster.directory.appendingPathComponent("spool").path,
        ]
        try await cluster.startAgent(listen: listen, arguments: arguments)
        var z2Tails: [SequenceCounter] = []
        var z1Tails: [SequenceCounter] = []
        var sockets: [WebSocketClient] = []
        for app in apps {
            let counter = SequenceCounter(total: app.rate * seconds)
            sockets.append(try await cluster.client(zone: "z2").tail(app: app.name, counting: counter))
            z2Tails.append(counter)
        }
        let agent = try Endpoint(parsing: listen)
        let loads = apps.map { app in
            Task {
                try await cluster.load(
                    app: app.name, controllers: [agent], rate: app.rate, count: app.rate * seconds, logName: "load-\(app.name)")
            }
        }
        #expect(await z2Tails[0].wait(for: 10_000, timeout: .seconds(60)))
        for member in ["z1-server-1", "z1-server-2", "z2-server-1", "z2-server-2", "z1-controller", "z2-controller", "agent"] {
            if member == "z2-controller" {
                for app in apps {
                    let counter = SequenceCounter(total: app.rate * seconds)
                    sockets.append(try await cluster.client(zone: "z1").tail(app: app.name, counting: counter))
                    z1Tails.append(counter)
                }
                // A tail gets what is stored after it subscribed: zone 2's
                // catches up to what zone 1's began with before it ends.
                for (z2, z1) in zip(z2Tails, z1Tails) {
                    let deadline = ContinuousClock.now + .seconds(30)
                    while z1.highest < 0 || z2.missing(alongside: z1, below: z1.highest) > 0, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
            print("\(Date()) \(member) stops; rolling's zone 2 tail has \(z2Tails[0].received)")
            let (status, took) = try await cluster.terminate(member)
            #expect(status == 0, "\(member) exited \(status)")
            #expect(took < .seconds(10), "\(member) took \(took) to stop")
            if member == "agent" {
                try await cluster.startAgent(listen: listen, arguments: arguments)
            } else {
                try await cluster.start(member)
                try await cluster.rejoined(member)
            }
        }
        print("\(Date()) all restarted; rolling's zone 1 tail has \(z1Tails[0].received)")
        for load in loads { try await load.value }
        for (index, app) in apps.enumerated() {
            let (z2, z1) = (z2Tails[index], z1Tails[index])
            let deadline = ContinuousClock.now + .seconds(60)
            while z2.missing(alongside: z1) > 0 && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            let missing = z2.missing(alongside: z1)
            #expect(missing == 0, "\(app.name): \(missing) lines reached neither tail: \(z2.missingRuns(alongside: z1))")
            #expect(z2.duplicates == 0, "\(app.name): zone 2's tail got \(z2.duplicates) twice")
            #expect(z1.duplicates == 0, "\(app.name): zone 1's tail got \(z1.duplicates) twice")
        }
        // Recent reads: every line, once each and in order, and nothing
        // but numbered lines: each server's history went on at its leave.
        let total = apps[0].rate * seconds
        for zone in ["z1", "z2"] {
            let (numbers, notices) = try await PartitionTests.recent(cluster.client(zone: zone), app: "rolling", limit: total)
            #expect(numbers == Array(0..<total), "through \(zone): \(PartitionTests.describe(numbers, total: total))")
            #expect(notices.isEmpty, "\(notices)")
        }
        for socket in sockets { await socket.close() }
    }

    /// The agent's controller hangs under load (SIGSTOP: its sockets stay
    /// open and nothing is answered, as a host cut off by a silent
    /// partition): the agent takes it for dead once an acknowledgement is
    /// 5 s late, moves to the other controller and sends again what was not
    /// acknowledged. The tail gets every line once. (Without the check the
    /// agent waits on the hung controller for as long as TCP does: many
    /// minutes.)
    @Test func anAgentWhoseControllerHangsMovesToTheNextAndLosesNothing() async throws {
        let total = Self.rate * 10
        let cluster = try await ProcessCluster.twoZones()
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let app = "hung-controller"
        let listen = "127.0.0.1:\(try ProcessCluster.freePort())"
        let controllers = [cluster.client(zone: "z1").ingress, cluster.client(zone: "z2").ingress]
        try await cluster.startAgent(
            listen: listen, arguments: ["--controller", controllers.map(\.description).joined(separator: ","), "--log-level", "info"])
        let counter = SequenceCounter(total: total)
        let tail = try await cluster.client(zone: "z2").tail(app: app, counting: counter)
        let load = Task {
            try await cluster.load(app: app, controllers: [try Endpoint(parsing: listen)], rate: Self.rate, count: total)
        }
        #expect(await counter.wait(for: 20_000, timeout: .seconds(60)))
        cluster.pause("z1-controller")
        defer { cluster.resume("z1-controller") }
        try await load.value
        await Self.expectEveryLineOnce(counter, total: total)
        let log = cluster.log("agent")
        #expect(log.contains("controller stopped acknowledging"), "\(log.suffix(2000))")
        await tail.close()
    }
}
