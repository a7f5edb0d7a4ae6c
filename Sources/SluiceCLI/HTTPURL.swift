import SluiceWire

/// An `http://HOST:PORT/path` (or `https://`) URL, split for a NIO client.
public struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var path: String
    /// `https://`: TLS, the server's certificate checked.
    public var tls: Bool

    public init(host: String, port: Int, path: String = "/", tls: Bool = false) {
        self.host = host
        self.port = port
        self.path = path
        self.tls = tls
    }

    public init(parsing text: String) throws(EndpointError) {
        var rest = Substring(text)
        var tls = false
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("https://") {
            rest = rest.dropFirst(8)
            tls = true
        } else if rest.hasPrefix("ws://") {
            rest = rest.dropFirst(5)
        } else if rest.contains("://") {
            throw EndpointError(text: text, reason: "only http:// and https:// URLs are supported")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        let endpoint: Endpoint
        if authority.contains(":") && !(authority.hasPrefix("[") && authority.hasSuffix("]")) {
            endpoint = try Endpoint(parsing: authority)
        } else {
            endpoint = Endpoint(host: authority.trimmingCharacters(in: ["[", "]"]), port: tls ? 443 : 80)
        }
        self.init(
            host: endpoint.host, port: endpoint.port, path: slash == rest.endIndex ? "/" : String(rest[slash...]), tls: tls)
    }

    /// The same server with another path.
    public func with(path: String) -> HTTPURL {
        HTTPURL(host: host, port: port, path: path, tls: tls)
    }

    public var hostHeader: String { Endpoint(host: host, port: port).description }
    public var description: String { "\(tls ? "https" : "http")://\(hostHeader)\(path)" }
}

extension String {
    fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

/// Percent-encodes an app id for a URL path segment.
public func pathEscape(_ segment: String) -> String {
    URIQuery.percentEncode(segment)
}
