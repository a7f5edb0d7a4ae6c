import SluiceWire

/// An `http://HOST:PORT/path` URL, split for a NIO client.
public struct HTTPURL: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var path: String

    public init(host: String, port: Int, path: String = "/") {
        self.host = host
        self.port = port
        self.path = path
    }

    public init(parsing text: String) throws(EndpointError) {
        var rest = Substring(text)
        if rest.hasPrefix("http://") {
            rest = rest.dropFirst(7)
        } else if rest.hasPrefix("ws://") {
            rest = rest.dropFirst(5)
        } else if rest.contains("://") {
            throw EndpointError(text: text, reason: "only http:// URLs are supported")
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = String(rest[..<slash])
        let endpoint: Endpoint
        if authority.contains(":") && !(authority.hasPrefix("[") && authority.hasSuffix("]")) {
            endpoint = try Endpoint(parsing: authority)
        } else {
            endpoint = Endpoint(host: authority.trimmingCharacters(in: ["[", "]"]), port: 80)
        }
        self.init(host: endpoint.host, port: endpoint.port, path: slash == rest.endIndex ? "/" : String(rest[slash...]))
    }

    /// The same server with another path.
    public func with(path: String) -> HTTPURL {
        HTTPURL(host: host, port: port, path: path)
    }

    public var hostHeader: String { Endpoint(host: host, port: port).description }
    public var description: String { "http://\(hostHeader)\(path)" }
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
