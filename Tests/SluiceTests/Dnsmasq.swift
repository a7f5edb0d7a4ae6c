import Foundation
import SluiceTransport
import SluiceWire

/// A real DNS server (dnsmasq, from Debian's dnsmasq-base) on a loopback
/// port of its own, answering only for the records it is given: SRV
/// records of buffer servers, and their A records. Its records change by
/// starting it again on the same port with new ones.
///
/// It runs as the daemon it is, found by its pid file, not as a `Process`
/// kept running: dnsmasq closes the descriptors it inherits, among them
/// the one by which Foundation learns that a child exited, and Foundation
/// then waits for it (blocking the thread that notices every child's exit)
/// until it does.
final class Dnsmasq: @unchecked Sendable {
    let port: Int
    let directory: URL
    private var pid: pid_t?

    /// An SRV name's targets: each `name.sluice.test` at 127.0.0.1:`port`.
    struct Server {
        var name: String
        var port: Int
    }

    init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        self.port = try freeLoopbackPort(udp: true)
    }

    /// Serves `servers` as `srv`'s SRV records (none: no record), waiting
    /// until it answers.
    func serve(srv: String, _ servers: [Server]) async throws {
        var lines: [String] = []
        for server in servers {
            lines.append("srv-host=\(srv),\(server.name).sluice.test,\(server.port)")
            lines.append("host-record=\(server.name).sluice.test,127.0.0.1")
        }
        try await start(lines, probe: "\(servers.first?.name ?? "none").sluice.test")
    }

    /// Serves `name` (in sluice.test) with one A record per address, as a
    /// hosts file with one line each.
    func serve(name: String, addresses: [String]) async throws {
        let hosts = directory.appendingPathComponent("hosts")
        try addresses.map { "\($0) \(name)\n" }.joined().write(to: hosts, atomically: true, encoding: .utf8)
        try await start(["addn-hosts=\(hosts.path)"], probe: name)
    }

    private func start(_ records: [String], probe: String) async throws {
        stop()
        guard let program = findProgram("dnsmasq") else {
            throw DrainPeerError("dnsmasq is not installed (bin/test installs dnsmasq-base)")
        }
        var lines = [
            "port=\(port)", "listen-address=127.0.0.1", "bind-interfaces", "no-resolv", "no-hosts", "no-negcache",
            // A name it has no record of is answered NXDOMAIN, never asked upstream.
            "local=/sluice.test/",
        ]
        lines += records
        let config = directory.appendingPathComponent("dnsmasq.conf")
        try (lines.joined(separator: "\n") + "\n").write(to: config, atomically: true, encoding: .utf8)
        let pidFile = directory.appendingPathComponent("dnsmasq.pid")
        try? FileManager.default.removeItem(at: pidFile)
        let log = directory.appendingPathComponent("dnsmasq.log")
        // It forks, and the process started here exits once the daemon runs.
        let started = try runProgram(
            program, ["--conf-file=\(config.path)", "--pid-file=\(pidFile.path)", "--user=root", "--log-facility=\(log.path)"],
            timeout: .seconds(10))
        // The daemon writes its pid file itself, maybe after the starter exited.
        func written() -> pid_t? {
            (try? String(contentsOf: pidFile, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let deadline = ContinuousClock.now + .seconds(10)
        var pid = written()
        while started.status == 0, pid == nil, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
            pid = written()
        }
        guard started.status == 0, let pid else {
            throw DrainPeerError(
                "dnsmasq did not start (exit \(started.status)): \(started.stdout)\(started.stderr)\((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
        self.pid = pid
        // Answering: the first server's A record (or, with none, an NXDOMAIN).
        let resolver = DNSResolver(server: Endpoint(host: "127.0.0.1", port: port))
        let answering = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < answering {
            if (try? await resolver.query(probe, .a)) != nil { return }
            guard kill(pid, 0) == 0 else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DrainPeerError("dnsmasq did not answer: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    /// Kills the daemon (it may hold SIGTERM blocked, inherited from the
    /// test's thread) and waits until it is gone and its port free.
    func stop() {
        guard let pid else { return }
        self.pid = nil
        kill(pid, SIGKILL)
        let deadline = ContinuousClock.now + .seconds(10)
        while kill(pid, 0) == 0, ContinuousClock.now < deadline { usleep(10_000) }
    }
}
