import SluiceWire

/// A drain's destination as users write it:
///
///     syslog://host:514            TCP, RFC 5424 with RFC 6587 octet counting
///     syslog-tls://host:6514       the same over TLS (?ca=PATH, ?skip-verify=true)
///     syslog-udp://host:514        one message per datagram
///     https://user:pass@host/path  batched logplex-1 POSTs
///
/// Every scheme takes `?hostname=NAME` (the HOSTNAME written in each line).
/// A syslog URL takes no other query option; an https URL keeps the other
/// parameters of its query for the collector. Credentials (user
/// information, and query values whose names speak of tokens, keys,
/// secrets or passwords) never appear in `redacted`.
public struct DrainURL: Hashable, Sendable, CustomStringConvertible {
    public enum Scheme: String, Hashable, Sendable, CaseIterable {
        case syslog
        case syslogTLS = "syslog-tls"
        case syslogUDP = "syslog-udp"
        case https

        public var defaultPort: Int {
            switch self {
            case .syslog, .syslogUDP: 514
            case .syslogTLS: 6514
            case .https: 443
            }
        }
    }

    public var scheme: Scheme
    public var host: String
    public var port: Int
    /// The user information (`user:password`), if any: only ever sent to the
    /// drain itself.
    public var userInfo: String?
    /// For https: the path, and the query without Sluice's own options.
    public var path: String
    public var query: [(name: String, value: String)] { queryItems.map { ($0.name, $0.value) } }
    /// `?hostname=`: the HOSTNAME of each line (default: the app id).
    public var hostname: String?
    /// `?ca=`: a PEM file of the CAs that may sign the drain's certificate.
    public var caPath: String?
    /// `?skip-verify=true`: the drain's certificate is not checked (warned about).
    public var skipVerify: Bool

    private var queryItems: [QueryItem]

    private struct QueryItem: Hashable, Sendable {
        var name: String
        var value: String
    }

    public struct Invalid: Error, Hashable, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    public init(parsing text: String) throws(Invalid) {
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            throw Invalid(reason: "expected SCHEME://HOST[:PORT], with scheme \(Self.schemeList)")
        }
        let schemeText = parts[0].lowercased()
        guard let scheme = Scheme(rawValue: schemeText) else {
            throw Invalid(reason: "unknown scheme '\(schemeText)': use \(Self.schemeList)")
        }
        var rest = parts[1]
        // A password with a raw '/', '?' or '#' ends the authority early:
        // what follows must not be quoted back in a reason, which is shown.
        let mayHoldSecret = rest.contains("@")
        var queryText: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            queryText = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        if let hash = queryText.firstIndex(of: "#") { queryText = queryText[..<hash] }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[slash...]
            rest = rest[..<slash]
        }
        var userInfo: String?
        if let at = rest.lastIndex(of: "@") {
            userInfo = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        // HOST, [IPv6] or HOST:PORT.
        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw Invalid(reason: "an IPv6 host needs its closing ]") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw Invalid(reason: "unexpected text after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            host = rest
        }
        guard !host.isEmpty else { throw Invalid(reason: "the URL has no host") }
        guard host.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != "%" }) else {
            throw Invalid(
                reason: mayHoldSecret
                    ? "the host is not a host name or address (a '/', '?' or '#' in a password must be percent-encoded)"
                    : "the host '\(host)' is not a host name or address")
        }
        var port = scheme.defaultPort
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw Invalid(
                    reason: mayHoldSecret
                        ? "the port must be a number from 1 to 65535 (a '/', '?' or '#' in a password must be percent-encoded)"
                        : "the port must be a number from 1 to 65535, not '\(portText)'")
            }
            port = value
        }
        if scheme != .https && !(path.isEmpty || path == "/") {
            throw Invalid(reason: "a \(scheme.rawValue) URL has no path")
        }

        var hostname: String?
        var caPath: String?
        var skipVerify = false
        var kept: [QueryItem] = []
        for pair in queryText.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = URIQuery.percentDecode(parts[0], plusIsSpace: true),
                let value = URIQuery.percentDecode(parts.count > 1 ? parts[1] : "", plusIsSpace: true)
            else { throw Invalid(reason: "the query is not valid percent-encoded UTF-8") }
            switch name {
            case "hostname":
                guard !value.isEmpty, value.utf8.count <= 255, value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw Invalid(reason: "hostname must be 1 to 255 printable ASCII characters without spaces")
                }
                hostname = value
            case "ca":
                guard scheme == .syslogTLS || scheme == .https else {
                    throw Invalid(reason: "ca applies to syslog-tls and https drains only")
                }
                guard !value.isEmpty else { throw Invalid(reason: "ca names no file") }
                caPath = value
            case "skip-verify":
                guard scheme == .syslogTLS || scheme == .https else {
                    throw Invalid(reason: "skip-verify applies to syslog-tls and https drains only")
                }
                guard let flag = Bool(value) else { throw Invalid(reason: "skip-verify must be true or false") }
                skipVerify = flag
            default:
                guard scheme == .https else {
                    throw Invalid(reason: "unknown option '\(name)': a \(scheme.rawValue) drain takes hostname\(scheme == .syslogTLS ? ", ca and skip-verify" : "")")
                }
                kept.append(QueryItem(name: name, value: value))
            }
        }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        self.userInfo = userInfo
        self.path = scheme == .https ? (path.isEmpty ? "/" : String(path)) : ""
        self.hostname = hostname
        self.caPath = caPath
        self.skipVerify = skipVerify
        self.queryItems = kept
    }

    static let schemeList = Scheme.allCases.map(\.rawValue).joined(separator: ", ")

    /// The URL with its credentials replaced by `***`: what is logged, shown
    /// and returned.
    public var redacted: String {
        var text = "\(scheme.rawValue)://"
        if userInfo != nil { text += "***@" }
        text += host.contains(":") ? "[\(host)]" : host
        if port != scheme.defaultPort { text += ":\(port)" }
        text += path
        var options = queryItems.map { item in
            "\(item.name)=\(Self.isSecret(item.name) ? "***" : item.value)"
        }
        if let hostname { options.append("hostname=\(hostname)") }
        if let caPath { options.append("ca=\(caPath)") }
        if skipVerify { options.append("skip-verify=true") }
        if !options.isEmpty { text += "?" + options.joined(separator: "&") }
        return text
    }

    public var description: String { redacted }

    /// For https: the path and the collector's query, percent-encoded, as
    /// the request line carries them.
    public var requestTarget: String {
        guard !queryItems.isEmpty else { return path }
        return path + "?" + queryItems.map { "\(URIQuery.percentEncode($0.name))=\(URIQuery.percentEncode($0.value))" }
            .joined(separator: "&")
    }

    /// Whether a query parameter's name says its value is a credential.
    static func isSecret(_ name: String) -> Bool {
        let lowered = name.lowercased()
        return ["token", "key", "secret", "pass", "auth", "sig", "credential"].contains { lowered.contains($0) }
    }
}
