import Logging
import NIOConcurrencyHelpers
import SluiceTransport
import SluiceWire

/// A zone whose buffer servers DNS names: asks for them (`resolve`), puts
/// what it finds in the zone's link slots (`ServerDiscovery`), and has the
/// zone's routing follow. Its controller calls it every `--dns-interval`
/// and soon after one of the zone's links fails (`check`).
final class ZoneDiscovery: Sendable {
    let zone: ZoneLinks
    let source: ServerSource
    private let resolver: DNSResolver
    /// The controller's own zone's ingress routing, for its own zone.
    private let router: IngressRouter?
    private let logger: Logger
    private let table: NIOLockedValueBox<ServerDiscovery>
    /// Each slot's server answered at the last check.
    private let wasUp: NIOLockedValueBox<[Bool]>

    init(zone: ZoneLinks, source: ServerSource, resolver: DNSResolver, router: IngressRouter?, logger: Logger) {
        self.zone = zone
        self.source = source
        self.resolver = resolver
        self.router = router
        self.logger = logger
        self.table = NIOLockedValueBox(ServerDiscovery(slots: zone.links.count))
        self.wasUp = NIOLockedValueBox(Array(repeating: false, count: zone.links.count))
    }

    /// Frees the slots of servers gone from DNS whose links are down now;
    /// true when a link that was up is down (time to ask DNS again).
    func check() -> Bool {
        let up = zone.links.map(\.isUp)
        let failed = wasUp.withLockedValue { was in
            defer { was = up }
            return zip(was, up).contains { $0 && !$1 }
        }
        let changes = table.withLockedValue { $0.releaseGone(isUp: { up[$0] }) }
        apply(changes)
        return failed
    }

    /// Asks DNS for the zone's servers and applies the answer. A failed or
    /// empty answer changes nothing (it is logged).
    func resolve() async {
        let found: [ServerDiscovery.Found]
        do {
            found = try await servers()
        } catch {
            logger.warning(
                "buffer servers not found by DNS; the zone keeps the ones it has",
                metadata: [LogKeys.zone: "\(zone.name)", "sluice.dns": "\(source)", LogKeys.reason: "\(error)"])
            return
        }
        if found.isEmpty {
            logger.warning(
                "DNS names no buffer server; the zone keeps the ones it has",
                metadata: [LogKeys.zone: "\(zone.name)", "sluice.dns": "\(source)"])
            return
        }
        let up = zone.links.map(\.isUp)
        let (changes, unplaced) = table.withLockedValue { $0.update(found, isUp: { up[$0] }) }
        if !unplaced.isEmpty {
            logger.warning(
                "more buffer servers in DNS than the zone has slots for; raise --dns-max-servers",
                metadata: [
                    LogKeys.zone: "\(zone.name)", LogKeys.count: "\(zone.links.count)",
                    LogKeys.server: "\(unplaced.map { "\($0.identity)" }.sorted().joined(separator: ","))",
                ])
        }
        apply(changes)
    }

    /// The servers DNS names now.
    func servers() async throws -> [ServerDiscovery.Found] {
        switch source {
        case .srv(let name):
            let answer = try await resolver.query(name, .srv)
            guard answer.rcode == 0 else { throw DNSError("\(name): \(Self.rcode(answer.rcode))") }
            var (found, unresolved) = ServerDiscovery.servers(fromSRV: answer)
            for (target, port) in unresolved {
                for address in try await addresses(of: target) {
                    found.append(.init(identity: Endpoint(host: target, port: port), dial: Endpoint(host: address, port: port)))
                    break
                }
            }
            return found
        case .addresses(let name, let port):
            return try await addresses(of: name).map {
                ServerDiscovery.Found(identity: Endpoint(host: $0, port: port), dial: Endpoint(host: $0, port: port))
            }
        }
    }

    /// A name's IPv4 addresses, else its IPv6 ones.
    private func addresses(of name: String) async throws -> [String] {
        for type in [DNSMessage.RecordType.a, .aaaa] {
            let answer = try await resolver.query(name, type)
            guard answer.rcode == 0 || answer.rcode == 3 else { throw DNSError("\(name): \(Self.rcode(answer.rcode))") }
            let addresses = ServerDiscovery.addresses(in: answer)
            if !addresses.isEmpty { return addresses }
        }
        return []
    }

    private static func rcode(_ code: UInt8) -> String {
        switch code {
        case 2: "the DNS server failed (SERVFAIL)"
        case 3: "no such name (NXDOMAIN)"
        case 5: "the DNS server refused (REFUSED)"
        default: "DNS error \(code)"
        }
    }

    private func apply(_ changes: [ServerDiscovery.Change]) {
        guard !changes.isEmpty else { return }
        var joined: [String] = []
        var left: [String] = []
        for change in changes {
            switch change {
            case .assign(let slot, let server):
                zone.links[slot].assign(server)
                joined.append("\(server.identity)")
            case .redial(let slot, let dial):
                zone.links[slot].redial(dial)
            case .release(let slot):
                left.append("\(zone.links[slot].endpoint)")
                zone.links[slot].release()
            }
        }
        guard !joined.isEmpty || !left.isEmpty else { return }
        // The ring follows once the slots do (a released slot's waiting
        // batches go on by the new ring: `release` runs on its loop after).
        zone.serversChanged()
        router?.serversChanged()
        let servers = table.withLockedValue { $0.servers.map { "\($0)" } }
        logger.notice(
            "buffer servers of the zone changed",
            metadata: [
                LogKeys.zone: "\(zone.name)", "sluice.dns": "\(source)",
                "sluice.servers": "\(servers.joined(separator: ","))",
                "sluice.joined": "\(joined.joined(separator: ","))", "sluice.left": "\(left.joined(separator: ","))",
            ])
    }
}
