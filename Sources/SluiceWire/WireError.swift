/// A violation of the wire format. The connection that sent it is closed with
/// `message` as the logged reason; nothing else is affected.
public struct WireError: Error, Hashable, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let unsupportedVersion = Code("unsupported_version")
        public static let unknownFrameType = Code("unknown_frame_type")
        public static let frameTooLarge = Code("frame_too_large")
        public static let malformedBatch = Code("malformed_batch")
        public static let malformedRequest = Code("malformed_request")
        public static let unexpectedFrame = Code("unexpected_frame")
        public static let truncatedFrame = Code("truncated_frame")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
