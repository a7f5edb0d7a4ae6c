/// A `HOST:PORT` pair as given on a command line (`[::1]:PORT` for IPv6).
public struct Endpoint: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init?(_ text: String) {
        try? self.init(parsing: text)
    }

    public init(parsing text: String) throws(EndpointError) {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"),
                text[text.index(after: close)...].hasPrefix(":")
            else { throw EndpointError(text: text, reason: "expected [IPv6]:PORT") }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                throw EndpointError(text: text, reason: "expected HOST:PORT")
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        if host.contains(":") && !text.hasPrefix("[") {
            throw EndpointError(text: text, reason: "write an IPv6 address in brackets: [ADDRESS]:PORT")
        }
        if host.isEmpty { host = "127.0.0.1" }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw EndpointError(text: text, reason: "the port must be a number from 0 to 65535")
        }
        self.init(host: String(host), port: port)
    }

    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

public struct EndpointError: Error, CustomStringConvertible, Sendable {
    public var text: String
    public var reason: String
    public init(text: String, reason: String) {
        self.text = text
        self.reason = reason
    }

    public var description: String { "'\(text)' is not an address: \(reason)" }
}
