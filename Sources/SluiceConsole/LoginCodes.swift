import FoundationEssentials

/// The one-time sign-in links `sluice ui` prints: the CLI, holding a token,
/// asks the controller for a code; the page, opened at `…/#login=CODE`,
/// trades the code for the token once. The token never appears in a URL
/// (nor in the browser's history), and a link read later from a terminal's
/// scrollback or a shell history signs no one in. Plain value: the caller
/// passes the time and the random source, and holds it under a lock.
public struct LoginCodes: Sendable {
    /// How long a code may wait to be used (nanoseconds).
    public static let lifetime: Int64 = 60 * 1_000_000_000
    /// Codes held at most; issuing one more forgets the oldest.
    public static let limit = 1024

    private var codes: [String: (token: String, expires: Int64)] = [:]

    public init() {}

    /// Codes waiting to be used.
    public var count: Int { codes.count }

    /// A new code for `token`: 32 random bytes, base64url.
    public mutating func issue(token: String, now: Int64, using random: inout some RandomNumberGenerator) -> String {
        codes = codes.filter { $0.value.expires > now }
        while codes.count >= Self.limit, let oldest = codes.min(by: { $0.value.expires < $1.value.expires }) {
            codes[oldest.key] = nil
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for _ in 0..<4 {
            let word = random.next() as UInt64
            for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
        }
        let code = Self.base64URL(bytes)
        codes[code] = (token, now + Self.lifetime)
        return code
    }

    /// The token of `code` if it is known and not expired; either way the
    /// code is used up.
    public mutating func redeem(_ code: String, now: Int64) -> String? {
        guard let entry = codes.removeValue(forKey: code), entry.expires > now else { return nil }
        return entry.token
    }

    /// Base64 with the URL's alphabet (RFC 4648 §5), without padding.
    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
    }
}
