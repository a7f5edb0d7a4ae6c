import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import SluiceCLI
import SluiceController
import SluiceProto
import SluiceShipping
import SluiceServer
import SluiceTransport
import SluiceWire
import Testing

/// A controller that finds its zone's buffer servers by DNS (`--servers
/// z1=dns+srv://…`), against a real DNS server (dnsmasq) whose records
/// change while lines flow.
@Suite(.serialized)
struct DNSDiscoveryTests {
    static let srv = "_sluice._tcp.z1.sluice.test"
    /// Enough apps that a server joining takes some, whatever the ports
    /// (none of 30 is a (2/3)^30 chance).
    static let apps = (0..<30).map { "dns-app-\($0)" }

    @Test func serversComeAndGoByDNSWhileLinesFlowAndEveryLineArrivesOnce() async throws {
        let bed = try await Bed(name: "srv", listen: (0..<3).map { _ in Endpoint(host: "127.0.0.1", port: 0) }, recentPerApp: 100_000)
        defer { bed.abandon() }
        let (dns, servers, ports, registry) = (bed.dns, bed.servers, bed.ports, bed.registry)
        try await dns.serve(srv: Self.srv, [.init(name: "s1", port: ports[0]), .init(name: "s2", port: ports[1])])
        let client = try await bed.startController(.srv(Self.srv), maxServers: 4)
        let gauge = bed.gauge
        #expect(await waitUntil { gauge("zone_servers") == 2 && gauge("zone_servers_up") == 2 })
        #expect(registry.value(of: #"sluice_controller_buffer_server_up{server="s1.sluice.test:\#(ports[0])",zone="z1"}"#) == 1)

        // A live reader from the start, and lines for every app without pause.
        let tailed = Received()
        let tail = try await client.tail(app: Self.apps[0], into: tailed)
        defer { Task { await tail.close() } }
        let emitter = Emitter(ingress: client.ingress)
        let flowing = Task { try await emitter.run() }
        #expect(await waitUntil(timeout: .seconds(60)) { emitter.rounds >= 5 })

        // A server added to DNS takes its share of apps.
        try await dns.serve(
            srv: Self.srv,
            [.init(name: "s1", port: ports[0]), .init(name: "s2", port: ports[1]), .init(name: "s3", port: ports[2])])
        #expect(await waitUntil { gauge("zone_servers") == 3 && gauge("zone_servers_up") == 3 }, "\(String(describing: gauge("zone_servers")))")
        let joined = emitter.rounds
        #expect(await waitUntil(timeout: .seconds(30)) { emitter.rounds >= joined + 50 })
        let stored = servers[2].store.meta().sources.reduce(0) { $0 + $1.count }
        #expect(stored > 0, "the server that joined took no app")

        // One taken out of DNS and stopped, as a scaled-in pod: it hands its
        // apps and history over first.
        try await dns.serve(srv: Self.srv, [.init(name: "s2", port: ports[1]), .init(name: "s3", port: ports[2])])
        await servers[0].leave()
        try await servers[0].shutdown()
        #expect(await waitUntil { gauge("zone_servers") == 2 && gauge("zone_servers_up") == 2 })
        #expect(registry.value(of: #"sluice_controller_buffer_server_up{server="s1.sluice.test:\#(ports[0])",zone="z1"}"#) == nil)
        let left = emitter.rounds
        #expect(await waitUntil(timeout: .seconds(30)) { emitter.rounds >= left + 50 })
        emitter.stop()
        try await flowing.value

        // Every line of every app is read back once, in order; the tail got
        // each of its app's lines once.
        for app in Self.apps {
            let expected = emitter.sent(app)
            let recent = try await client.recent(app: app, limit: 100_000).map(\.text)
            #expect(recent == expected, "\(app): \(recent.count) read, \(expected.count) sent")
        }
        let expected = emitter.sent(Self.apps[0])
        #expect(await tailed.wait(for: expected.count))
        let lines = tailed.envelopes.filter { !$0.isNotice }.map(\.text)
        #expect(Set(lines) == Set(expected) && lines.count == expected.count, "\(lines.count) tailed, \(expected.count) sent")
        await bed.stop()
    }

    /// `dns://NAME:PORT`: each of a name's addresses is a server at PORT
    /// (three servers on one port, at 127.0.0.2 to .4, all loopback).
    @Test func aNameWhoseAddressesAreTheServersIsFollowed() async throws {
        let port = try freeLoopbackPort(udp: false)
        let bed = try await Bed(name: "a", listen: (2...4).map { Endpoint(host: "127.0.0.\($0)", port: port) }, recentPerApp: 10_000)
        defer { bed.abandon() }
        let (dns, servers, registry) = (bed.dns, bed.servers, bed.registry)
        try await dns.serve(name: "servers.sluice.test", addresses: ["127.0.0.2", "127.0.0.3"])
        let client = try await bed.startController(.addresses("servers.sluice.test", port: port))
        let gauge = bed.gauge
        #expect(await waitUntil { gauge("zone_servers") == 2 && gauge("zone_servers_up") == 2 })
        #expect(registry.value(of: #"sluice_controller_buffer_server_up{server="127.0.0.2:\#(port)",zone="z1"}"#) == 1)

        for app in Self.apps { try await client.emit(app: app, lines: (0..<20).map { "\(app) before \($0)" }) }
        try await dns.serve(name: "servers.sluice.test", addresses: ["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        #expect(await waitUntil { gauge("zone_servers") == 3 && gauge("zone_servers_up") == 3 })
        for app in Self.apps { try await client.emit(app: app, lines: (0..<20).map { "\(app) after \($0)" }) }
        #expect(servers[2].store.meta().sources.reduce(0) { $0 + $1.count } > 0, "the server that joined took no app")
        for app in Self.apps {
            let recent = try await client.recent(app: app, limit: 1_000).map(\.text)
            #expect(recent == (0..<20).map { "\(app) before \($0)" } + (0..<20).map { "\(app) after \($0)" }, "\(app)")
        }
        await bed.stop()
    }

    /// Buffer servers listening at `listen`, a dnsmasq to name them, and,
    /// once started, a controller that finds them by DNS: what both tests
    /// stand on. `stop` ends it in order; `abandon` (a test that failed
    /// early) kills what is left.
    final class Bed: @unchecked Sendable {
        let directory: URL
        let dns: Dnsmasq
        let registry = PrometheusCollectorRegistry()
        let serverGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var servers: [BufferServer] = []
        var ports: [Int] = []
        private var controller: (group: ServiceGroup, running: Task<Void, any Error>)?

        init(name: String, listen: [Endpoint], recentPerApp: Int) async throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-dns-\(name)-\(getpid())")
            try? FileManager.default.removeItem(at: directory)
            dns = try Dnsmasq(directory: directory)
            for endpoint in listen {
                let server = BufferServer(
                    configuration: .init(listen: endpoint, limits: .init(recentPerApp: recentPerApp)), group: serverGroup,
                    logger: .quiet, metrics: PrometheusMetricsFactory(registry: registry))
                ports.append(try await server.bind().port)
                servers.append(server)
            }
        }

        /// A controller of zone z1 whose servers `source` names, asking
        /// dnsmasq every 200 ms, run as its service runs.
        func startController(_ source: ServerSource, maxServers: Int = 16) async throws -> ControllerClient {
            var configuration = Controller.Configuration(
                ingress: Endpoint(host: "127.0.0.1", port: 0), http: Endpoint(host: "127.0.0.1", port: 0), zones: [:])
            configuration.discoveredZones = ["z1": source]
            configuration.dnsResolver = Endpoint(host: "127.0.0.1", port: dns.port)
            configuration.dnsInterval = .milliseconds(200)
            configuration.dnsMaxServers = maxServers
            let controller = Controller(configuration: configuration, logger: .quiet, registry: registry)
            let (ingress, http) = try await controller.bind()
            let group = ServiceGroup(services: [controller], gracefulShutdownSignals: [], logger: .quiet)
            self.controller = (group, Task { try await group.run() })
            return ControllerClient(ingress: ingress, http: HTTPURL(host: http.host, port: http.port))
        }

        /// A zone z1 gauge of the controller's.
        func gauge(_ name: String) -> Double? { registry.value(of: #"sluice_controller_\#(name){zone="z1"}"#) }

        func stop() async {
            if let controller {
                await controller.group.triggerGracefulShutdown()
                try? await controller.running.value
            }
            for server in servers { try? await server.shutdown() }
            try? await serverGroup.shutdownGracefully()
            abandon()
        }

        func abandon() {
            controller?.running.cancel()
            for server in servers { Task { try? await server.shutdown() } }
            dns.stop()
            try? FileManager.default.removeItem(at: directory)
        }
    }

    /// Lines for every app, round after round (2 of each app a round, about
    /// 50 rounds a second) on one connection: what was sent is what each
    /// app must read once `run` has returned (every frame acknowledged).
    final class Emitter: Sendable {
        let ingress: Endpoint
        private let state = NIOLockedValueBox((rounds: 0, stopped: false))

        init(ingress: Endpoint) { self.ingress = ingress }

        var rounds: Int { state.withLockedValue { $0.rounds } }
        func stop() { state.withLockedValue { $0.stopped = true } }

        static func line(_ app: String, _ round: Int, _ index: Int) -> String { "\(app) round \(round) line \(index)" }

        func sent(_ app: String) -> [String] {
            (0..<rounds).flatMap { round in (0..<2).map { Self.line(app, round, $0) } }
        }

        func run() async throws {
            let client = try await IngressClient.connect(to: [ingress])
            while !state.withLockedValue({ $0.stopped }) {
                let round = rounds
                var builder = BatchFrameBuilder()
                for app in DNSDiscoveryTests.apps {
                    let fields = LogEnvelopeFields(sourceID: app)
                    for index in 0..<2 {
                        var line = Self.line(app, round, index)
                        line.withUTF8 { builder.appendLog(fields, timestamp: WallClock.nowNanos(), payload: UnsafeRawBufferPointer($0)) }
                    }
                }
                try await client.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
                state.withLockedValue { $0.rounds += 1 }
                try await Task.sleep(for: .milliseconds(20))
            }
            try await client.close()
        }
    }
}
