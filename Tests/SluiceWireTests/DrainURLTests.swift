import SluiceBindings
import SluiceDrain
import SluiceSyslog
import SluiceWire
import Testing

/// Drain URLs as users write them, and the reasons given for bad ones.
@Suite struct DrainURLTests {
    @Test func syslogSchemesAndDefaultPorts() throws {
        let tcp = try DrainURL(parsing: "syslog://logs.example.com:1514")
        #expect(tcp.scheme == .syslog)
        #expect(tcp.host == "logs.example.com")
        #expect(tcp.port == 1514)
        #expect(tcp.path == "")
        #expect(try DrainURL(parsing: "syslog://logs.example.com").port == 514)
        #expect(try DrainURL(parsing: "syslog-tls://logs.example.com").port == 6514)
        #expect(try DrainURL(parsing: "syslog-udp://127.0.0.1").port == 514)
        #expect(try DrainURL(parsing: "SYSLOG://h:1").scheme == .syslog)
        let v6 = try DrainURL(parsing: "syslog://[::1]:5140")
        #expect(v6.host == "::1")
        #expect(v6.port == 5140)
        #expect(v6.redacted == "syslog://[::1]:5140")
    }

    @Test func tlsOptions() throws {
        let url = try DrainURL(parsing: "syslog-tls://h:6514?ca=/etc/ca.pem&skip-verify=true&hostname=org.space.app")
        #expect(url.caPath == "/etc/ca.pem")
        #expect(url.skipVerify)
        #expect(url.hostname == "org.space.app")
        #expect(url.redacted == "syslog-tls://h?hostname=org.space.app&ca=/etc/ca.pem&skip-verify=true")
    }

    @Test func httpsKeepsItsPathAndQueryAndHidesCredentials() throws {
        let url = try DrainURL(parsing: "https://user:s3cret@collector.example.com/services/collector?token=abc&index=main&hostname=h1")
        #expect(url.scheme == .https)
        #expect(url.port == 443)
        #expect(url.userInfo == "user:s3cret")
        #expect(url.path == "/services/collector")
        #expect(url.query.map(\.name) == ["token", "index"])
        #expect(url.query.map(\.value) == ["abc", "main"])
        #expect(url.hostname == "h1")
        #expect(url.redacted == "https://***@collector.example.com/services/collector?token=***&index=main&hostname=h1")
        #expect(!url.redacted.contains("s3cret") && !url.redacted.contains("abc"))
        #expect("\(url)" == url.redacted)
        #expect(try DrainURL(parsing: "https://h").path == "/")
        #expect(url.requestTarget == "/services/collector?token=abc&index=main")
        #expect(try DrainURL(parsing: "https://h/p?q=a%20b%26c").requestTarget == "/p?q=a%20b%26c")
    }

    @Test(arguments: [
        ("ftp://h:21", "unknown scheme 'ftp'"),
        ("logs.example.com:514", "expected SCHEME://HOST[:PORT]"),
        ("syslog://", "no host"),
        ("syslog://:514", "no host"),
        ("syslog://h:0", "port must be a number from 1 to 65535"),
        ("syslog://h:70000", "port must be a number from 1 to 65535"),
        ("syslog://h:abc", "port must be a number"),
        ("syslog://h:514/path", "has no path"),
        ("syslog://h?color=blue", "unknown option 'color'"),
        ("syslog://h?ca=/x.pem", "ca applies to syslog-tls and https"),
        ("syslog-tls://h?skip-verify=maybe", "skip-verify must be true or false"),
        ("syslog://h?hostname=has%20space", "hostname must be"),
        ("syslog://[::1", "closing ]"),
        ("syslog://h%41", "is not a host name"),
    ])
    func badURLsSayWhy(text: String, reason: String) {
        do {
            let parsed = try DrainURL(parsing: text)
            Issue.record("\(text) parsed as \(parsed)")
        } catch {
            #expect(error.reason.contains(reason), "\(text): \(error.reason)")
        }
    }
}

/// The line a drain receives (REFERENCE §4).
@Suite struct DrainLineTests {
    /// 2026-11-24T08:00:00.123456Z.
    static let time: Int64 = 1_795_507_200_123_456_789

    @Test func outLineAsCloudFoundryWritesIt() {
        let line = DrainLine(
            app: "my-app", sourceType: "APP/PROC/WEB", instance: "0", isError: false, timestamp: Self.time,
            tags: [("space", "dev"), ("org", "acme")])
        let text = String(decoding: line.bytes(message: Array("hello".utf8)), as: UTF8.self)
        #expect(text == "<14>1 2026-11-24T08:00:00.123456Z my-app my-app [APP/PROC/WEB/0] - [tags@47450 org=\"acme\" space=\"dev\"] hello\n")
    }

    @Test func errLineWithHostnameNoTagsAndNULsRemoved() {
        let line = DrainLine(
            app: "my-app", hostname: "org.space.my-app", sourceType: "RTR", instance: "", isError: true,
            timestamp: Self.time)
        let text = String(decoding: line.bytes(message: [0x61, 0x00, 0x62, 0x0A, 0x63]), as: UTF8.self)
        #expect(text == "<11>1 2026-11-24T08:00:00.123456Z org.space.my-app my-app [RTR] - - ab\nc\n")
    }

    @Test func valuesAreEscapedAndFieldsCleaned() {
        let line = DrainLine(
            app: "an app with spaces and more than forty-eight characters in it!", sourceType: "APP", instance: "1",
            isError: false, timestamp: Self.time, tags: [("we ird=key", #"a "quoted" \ value]"#), ("", "dropped")])
        let text = String(decoding: line.bytes(message: Array("x".utf8)), as: UTF8.self)
        let appName = "an_app_with_spaces_and_more_than_forty-eight_cha"
        #expect(appName.count == 48)
        #expect(text.contains(" \(appName) [APP/1] - "), "\(text)")
        #expect(text.contains(#"[tags@47450 we_ird_key="a \"quoted\" \\ value\]"] x"#), "\(text)")
    }

    @Test func readsBackThroughTheAgentsParser() throws {
        let line = DrainLine(
            app: "round-trip", sourceType: "APP/PROC/WEB", instance: "3", isError: true, timestamp: Self.time,
            tags: [("color", #"bl"ue]"#)])
        let bytes = line.bytes(message: Array("it works".utf8))
        let parsed = try #require(bytes.withUnsafeBytes { SyslogMessage.parse($0) })
        #expect(parsed.format == .rfc5424)
        #expect(parsed.appName == "round-trip")
        #expect(parsed.isError)
        #expect(parsed.timestamp == Self.time / 1000 * 1000)
        #expect(parsed.sourceTypeAndInstance?.sourceType == "APP/PROC/WEB")
        #expect(parsed.sourceTypeAndInstance?.instance == "3")
        #expect(parsed.structuredData == [.init(id: DrainLine.tagsID, name: "color", value: #"bl"ue]"#)])
        #expect(String(decoding: bytes[parsed.message], as: UTF8.self) == "it works")
    }

    @Test func datagramsAreCutAtACharacterBoundaryWithAMarker() {
        let short = Array("<14>1 short\n".utf8)
        #expect(Array(DrainLine.datagram(short, maxBytes: 2048)) == short)
        let exact = [UInt8](repeating: UInt8(ascii: "a"), count: 2048)
        #expect(DrainLine.datagram(exact, maxBytes: 2048).count == 2048)
        // "é" is two bytes; a cut must not split one.
        let long = Array(String(repeating: "é", count: 2000).utf8)
        let cut = Array(DrainLine.datagram(long, maxBytes: 2048))
        #expect(cut.count <= 2048)
        #expect(cut.count >= 2048 - DrainLine.cutMarker.count - 1)
        #expect(Array(cut.suffix(DrainLine.cutMarker.count)) == DrainLine.cutMarker)
        let kept = cut.dropLast(DrainLine.cutMarker.count)
        #expect(String(validating: kept, as: UTF8.self) != nil)
        #expect(kept.count % 2 == 0)
    }
}
