import SluiceWire
import Testing

@testable import SluiceCLI
@testable import SluiceController

/// Values given on command lines: sizes, addresses, URLs.
@Suite struct ValueParsingTests {
    // MARK: ByteSize

    static let byteSizes: [(String, Int?)] = [
        ("4194304", 4_194_304),
        ("0", 0),
        ("64KiB", 64 * 1024),
        ("64kib", 64 * 1024),
        ("64k", 64 * 1024),
        ("64KB", 64 * 1024),
        ("256MiB", 256 * 1024 * 1024),
        ("1GiB", 1 << 30),
        ("1g", 1 << 30),
        ("10mb", 10 * 1024 * 1024),
        ("10MB", 10 * 1024 * 1024),
        ("512b", 512),
        ("8589934591GiB", (8_589_934_591 as Int) << 30),
        ("9223372036854775807", Int.max),
        ("", nil),
        ("12XB", nil),
        ("-1", nil),
        ("+1", nil),
        ("KiB", nil),
        ("1.5GiB", nil),
        ("64 KiB", nil),
        (" 64", nil),
        ("64KiB ", nil),
        ("1TiB", nil),
        ("9223372036854775808", nil),
        ("8589934592GiB", nil),
        ("99999999999999999999", nil),
        ("8796093022208MiB", nil),
    ]

    @Test(arguments: byteSizes)
    func byteSize(text: String, expected: Int?) {
        #expect(ByteSize.parse(text) == expected, "'\(text)'")
    }

    // MARK: Endpoint

    static let endpoints: [(String, String, Int)] = [
        ("127.0.0.1:80", "127.0.0.1", 80),
        ("localhost:8080", "localhost", 8080),
        (":0", "127.0.0.1", 0),
        (":9000", "127.0.0.1", 9000),
        ("h:65535", "h", 65535),
        ("[::1]:9000", "::1", 9000),
        ("[fe80::1%eth0]:1", "fe80::1%eth0", 1),
        ("[]:5", "127.0.0.1", 5),
    ]

    @Test(arguments: endpoints)
    func endpointParses(text: String, host: String, port: Int) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint == Endpoint(host: host, port: port))
        #expect(Endpoint(text) == endpoint)
    }

    @Test(arguments: [
        "host", "", ":", "h:", "h:70000", "h:65536", "h:-1", "h:port", "h:80 ", "[::1]", "[::1]:", "[::1]9000",
        "[::1:9000", "127.0.0.1:99999999999999999999",
    ])
    func endpointRejects(text: String) {
        let error = #expect(throws: EndpointError.self) { try Endpoint(parsing: text) }
        #expect(error?.text == text)
        #expect(error.map { $0.description.contains("is not an address") } == true)
        #expect(Endpoint(text) == nil)
    }

    @Test(arguments: ["127.0.0.1:80", "[::1]:9000", "example.com:0", "[2001:db8::7]:65535"])
    func endpointDescriptionRoundTrips(text: String) throws {
        let endpoint = try Endpoint(parsing: text)
        #expect(endpoint.description == text)
        #expect(try Endpoint(parsing: endpoint.description) == endpoint)
    }

    @Test func endpointDescriptionBracketsIPv6() {
        #expect(Endpoint(host: "::1", port: 7).description == "[::1]:7")
        #expect(Endpoint(host: "10.0.0.1", port: 7).description == "10.0.0.1:7")
    }

    // MARK: HTTPURL

    static let urls: [(String, HTTPURL)] = [
        ("http://127.0.0.1:8080", HTTPURL(host: "127.0.0.1", port: 8080, path: "/")),
        ("http://127.0.0.1:8080/", HTTPURL(host: "127.0.0.1", port: 8080, path: "/")),
        ("http://127.0.0.1:8080/apps/x/stream?format=json", HTTPURL(host: "127.0.0.1", port: 8080, path: "/apps/x/stream?format=json")),
        ("ws://10.0.0.2:9000/apps/x/stream", HTTPURL(host: "10.0.0.2", port: 9000, path: "/apps/x/stream")),
        ("http://example.com", HTTPURL(host: "example.com", port: 80, path: "/")),
        ("http://example.com/metrics", HTTPURL(host: "example.com", port: 80, path: "/metrics")),
        ("127.0.0.1:8080/healthz", HTTPURL(host: "127.0.0.1", port: 8080, path: "/healthz")),
        ("http://[::1]:8080/x", HTTPURL(host: "::1", port: 8080, path: "/x")),
        ("http://[::1]", HTTPURL(host: "::1", port: 80, path: "/")),
        ("http://:8080", HTTPURL(host: "127.0.0.1", port: 8080, path: "/")),
        ("https://cc.example/internal/v4/log_access/{app}", HTTPURL(host: "cc.example", port: 443, path: "/internal/v4/log_access/{app}", tls: true)),
        ("https://127.0.0.1:8443", HTTPURL(host: "127.0.0.1", port: 8443, path: "/", tls: true)),
    ]

    @Test(arguments: urls)
    func httpURLParses(text: String, expected: HTTPURL) throws {
        #expect(try HTTPURL(parsing: text) == expected)
    }

    @Test(arguments: ["wss://h:1/", "ftp://h/", "HTTP://h:80", "http://h:70000/", "http://h:x/"])
    func httpURLRejects(text: String) {
        #expect(throws: EndpointError.self) { try HTTPURL(parsing: text) }
    }

    @Test func httpURLDescriptionAndHostHeader() throws {
        let url = try HTTPURL(parsing: "http://127.0.0.1:8080/apps/x")
        #expect(url.description == "http://127.0.0.1:8080/apps/x")
        #expect(url.hostHeader == "127.0.0.1:8080")
        #expect(try HTTPURL(parsing: url.description) == url)
        #expect(url.with(path: "/healthz") == HTTPURL(host: "127.0.0.1", port: 8080, path: "/healthz"))
        let secure = try HTTPURL(parsing: "https://cc.example:8443/x")
        #expect(secure.description == "https://cc.example:8443/x")
        #expect(secure.with(path: "/y").tls)

        let v6 = try HTTPURL(parsing: "http://[::1]:9/")
        #expect(v6.hostHeader == "[::1]:9")
        #expect(v6.description == "http://[::1]:9/")
        #expect(try HTTPURL(parsing: v6.description) == v6)
    }

    // MARK: pathEscape

    static let escapes: [(String, String)] = [
        ("abcXYZ019-_.~", "abcXYZ019-_.~"),
        ("my app", "my%20app"),
        ("a/b", "a%2Fb"),
        ("100%", "100%25"),
        ("a+b", "a%2Bb"),
        ("q?x=1&y#z", "q%3Fx%3D1%26y%23z"),
        ("é", "%C3%A9"),
        ("\u{0}\n", "%00%0A"),
        ("", ""),
    ]

    @Test(arguments: escapes)
    func pathEscapes(raw: String, escaped: String) {
        #expect(pathEscape(raw) == escaped)
    }

    /// What the CLI escapes, the controller decodes back to the same id.
    @Test(arguments: ["plain", "my app", "ünïcødé 日本", "a+b~c.d_e-f", "50%off", "🚀", "x?y#z&w=v"])
    func pathEscapeRoundTripsThroughTheController(app: String) {
        let escaped = pathEscape(app)
        #expect(escaped.utf8.allSatisfy { $0 < 0x80 && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "?") })
        #expect(URIQuery.percentDecode(Substring(escaped)) == app)
        #expect(APIRoute.parse(method: "GET", uri: "/apps/\(escaped)/stream") == .success(.stream(app: app, json: false)))
    }

    @Test func agentControllerListPrefersItsOwnZone() throws {
        let list = try SluiceConfig.controllers("z2=127.0.2.1:8090,z1=127.0.1.1:8090,127.0.9.9:8090,z1=127.0.1.2:8090", preferring: "z1")
        #expect(list.map(\.description) == ["127.0.1.1:8090", "127.0.9.9:8090", "127.0.1.2:8090", "127.0.2.1:8090"])
        #expect(throws: EndpointError.self) { try SluiceConfig.controllers("z1=nonsense", preferring: "z1") }
    }
}
