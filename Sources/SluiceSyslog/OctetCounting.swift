/// RFC 6587 octet counting, `MSG-LEN SP SYSLOG-MSG`, as syslog over TCP and
/// logplex-1 HTTP bodies (log-shuttle, Logplex drains) frame messages.
public enum OctetCounting {
    public struct Malformed: Error, Hashable, Sendable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "octet-counted frame at byte \(offset): \(reason)" }
    }

    /// The byte ranges of every message in `body`, which must hold whole
    /// frames and nothing else.
    public static func frames(in body: UnsafeRawBufferPointer, maxMessageBytes: Int) throws(Malformed) -> [Range<Int>] {
        var frames: [Range<Int>] = []
        var at = 0
        while at < body.count {
            let start = at
            var length = 0
            while at < body.count, body[at] >= 0x30, body[at] <= 0x39, at - start < 10 {
                length = length * 10 + Int(body[at] - 0x30)
                at += 1
            }
            guard at > start, at < body.count, body[at] == 0x20 else {
                throw Malformed(offset: start, reason: "expected a length, a space, then the message")
            }
            at += 1
            guard length <= maxMessageBytes else {
                throw Malformed(offset: start, reason: "a message of \(length) bytes is over the limit of \(maxMessageBytes)")
            }
            guard body.count - at >= length else {
                throw Malformed(offset: start, reason: "the length \(length) runs past the end of the body")
            }
            frames.append(at..<(at + length))
            at += length
        }
        return frames
    }
}
