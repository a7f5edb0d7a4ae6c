import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Why a drain peer could not start or did not see what was expected.
struct DrainPeerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A CA, and a certificate for `localhost` and 127.0.0.1 that it signed, made
/// with the openssl command line (EC P-256 keys: quick to make).
struct TestCertificates: Sendable {
    let caPath: String
    let certPath: String
    let keyPath: String

    static func make(in dir: URL) throws -> TestCertificates {
        guard let openssl = findProgram("openssl") else { throw DrainPeerError("openssl is not installed") }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let config = path("openssl.cnf")
        // Our own config, so that the system's openssl.cnf adds no extensions of its own.
        try """
            [req]
            distinguished_name = dn
            prompt = no
            [dn]
            CN = unused
            [ca_ext]
            basicConstraints = critical,CA:TRUE
            keyUsage = critical,keyCertSign,cRLSign
            subjectKeyIdentifier = hash
            [server_ext]
            basicConstraints = critical,CA:FALSE
            keyUsage = critical,digitalSignature
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:localhost,IP:127.0.0.1
            subjectKeyIdentifier = hash
            authorityKeyIdentifier = keyid,issuer

            """.write(toFile: config, atomically: true, encoding: .utf8)
        let certificates = TestCertificates(caPath: path("ca.pem"), certPath: path("server.pem"), keyPath: path("server.key"))
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let steps: [[String]] = [
            ["req", "-x509", "-config", config, "-extensions", "ca_ext"] + newKey
                + ["-keyout", path("ca.key"), "-out", certificates.caPath, "-days", "3650", "-subj", "/CN=Sluice Test CA"],
            ["req", "-new", "-config", config] + newKey
                + ["-keyout", certificates.keyPath, "-out", path("server.csr"), "-subj", "/CN=localhost"],
            [
                "x509", "-req", "-in", path("server.csr"), "-CA", certificates.caPath, "-CAkey", path("ca.key"),
                "-CAcreateserial", "-CAserial", path("ca.srl"), "-out", certificates.certPath, "-days", "3650",
                "-extfile", config, "-extensions", "server_ext",
            ],
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["OPENSSL_CONF"] = config
        for step in steps {
            let result = try runProgram(openssl, step, environment: environment)
            guard result.status == 0 else {
                throw DrainPeerError("openssl \(step.joined(separator: " ")) exited \(result.status): \(result.stderr)")
            }
        }
        return certificates
    }
}

/// A real rsyslogd listening on 127.0.0.1 that writes each message it
/// receives to `outputPath`, one a line, as received: octet-count framing
/// stripped (imtcp does it), one trailing LF dropped (rsyslog's
/// parser.dropTrailingLFOnReception), control characters kept (but NUL
/// becomes "#000", which rsyslog always does), and nothing added but the LF
/// that ends the line. A message with an LF inside spans two lines.
final class RsyslogReceiver: @unchecked Sendable {
    enum Mode: Sendable {
        case tcp
        case tls(TestCertificates)
        case udp
    }

    let mode: Mode
    let port: Int
    let outputPath: String
    private let directory: URL
    private let lock = NIOLock()
    private var process: Process?

    private init(mode: Mode, port: Int, directory: URL) {
        self.mode = mode
        self.port = port
        self.directory = directory
        outputPath = directory.appendingPathComponent("received.log").path
    }

    /// Starts rsyslogd in `directory`/rsyslog-PORT (so receivers may share a
    /// directory) on `port`, or on a free one if it is 0; returns once it listens.
    static func start(mode: Mode, port: Int = 0, directory: URL) throws -> RsyslogReceiver {
        guard findProgram("rsyslogd") != nil else {
            throw DrainPeerError("rsyslog is not installed (bin/test installs it)")
        }
        let chosen: Int
        if port != 0 {
            chosen = port
        } else if case .udp = mode {
            chosen = try freeLoopbackPort(udp: true)
        } else {
            chosen = try freeLoopbackPort(udp: false)
        }
        let receiver = RsyslogReceiver(
            mode: mode, port: chosen, directory: directory.appendingPathComponent("rsyslog-\(chosen)"))
        try FileManager.default.createDirectory(at: receiver.directory, withIntermediateDirectories: true)
        try receiver.configuration.write(to: receiver.file("rsyslog.conf"), atomically: true, encoding: .utf8)
        try receiver.restart()
        return receiver
    }

    private var configuration: String {
        var global = """
            workDirectory="\(directory.path)" processInternalMessages="on" maxMessageSize="64k"
                   parser.escapeControlCharactersOnReceive="off" parser.dropTrailingLFOnReception="on"
            """
        let module: String
        let input: String
        switch mode {
        case .tcp:
            module = #"module(load="imtcp")"#
            input = "imtcp"
        case .tls(let certificates):
            global += """

                       defaultNetstreamDriverCAFile="\(certificates.caPath)"
                       defaultNetstreamDriverCertFile="\(certificates.certPath)"
                       defaultNetstreamDriverKeyFile="\(certificates.keyPath)"
                """
            module = #"module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")"#
            input = "imtcp"
        case .udp:
            module = #"module(load="imudp")"#
            input = "imudp"
        }
        // No imuxsock or imklog, and rsyslog's own messages (processInternalMessages)
        // go to internal.log rather than to the system's /dev/log.
        return #"""
            global(\#(global))
            \#(module)
            template(name="raw" type="string" string="%rawmsg%\n")
            input(type="\#(input)" address="127.0.0.1" port="\#(port)" ruleset="received")
            ruleset(name="received") {
              action(type="omfile" file="\#(outputPath)" template="raw")
            }
            action(type="omfile" file="\#(file("internal.log").path)")

            """#
    }

    /// Starts rsyslogd again on the same port, appending to the same output
    /// file (stopping it first if it runs); returns once it listens.
    func restart() throws {
        stop()
        guard let rsyslogd = findProgram("rsyslogd") else { throw DrainPeerError("rsyslog is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: rsyslogd)
        // -iNONE: no pidfile, since a SIGKILLed run's pidfile could stop the next run.
        process.arguments = ["-n", "-iNONE", "-f", file("rsyslog.conf").path]
        _ = FileManager.default.createFile(atPath: file("rsyslogd.out").path, contents: nil)
        let output = try FileHandle(forWritingTo: file("rsyslogd.out"))
        defer { try? output.close() }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = output
        try process.run()
        lock.withLock { self.process = process }

        let deadline = ContinuousClock.now + .seconds(10)
        let udp: Bool
        if case .udp = mode { udp = true } else { udp = false }
        while !holdsLoopbackSocket(pid: process.processIdentifier, port: port, udp: udp) {
            guard process.isRunning else {
                stop()
                throw DrainPeerError("rsyslogd exited before listening on port \(port)\(diagnostics())")
            }
            guard ContinuousClock.now < deadline else {
                stop()
                throw DrainPeerError("rsyslogd did not listen on port \(port) within 10 s\(diagnostics())")
            }
            usleep(20_000)
        }
    }

    /// Kills rsyslogd (SIGKILL: it may inherit a mask that blocks SIGTERM) and
    /// waits for it to exit. What it took in but had not yet written is lost.
    func stop() {
        let process = lock.withLock { () -> Process? in
            defer { self.process = nil }
            return self.process
        }
        guard let process else { return }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit {
        stop()
    }

    /// Every whole line written so far (a line rsyslog is still writing is left out).
    func lines() -> [String] {
        guard let data = FileManager.default.contents(atPath: outputPath) else { return [] }
        var lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            .map { String(decoding: $0, as: UTF8.self) }
        if !lines.isEmpty { lines.removeLast() }
        return lines
    }

    /// All lines, once there are at least `count`.
    func waitForLines(_ count: Int, timeout: Duration) async throws -> [String] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let lines = self.lines()
            if lines.count >= count { return lines }
            guard ContinuousClock.now < deadline else {
                throw DrainPeerError(
                    "rsyslogd on port \(port) wrote \(lines.count) of \(count) lines within \(timeout); "
                        + "the last: \(lines.last.map { "'\($0)'" } ?? "none")\(diagnostics())")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    private func file(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// The end of what rsyslogd said about itself, for error messages.
    private func diagnostics() -> String {
        let said = ["rsyslogd.out", "internal.log"].flatMap { name in
            (FileManager.default.contents(atPath: file(name).path).map { String(decoding: $0, as: UTF8.self) } ?? "")
                .split(separator: "\n").suffix(8)
        }
        return said.isEmpty ? "" : "; rsyslogd said:\n" + said.joined(separator: "\n")
    }
}

/// A port nothing on 127.0.0.1 uses now, learnt by binding port 0 and closing.
func freeLoopbackPort(udp: Bool) throws -> Int {
    let fd = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw DrainPeerError("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            guard bind(fd, pointer, length) == 0 else { return false }
            return getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw DrainPeerError("could not bind a loopback port: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Whether process `pid` holds a socket bound to 127.0.0.1:`port` (and, for
/// TCP, listening). Read from /proc rather than by connecting, which proves
/// the port is rsyslogd's and leaves no stray session in its log.
private func holdsLoopbackSocket(pid: Int32, port: Int, udp: Bool) -> Bool {
    let hex = String(port, radix: 16, uppercase: true)
    let local = "0100007F:" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    // /proc files claim size 0: read to the end rather than by size.
    guard let table = FileHandle(forReadingAtPath: udp ? "/proc/net/udp" : "/proc/net/tcp") else { return false }
    defer { try? table.close() }
    let sockets = Set(
        String(decoding: table.readDataToEndOfFile(), as: UTF8.self).split(separator: "\n").compactMap { row -> String? in
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
            let fields = row.split(separator: " ")
            guard fields.count > 9, fields[1] == local, fields[3] == (udp ? "07" : "0A") else { return nil }
            return "socket:[\(fields[9])]"
        })
    guard !sockets.isEmpty, let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else {
        return false
    }
    return fds.contains { fd in
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")).map(sockets.contains) ?? false
    }
}

/// An HTTPS server on 127.0.0.1 that records every request and answers each
/// with the next scripted status (200 once the script runs out), keeping
/// connections alive unless the client asks otherwise.
final class HTTPSReceiver: Sendable {
    struct Request: Sendable {
        let method: HTTPMethod
        let uri: String
        let headers: HTTPHeaders
        let body: [UInt8]

        func header(_ name: String) -> String? { headers.first(name: name) }
    }

    fileprivate struct State: Sendable {
        var requests: [Request] = []
        var responses: [Int] = []
        var connections: [any Channel] = []
    }

    let port: Int
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    private init(port: Int, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    static func start(certificates: TestCertificates) async throws -> HTTPSReceiver {
        let chain = try NIOSSLCertificate.fromPEMFile(certificates.certPath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: certificates.keyPath, format: .pem)
        let context = try NIOSSLContext(
            configuration: TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.withLockedValue { $0.connections.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RecordingHandler(state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw DrainPeerError("the HTTPS receiver has no local port")
        }
        return HTTPSReceiver(port: port, channel: channel, state: state)
    }

    /// The statuses to answer the next requests with, one each, in order.
    func setResponses(_ statuses: [Int]) {
        state.withLockedValue { $0.responses = statuses }
    }

    var requests: [Request] { state.withLockedValue { $0.requests } }

    /// How many TCP connections were accepted (to see whether a client reuses one).
    var connectionsAccepted: Int { state.withLockedValue { $0.connections.count } }

    /// All requests, once there are at least `count`.
    func waitForRequests(_ count: Int, timeout: Duration) async throws -> [Request] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let requests = self.requests
            if requests.count >= count { return requests }
            guard ContinuousClock.now < deadline else {
                throw DrainPeerError("the HTTPS receiver got \(requests.count) of \(count) requests within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Stops listening and closes every connection.
    func stop() async throws {
        do {
            try await channel.close()
        } catch ChannelError.alreadyClosed {}
        for connection in state.withLockedValue({ $0.connections }) { try? await connection.close() }
    }

    deinit {
        channel.close(promise: nil)
        for connection in state.withLockedValue({ $0.connections }) { connection.close(promise: nil) }
    }

    /// The messages of an application/logplex-1 body: octet-counted frames
    /// (RFC 6587: NONZERO-DIGIT *DIGIT SP MSG), back to back, nothing between.
    static func logplexFrames(_ body: [UInt8]) throws -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var start = 0
        while start < body.count {
            guard let space = body[start...].prefix(10).firstIndex(of: UInt8(ascii: " ")) else {
                throw DrainPeerError("frame \(frames.count) at byte \(start): no length of 1 to 9 digits and a space")
            }
            let digits = body[start..<space]
            guard let first = digits.first, first != UInt8(ascii: "0"),
                  digits.allSatisfy({ UInt8(ascii: "0")...UInt8(ascii: "9") ~= $0 }),
                  let length = Int(String(decoding: digits, as: UTF8.self))
            else {
                throw DrainPeerError(
                    "frame \(frames.count) at byte \(start): bad length '\(String(decoding: digits, as: UTF8.self))'")
            }
            let end = space + 1 + length
            guard end <= body.count else {
                throw DrainPeerError(
                    "frame \(frames.count) at byte \(start): length \(length) runs past the end of the body "
                        + "(\(body.count - space - 1) bytes left)")
            }
            frames.append(Array(body[(space + 1)..<end]))
            start = end
        }
        return frames
    }
}

/// Records each whole request and answers it with the next scripted status.
private final class RecordingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let state: NIOLockedValueBox<HTTPSReceiver.State>
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []

    init(state: NIOLockedValueBox<HTTPSReceiver.State>) {
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(let chunk):
            body += chunk.readableBytesView
        case .end:
            guard let head else { return }
            self.head = nil
            let request = HTTPSReceiver.Request(method: head.method, uri: head.uri, headers: head.headers, body: body)
            let status = state.withLockedValue { state in
                state.requests.append(request)
                return state.responses.isEmpty ? 200 : state.responses.removeFirst()
            }
            var headers = HTTPHeaders()
            // 204 and 304 must not carry a body, nor so a length.
            if status != 204 && status != 304 { headers.add(name: "Content-Length", value: "0") }
            if !head.isKeepAlive { headers.add(name: "Connection", value: "close") }
            let response = HTTPResponseHead(
                version: head.version, status: HTTPResponseStatus(statusCode: status), headers: headers)
            context.write(wrapOutboundOut(.head(response)), promise: nil)
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if !head.isKeepAlive {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
