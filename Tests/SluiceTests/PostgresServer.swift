import Foundation

/// A real PostgreSQL server for one test: a fresh cluster (initdb) in a
/// temporary directory, listening on a free loopback port, trusting local
/// connections. Run as the `postgres` user when the tests run as root
/// (PostgreSQL refuses to run as root). bin/test installs the server.
final class PostgresServer: @unchecked Sendable {
    let port: Int
    let directory: URL
    private let process: Process

    var url: String { "postgres://postgres@127.0.0.1:\(port)/postgres?sslmode=disable" }

    static func binary(_ name: String) -> String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: >) {
            let path = "/usr/lib/postgresql/\(version)/bin/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return findProgram(name)
    }

    static func start() async throws -> PostgresServer {
        guard let initdb = binary("initdb"), let postgres = binary("postgres") else {
            throw DrainPeerError("PostgreSQL is not installed (bin/test installs the postgresql package)")
        }
        let directory = URL(fileURLWithPath: "/tmp/sluice-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let asRoot = getuid() == 0
        if asRoot {
            _ = try runProgram("/bin/chown", ["postgres:postgres", directory.path])
        }
        let data = directory.appendingPathComponent("data").path
        let initialized = try runProgram(
            asRoot ? "/usr/sbin/runuser" : initdb,
            (asRoot ? ["-u", "postgres", "--", initdb] : []) + ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"])
        guard initialized.status == 0 else {
            throw DrainPeerError("initdb failed: \(initialized.stderr)")
        }
        let port = try freeLoopbackPort(udp: false)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: asRoot ? "/usr/sbin/runuser" : postgres)
        process.arguments =
            (asRoot ? ["-u", "postgres", "--", postgres] : [])
            + ["-D", data, "-p", "\(port)", "-k", directory.path, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        let log = directory.appendingPathComponent("postgres.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let server = PostgresServer(port: port, directory: directory, process: process)
        // Ready when it answers a query.
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            if let isReady = binary("pg_isready"),
                (try? runProgram(isReady, ["-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres"]))?.status == 0
            {
                return server
            }
            guard process.isRunning, ContinuousClock.now < deadline else {
                server.stop()
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw DrainPeerError("PostgreSQL did not start: \(text.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    private init(port: Int, directory: URL, process: Process) {
        self.port = port
        self.directory = directory
        self.process = process
    }

    /// SIGQUIT to the postmaster itself (not to runuser): its immediate
    /// shutdown, which does not wait for clients to leave.
    func stop() {
        let pidFile = directory.appendingPathComponent("data/postmaster.pid")
        if let text = try? String(contentsOf: pidFile, encoding: .utf8),
            let pid = Int32(text.split(separator: "\n").first ?? "")
        {
            kill(pid, SIGQUIT)
        }
        if process.isRunning {
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning && ContinuousClock.now < deadline { usleep(20_000) }
            if process.isRunning {
                // Its process group too (Foundation gives each child its own):
                // the postmaster under runuser, should it not have written its pid.
                kill(-process.processIdentifier, SIGKILL)
                kill(process.processIdentifier, SIGKILL)
            }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { stop() }
}
