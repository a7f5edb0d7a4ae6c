import Foundation
import NIOCore
import NIOHTTP1
import SluiceAuth
import SluiceCLI
import SluiceController
import SluiceProto
import SluiceServer
import SluiceTransport
import SluiceShipping
import SluiceWire
import SwiftProtobuf
import Testing

/// Two zones of two buffer servers, one controller per zone, in-process on
/// loopback: ingress stays in its zone, reads collate every zone.
@Suite(.serialized)
struct ZonesTests {
    struct Zones {
        var servers: [String: [BufferServer]]
        var endpoints: [String: [Endpoint]]
        var controllers: [String: Controller]
        var clients: [String: ControllerClient]

        static func start(zoneTimeout: TimeAmount = .seconds(2), authorizer: Authorizer? = nil) async throws -> Zones {
            var servers: [String: [BufferServer]] = [:]
            var endpoints: [String: [Endpoint]] = [:]
            for zone in ["z1", "z2"] {
                for _ in 0..<2 {
                    let server = BufferServer(
                        configuration: .init(zone: zone, listen: Endpoint(host: "127.0.0.1", port: 0)), logger: .quiet)
                    endpoints[zone, default: []].append(try await server.bind())
                    servers[zone, default: []].append(server)
                }
            }
            var controllers: [String: Controller] = [:]
            var clients: [String: ControllerClient] = [:]
            for zone in ["z1", "z2"] {
                let controller = Controller(
                    configuration: .init(
                        zone: zone, ingress: Endpoint(host: "127.0.0.1", port: 0),
                        http: Endpoint(host: "127.0.0.1", port: 0), zones: endpoints, zoneTimeout: zoneTimeout,
                        authorizer: authorizer),
                    logger: .quiet)
                let (ingress, http) = try await controller.bind()
                controllers[zone] = controller
                clients[zone] = ControllerClient(ingress: ingress, http: HTTPURL(host: http.host, port: http.port))
            }
            return Zones(servers: servers, endpoints: endpoints, controllers: controllers, clients: clients)
        }

        func shutdown() async {
            for controller in controllers.values { try? await controller.shutdown() }
            for server in servers.values.flatMap({ $0 }) { try? await server.shutdown() }
        }

        /// Envelopes held by a zone's servers for `app`.
        func held(in zone: String, app: String) -> Int {
            servers[zone, default: []].reduce(0) { total, server in
                total + server.store.recentFrames(app: app, limit: 100_000, sequence: 0).reduce(0) { sum, frame in
                    var payload = frame
                    guard let header = payload.readFrameHeaderUnchecked(),
                        let (batch, _) = try? Frame(header: header, payload: payload).batchAndParts()
                    else { return sum }
                    var count = 0
                    try? batch.forEachEnvelope { _, _ in count += 1 }
                    return sum + count
                }
            }
        }
    }

    @Test func linesFromBothZonesMergeInTimeOrderOnEitherController() async throws {
        let zones = try await Zones.start()
        defer { Task { await zones.shutdown() } }
        let z1 = zones.clients["z1"]!
        let z2 = zones.clients["z2"]!

        let received = Received()
        let tail = try await z1.tail(app: "shared", into: received)

        // Alternate small batches through each zone's controller so that
        // the two zones' timestamps interleave.
        var expected: [String] = []
        for round in 0..<20 {
            let one = (0..<10).map { "z1 round \(round) line \($0)" }
            let two = (0..<10).map { "z2 round \(round) line \($0)" }
            try await z1.emit(app: "shared", lines: one)
            try await z2.emit(app: "shared", lines: two)
            expected += one + two
        }

        // Ingress stayed in each controller's own zone.
        #expect(zones.held(in: "z1", app: "shared") == 200)
        #expect(zones.held(in: "z2", app: "shared") == 200)

        for client in [z1, z2] {
            let recent = try await client.recent(app: "shared")
            #expect(recent.map(\.text) == expected)
            #expect(recent.map(\.timestamp) == recent.map(\.timestamp).sorted())
        }
        let limited = try await z2.recent(app: "shared", limit: 15)
        #expect(limited.map(\.text) == Array(expected.suffix(15)))

        // One tail, opened on z1's controller, saw both zones' lines.
        #expect(await received.wait(for: 400))
        #expect(Set(received.envelopes.map(\.text)) == Set(expected))
        await tail.close()
    }

    @Test func aSilentZoneGivesAPartialAnswerAndTheTailCarriesOn() async throws {
        let zones = try await Zones.start()
        defer { Task { await zones.shutdown() } }
        let z1 = zones.clients["z1"]!
        let z2 = zones.clients["z2"]!
        try await z1.emit(app: "app", lines: ["from z1"])
        try await z2.emit(app: "app", lines: ["from z2 before"])
        #expect(try await z1.recent(app: "app").map(\.text) == ["from z1", "from z2 before"])

        let received = Received()
        let tail = try await z1.tail(app: "app", into: received)

        // All of zone 2 stops.
        for server in zones.servers["z2"]! { try await server.shutdown() }

        // The tail is told that zone 2 dropped out.
        #expect(await received.wait { $0.notices.contains { $0.text.contains("zone z2 is not answering") } })
        // A reader who comes while zone 2 is down is told so too.
        let late = Received()
        let lateTail = try await z1.tail(app: "app", into: late)
        #expect(await late.wait { $0.notices.contains { $0.text.contains("zone z2 is not answering") } })

        // recentlogs answers quickly with zone 1's lines and names zone 2.
        let started = ContinuousClock.now
        let response = try await HTTPClient.get(
            z1.http.with(path: "/apps/app/recentlogs"), headers: [("Accept", "application/x-protobuf")])
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(response.status == .ok)
        #expect(response.headers["Sluice-Partial"].first == "z2")
        let batch = try Loggregator_V2_EnvelopeBatch(serializedBytes: Array(response.body.readableBytesView))
        // Zone 2's server is told of: what it held is not read while it is down.
        let notices = batch.batch.filter { $0.tags["sluice_notice"] == "server_lost" }.map(\.text)
        #expect(!notices.isEmpty && notices.allSatisfy { $0.contains(" of zone z2 stopped answering at ") }, "\(notices)")
        #expect(batch.batch.filter { $0.tags["sluice_notice"] == nil }.map(\.text) == ["from z1"])
        let json = try await HTTPClient.get(z1.http.with(path: "/apps/app/recentlogs"))
        let object = try JSONSerialization.jsonObject(with: Data(json.body.readableBytesView)) as? [String: Any]
        #expect(object?["partial"] as? [String] == ["z2"])

        // Zone 1 lines still flow to the tail.
        try await z1.emit(app: "app", lines: ["z1 during"])
        #expect(await received.wait { seen in seen.count - seen.notices.count >= 1 })

        // Zone 2 returns on the same addresses: the tail is told, and its
        // lines reach the same websocket without the reader reconnecting.
        var restarted: [BufferServer] = []
        for endpoint in zones.endpoints["z2"]! {
            let server = BufferServer(configuration: .init(zone: "z2", listen: endpoint), logger: .quiet)
            try await server.bind()
            restarted.append(server)
        }
        let restartedServers = restarted
        defer { Task { for server in restartedServers { try? await server.shutdown() } } }
        #expect(await received.wait(timeout: .seconds(15)) { $0.notices.contains { $0.text.contains("zone z2 is back") } })
        #expect(await late.wait(timeout: .seconds(15)) { $0.notices.contains { $0.text.contains("zone z2 is back") } })
        await lateTail.close()
        // A recent request travels the same links after the renewed
        // subscriptions, so once it is answered they are in place; and the
        // answer is whole again.
        let whole = try await HTTPClient.get(z1.http.with(path: "/apps/\(pathEscape("app"))/recentlogs"))
        #expect(whole.headers["Sluice-Partial"].isEmpty)
        try await z2.emit(app: "app", lines: ["z2 after"])
        #expect(await received.wait { seen in
            seen.count - seen.notices.count >= 2
        })
        #expect(received.envelopes.filter { !$0.isNotice }.map(\.text) == ["z1 during", "z2 after"])
        await tail.close()
    }
}
