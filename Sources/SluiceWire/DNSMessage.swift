/// DNS messages as a controller asks for its buffer servers (RFC 1035, SRV
/// from RFC 2782, EDNS0 from RFC 6891): a query built, an answer read. Plain
/// bytes in and out; `DNSResolver` sends them.
public enum DNSMessage {
    public enum RecordType: UInt16, Sendable {
        case a = 1
        case cname = 5
        case aaaa = 28
        case srv = 33
        case opt = 41
    }

    public enum Data: Equatable, Sendable {
        /// An IPv4 or IPv6 address, as text.
        case address(String)
        case srv(priority: UInt16, weight: UInt16, port: UInt16, target: String)
        case cname(String)
        case other(type: UInt16)
    }

    public struct Record: Equatable, Sendable {
        /// Lower case, without the final dot.
        public var name: String
        public var ttl: UInt32
        public var data: Data

        public init(name: String, ttl: UInt32, data: Data) {
            self.name = name
            self.ttl = ttl
            self.data = data
        }
    }

    public struct Answer: Equatable, Sendable {
        public var id: UInt16
        /// 0: no error; 3: no such name.
        public var rcode: UInt8
        /// The answer did not fit (TC): ask again over TCP.
        public var truncated: Bool
        /// The answer section's records.
        public var answers: [Record]
        /// The additional section's (a SRV answer's targets' addresses).
        public var additional: [Record]

        public init(id: UInt16, rcode: UInt8, truncated: Bool, answers: [Record], additional: [Record]) {
            self.id = id
            self.rcode = rcode
            self.truncated = truncated
            self.answers = answers
            self.additional = additional
        }
    }

    /// The largest UDP answer a query says it takes (EDNS0).
    public static let udpPayload: UInt16 = 4096

    /// A query for `name`'s records of `type`, recursion desired, with an
    /// EDNS0 record offering 4096-byte UDP answers.
    public static func query(id: UInt16, name: String, type: RecordType) throws(DNSError) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32 + name.utf8.count)
        append16(id, to: &bytes)
        append16(0x0100, to: &bytes)  // RD
        append16(1, to: &bytes)  // QDCOUNT
        append16(0, to: &bytes)
        append16(0, to: &bytes)
        append16(1, to: &bytes)  // ARCOUNT: the OPT record
        try appendName(name, to: &bytes)
        append16(type.rawValue, to: &bytes)
        append16(1, to: &bytes)  // IN
        // OPT: root name, type 41, class = UDP payload size, TTL 0, no data.
        bytes.append(0)
        append16(RecordType.opt.rawValue, to: &bytes)
        append16(udpPayload, to: &bytes)
        bytes.append(contentsOf: [0, 0, 0, 0, 0, 0])
        return bytes
    }

    /// Reads an answer; throws on anything malformed (a truncated record,
    /// a name pointer that loops or points forward, a label too long).
    public static func parse(_ bytes: [UInt8]) throws(DNSError) -> Answer {
        var reader = Reader(bytes: bytes)
        let id = try reader.read16()
        let flags = try reader.read16()
        guard flags & 0x8000 != 0 else { throw DNSError("not an answer (QR is 0)") }
        let questions = Int(try reader.read16())
        let answerCount = Int(try reader.read16())
        let authorityCount = Int(try reader.read16())
        let additionalCount = Int(try reader.read16())
        for _ in 0..<questions {
            _ = try reader.readName()
            try reader.skip(4)
        }
        var answers: [Record] = []
        for _ in 0..<answerCount { if let record = try reader.readRecord() { answers.append(record) } }
        for _ in 0..<authorityCount { _ = try reader.readRecord() }
        var additional: [Record] = []
        for _ in 0..<additionalCount { if let record = try reader.readRecord() { additional.append(record) } }
        return Answer(
            id: id, rcode: UInt8(flags & 0x000F), truncated: flags & 0x0200 != 0, answers: answers, additional: additional)
    }

    private static func append16(_ value: UInt16, to bytes: inout [UInt8]) {
        bytes.append(UInt8(value >> 8))
        bytes.append(UInt8(value & 0xFF))
    }

    private static func appendName(_ name: String, to bytes: inout [UInt8]) throws(DNSError) {
        let trimmed = name.hasSuffix(".") ? String(name.dropLast()) : name
        guard !trimmed.isEmpty, trimmed.utf8.count <= 253 else { throw DNSError("'\(name)' is not a DNS name") }
        for label in trimmed.split(separator: ".", omittingEmptySubsequences: false) {
            let utf8 = Array(label.utf8)
            guard !utf8.isEmpty, utf8.count <= 63 else { throw DNSError("'\(name)' is not a DNS name: a label is empty or over 63 bytes") }
            bytes.append(UInt8(utf8.count))
            bytes.append(contentsOf: utf8)
        }
        bytes.append(0)
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func read8() throws(DNSError) -> UInt8 {
            guard offset < bytes.count else { throw DNSError("the message ends early") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func read16() throws(DNSError) -> UInt16 {
            UInt16(try read8()) << 8 | UInt16(try read8())
        }

        mutating func read32() throws(DNSError) -> UInt32 {
            UInt32(try read16()) << 16 | UInt32(try read16())
        }

        mutating func skip(_ count: Int) throws(DNSError) {
            guard count <= bytes.count - offset else { throw DNSError("the message ends early") }
            offset += count
        }

        /// A name at the reader's offset, following compression pointers,
        /// each of which must point before the name that uses it.
        mutating func readName() throws(DNSError) -> String {
            var labels: [String] = []
            var position = offset
            var jumped = false
            var length = 0
            var lowest = offset
            while true {
                guard position < bytes.count else { throw DNSError("a name runs past the message") }
                let byte = bytes[position]
                switch byte & 0xC0 {
                case 0x00:
                    if byte == 0 {
                        if !jumped { offset = position + 1 }
                        return labels.joined(separator: ".")
                    }
                    let count = Int(byte)
                    guard position + 1 + count <= bytes.count else { throw DNSError("a label runs past the message") }
                    length += count + 1
                    guard length <= 255 else { throw DNSError("a name is longer than 255 bytes") }
                    labels.append(String(decoding: bytes[(position + 1)..<(position + 1 + count)], as: UTF8.self).lowercased())
                    position += 1 + count
                case 0xC0:
                    guard position + 1 < bytes.count else { throw DNSError("a name pointer runs past the message") }
                    let target = Int(byte & 0x3F) << 8 | Int(bytes[position + 1])
                    // Only backwards, and each time further back: no loop.
                    guard target < lowest else { throw DNSError("a name pointer does not point back") }
                    if !jumped { offset = position + 2 }
                    jumped = true
                    lowest = target
                    position = target
                default:
                    throw DNSError("a label of an unknown kind (0x\(String(byte, radix: 16)))")
                }
            }
        }

        /// A resource record; nil for an OPT record.
        mutating func readRecord() throws(DNSError) -> Record? {
            let name = try readName()
            let type = try read16()
            _ = try read16()  // class
            let ttl = try read32()
            let length = Int(try read16())
            guard length <= bytes.count - offset else { throw DNSError("a record's data runs past the message") }
            let end = offset + length
            defer { offset = end }
            let data: Data
            switch RecordType(rawValue: type) {
            case .a:
                guard length == 4 else { throw DNSError("an A record of \(length) bytes") }
                data = .address(bytes[offset..<end].map(String.init).joined(separator: "."))
            case .aaaa:
                guard length == 16 else { throw DNSError("an AAAA record of \(length) bytes") }
                data = .address(Self.ipv6(bytes[offset..<end]))
            case .srv:
                guard length >= 7 else { throw DNSError("an SRV record of \(length) bytes") }
                let priority = try read16()
                let weight = try read16()
                let port = try read16()
                let target = try readName()
                guard offset <= end else { throw DNSError("an SRV record's target runs past its data") }
                data = .srv(priority: priority, weight: weight, port: port, target: target)
            case .cname:
                let target = try readName()
                guard offset <= end else { throw DNSError("a CNAME record's name runs past its data") }
                data = .cname(target)
            case .opt:
                return nil
            case nil:
                data = .other(type: type)
            }
            return Record(name: name, ttl: ttl, data: data)
        }

        static func ipv6(_ bytes: ArraySlice<UInt8>) -> String {
            let groups = stride(from: bytes.startIndex, to: bytes.endIndex, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            return groups.joined(separator: ":")
        }
    }
}

public struct DNSError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
