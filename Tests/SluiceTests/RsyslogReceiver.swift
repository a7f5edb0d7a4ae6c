import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

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
