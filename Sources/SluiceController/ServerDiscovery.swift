import SluiceWire

/// A zone's buffer servers as DNS names them, kept in a fixed set of link
/// slots: a server that appears takes a free slot (and joins the hash
/// ring), one that disappears gives its slot back once its link is down
/// (one that still answers stays until it stops: a server taken out of DNS
/// as it leaves hands its history over first, as any leaving server). An
/// answer with no server, or none at all, changes nothing. Plain values:
/// the controller carries out the changes (`ZoneDiscovery`).
struct ServerDiscovery: Sendable {
    /// A server found: its name in the ring (the SRV target and port, so a
    /// restarted pod keeps its apps; an address for `dns://`), and where
    /// to connect.
    struct Found: Hashable, Sendable {
        var identity: Endpoint
        var dial: Endpoint
    }

    /// The servers an SRV answer names, with the addresses its additional
    /// section gives; targets without one are in `unresolved`.
    static func servers(fromSRV answer: DNSMessage.Answer) -> (found: [Found], unresolved: [(target: String, port: Int)]) {
        var addresses: [String: [String]] = [:]
        for record in answer.additional + answer.answers {
            if case .address(let address) = record.data { addresses[record.name, default: []].append(address) }
        }
        var found: [Found] = []
        var unresolved: [(String, Int)] = []
        for record in answer.answers {
            guard case .srv(_, _, let port, let target) = record.data, port > 0, !target.isEmpty else { continue }
            if let address = addresses[target]?.first {
                found.append(Found(identity: Endpoint(host: target, port: Int(port)), dial: Endpoint(host: address, port: Int(port))))
            } else {
                unresolved.append((target, Int(port)))
            }
        }
        return (found, unresolved)
    }

    /// The addresses an A or AAAA answer gives.
    static func addresses(in answer: DNSMessage.Answer) -> [String] {
        answer.answers.compactMap { record in
            if case .address(let address) = record.data { return address }
            return nil
        }
    }

    struct Slot: Equatable, Sendable {
        var server: Found
        /// In the latest answer.
        var listed: Bool
    }

    enum Change: Equatable, Sendable {
        case assign(slot: Int, Found)
        /// The same server at a new address, for its next connection.
        case redial(slot: Int, Endpoint)
        case release(slot: Int)
    }

    private(set) var slots: [Slot?]

    init(slots: Int) {
        precondition((1...64).contains(slots))
        self.slots = Array(repeating: nil, count: slots)
    }

    /// The servers in the slots now.
    var servers: [Endpoint] { slots.compactMap { $0?.server.identity } }

    /// Takes a new answer: `isUp(slot)` says whether a slot's server answers
    /// now. Returns the changes to make, and the servers no slot was free
    /// for.
    mutating func update(_ answer: [Found], isUp: (Int) -> Bool) -> (changes: [Change], unplaced: [Found]) {
        guard !answer.isEmpty else { return ([], []) }
        var byIdentity: [Endpoint: Found] = [:]
        for server in answer where byIdentity[server.identity] == nil { byIdentity[server.identity] = server }
        var changes: [Change] = []
        var placed = Set<Endpoint>()
        for index in slots.indices {
            guard var slot = slots[index] else { continue }
            if let now = byIdentity[slot.server.identity] {
                placed.insert(now.identity)
                slot.listed = true
                if now.dial != slot.server.dial {
                    slot.server.dial = now.dial
                    changes.append(.redial(slot: index, now.dial))
                }
                slots[index] = slot
            } else {
                slot.listed = false
                slots[index] = slot
            }
        }
        // A slot freed now is not taken again in the same answer: its link
        // may still be closing.
        var free = slots.indices.filter { slots[$0] == nil }
        changes += releaseGone(isUp: isUp)
        var unplaced: [Found] = []
        for server in byIdentity.values.sorted(by: { "\($0.identity)" < "\($1.identity)" }) where !placed.contains(server.identity) {
            guard !free.isEmpty else {
                unplaced.append(server)
                continue
            }
            let slot = free.removeFirst()
            slots[slot] = Slot(server: server, listed: true)
            changes.append(.assign(slot: slot, server))
        }
        return (changes, unplaced)
    }

    /// Frees the slots of servers no longer listed whose links are down.
    mutating func releaseGone(isUp: (Int) -> Bool) -> [Change] {
        var changes: [Change] = []
        for index in slots.indices {
            guard let slot = slots[index], !slot.listed, !isUp(index) else { continue }
            slots[index] = nil
            changes.append(.release(slot: index))
        }
        return changes
    }
}

/// Where a zone's buffer servers are named: `--servers ZONE=dns+srv://NAME`
/// or `ZONE=dns://NAME:PORT` (`ServerDiscovery`).
public enum ServerSource: Equatable, Sendable, CustomStringConvertible {
    /// `dns+srv://NAME`: each SRV record's target and port is a server.
    case srv(String)
    /// `dns://NAME:PORT`: each A or AAAA address is a server, at PORT.
    case addresses(String, port: Int)

    /// A `--servers` value's DNS form, or nil for a list of addresses.
    public static func parse(_ text: String) throws(DNSError) -> ServerSource? {
        if text.hasPrefix("dns+srv://") {
            let name = String(text.dropFirst("dns+srv://".count))
            guard !name.isEmpty, !name.contains(":"), !name.contains("/"), !name.contains(",") else {
                throw DNSError("'\(text)': write dns+srv://NAME (the SRV records give each server's port)")
            }
            return .srv(name)
        }
        if text.hasPrefix("dns://") {
            let rest = String(text.dropFirst("dns://".count))
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
                (1...65535).contains(port), colon != rest.startIndex, !rest[..<colon].contains(",")
            else {
                throw DNSError("'\(text)': write dns://NAME:PORT (each of NAME's addresses is a server at PORT)")
            }
            return .addresses(String(rest[..<colon]), port: port)
        }
        return nil
    }

    public var description: String {
        switch self {
        case .srv(let name): "dns+srv://\(name)"
        case .addresses(let name, let port): "dns://\(name):\(port)"
        }
    }
}
