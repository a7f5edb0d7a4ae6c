import SluiceWire
import Testing

@testable import SluiceController

/// A zone's servers found by DNS, kept in link slots.
struct ServerDiscoveryTests {
    static func found(_ name: String, _ address: String, port: Int = 9001) -> ServerDiscovery.Found {
        .init(identity: Endpoint(host: name, port: port), dial: Endpoint(host: address, port: port))
    }

    let s1 = found("s1.sluice.test", "10.0.0.1")
    let s2 = found("s2.sluice.test", "10.0.0.2")
    let s3 = found("s3.sluice.test", "10.0.0.3")

    @Test func serversTakeFreeSlotsAndKeepThem() {
        var discovery = ServerDiscovery(slots: 3)
        let first = discovery.update([s2, s1], isUp: { _ in false })
        #expect(first.changes == [.assign(slot: 0, s1), .assign(slot: 1, s2)])
        // The same answer again changes nothing; a new server takes the free slot.
        #expect(discovery.update([s1, s2], isUp: { _ in true }).changes.isEmpty)
        #expect(discovery.update([s1, s2, s3], isUp: { _ in true }).changes == [.assign(slot: 2, s3)])
        #expect(discovery.servers.map(\.host) == ["s1.sluice.test", "s2.sluice.test", "s3.sluice.test"])
    }

    @Test func aServerGoneFromDNSLeavesOnceItsLinkIsDown() {
        var discovery = ServerDiscovery(slots: 2)
        _ = discovery.update([s1, s2], isUp: { _ in true })
        // Still answering: it stays (a leaving server hands its history on first).
        #expect(discovery.update([s2], isUp: { _ in true }).changes.isEmpty)
        #expect(discovery.releaseGone(isUp: { _ in true }).isEmpty)
        #expect(discovery.releaseGone(isUp: { $0 != 0 }) == [.release(slot: 0)])
        #expect(discovery.servers == [s2.identity])
        // Listed again before its link went down: it simply stays.
        var back = ServerDiscovery(slots: 2)
        _ = back.update([s1, s2], isUp: { _ in true })
        _ = back.update([s2], isUp: { _ in true })
        _ = back.update([s1, s2], isUp: { _ in true })
        #expect(back.releaseGone(isUp: { _ in false }).isEmpty)
    }

    @Test func aSlotFreedIsNotTakenInTheSameAnswerAndFullSlotsSaySo() {
        var discovery = ServerDiscovery(slots: 1)
        _ = discovery.update([s1], isUp: { _ in false })
        let next = discovery.update([s2], isUp: { _ in false })
        #expect(next.changes == [.release(slot: 0)])
        #expect(next.unplaced == [s2])
        #expect(discovery.update([s2], isUp: { _ in false }).changes == [.assign(slot: 0, s2)])
    }

    @Test func anEmptyAnswerChangesNothingAndANewAddressIsDialled() {
        var discovery = ServerDiscovery(slots: 2)
        _ = discovery.update([s1], isUp: { _ in false })
        #expect(discovery.update([], isUp: { _ in false }).changes.isEmpty)
        #expect(discovery.servers == [s1.identity])
        let moved = Self.found("s1.sluice.test", "10.0.9.9")
        #expect(discovery.update([moved], isUp: { _ in true }).changes == [.redial(slot: 0, moved.dial)])
    }

    @Test func sourcesAreParsed() throws {
        #expect(try ServerSource.parse("dns+srv://_sluice._tcp.sluice-server-z1.ns.svc.cluster.local") == .srv("_sluice._tcp.sluice-server-z1.ns.svc.cluster.local"))
        #expect(try ServerSource.parse("dns://servers.internal:9001") == .addresses("servers.internal", port: 9001))
        #expect(try ServerSource.parse("10.0.0.1:9001") == nil)
        #expect(throws: DNSError.self) { try ServerSource.parse("dns://servers.internal") }
        #expect(throws: DNSError.self) { try ServerSource.parse("dns+srv://name:53") }
        #expect(throws: DNSError.self) { try ServerSource.parse("dns+srv://") }
    }

    @Test func anSRVAnswerGivesServersWithTheirAddresses() {
        let answer = DNSMessage.Answer(
            id: 1, rcode: 0, truncated: false,
            answers: [
                .init(name: "_s._tcp.z", ttl: 5, data: .srv(priority: 0, weight: 0, port: 9001, target: "s1.z")),
                .init(name: "_s._tcp.z", ttl: 5, data: .srv(priority: 0, weight: 0, port: 9002, target: "s2.z")),
            ],
            additional: [.init(name: "s1.z", ttl: 5, data: .address("10.0.0.1"))])
        let (found, unresolved) = ServerDiscovery.servers(fromSRV: answer)
        #expect(found == [Self.found("s1.z", "10.0.0.1")])
        #expect(unresolved.map { $0.target } == ["s2.z"] && unresolved.map { $0.port } == [9002])
    }
}
