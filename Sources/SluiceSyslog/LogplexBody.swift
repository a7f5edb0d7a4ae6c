/// A logplex-1 HTTP body, as log-shuttle and Logplex drains send it:
/// octet-counted RFC 5424 messages (RFC 6587 framing) and nothing else,
/// with the count in `Logplex-Msg-Count`. A body is checked whole before
/// any message in it is taken, so a sender that retries after a 400 never
/// duplicates lines.
public enum LogplexBody {
    public static let contentType = "application/logplex-1"

    /// Why a body was refused: an error code for the JSON answer and words.
    public struct Refusal: Error, Hashable, Sendable, CustomStringConvertible {
        public var code: String
        public var message: String
        public var description: String { "\(code): \(message)" }
    }

    /// The byte range of every message in `body`; `declaredCount` is the
    /// `Logplex-Msg-Count` header, if sent, which must match.
    public static func messages(
        in body: UnsafeRawBufferPointer, declaredCount: String?, maxMessageBytes: Int
    ) throws(Refusal) -> [Range<Int>] {
        let frames: [Range<Int>]
        do {
            frames = try OctetCounting.frames(in: body, maxMessageBytes: maxMessageBytes)
        } catch {
            throw Refusal(code: "bad_frame", message: error.description)
        }
        if let declaredCount, Int(declaredCount) != frames.count {
            throw Refusal(
                code: "bad_count",
                message: "Logplex-Msg-Count says \(declaredCount.prefix(32)) but the body holds \(frames.count) messages")
        }
        return frames
    }
}
