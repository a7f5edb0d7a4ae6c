import SluiceWire

/// A DNS server's answer, as a controller that finds its buffer servers by
/// DNS reads it (`DNSMessage.parse`): whatever the bytes, an answer or an
/// error, and every name in an answer could be asked for again.
enum DNSTarget: FuzzTarget {
    static let name = "dns"

    static func run(_ input: UnsafeRawBufferPointer) {
        guard let answer = try? DNSMessage.parse(Array(input)) else { return }
        for record in answer.answers + answer.additional {
            guard record.name.utf8.count <= 255 else { fatalError("a name of \(record.name.utf8.count) bytes") }
            if case .srv(_, _, _, let target) = record.data, target.utf8.count > 255 {
                fatalError("an SRV target of \(target.utf8.count) bytes")
            }
        }
    }
}
