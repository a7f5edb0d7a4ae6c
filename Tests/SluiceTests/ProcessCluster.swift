import Foundation
import SluiceAuth
import NIOConcurrencyHelpers
import NIOCore
import SluiceCLI
import SluiceWire

/// A cluster file's members run as separate `sluice` processes on loopback,
/// as `bin/cluster` runs them, so that tests can `kill -9` one.
final class ProcessCluster: @unchecked Sendable {
    let config: ClusterConfig
    let directory: URL
    let configPath: String
    private let processes = NIOLockedValueBox<[String: Process]>([:])

    /// 2 zones × 2 servers and one controller per zone, on free ports.
    static func twoZones(recentPerApp: Int? = nil, controllerArguments: [String] = []) async throws -> ProcessCluster {
        var ports: [Int] = []
        for _ in 0..<8 { ports.append(try freePort()) }
        let config = ClusterConfig(zones: [
            .init(
                name: "z1",
                servers: [
                    .init(name: "z1-server-1", listen: "127.0.0.1:\(ports[0])", recentPerApp: recentPerApp),
                    .init(name: "z1-server-2", listen: "127.0.0.1:\(ports[1])", recentPerApp: recentPerApp),
                ],
                controllers: [.init(name: "z1-controller", ingress: "127.0.0.1:\(ports[2])", http: "127.0.0.1:\(ports[3])")]),
            .init(
                name: "z2",
                servers: [
                    .init(name: "z2-server-1", listen: "127.0.0.1:\(ports[4])", recentPerApp: recentPerApp),
                    .init(name: "z2-server-2", listen: "127.0.0.1:\(ports[5])", recentPerApp: recentPerApp),
                ],
                controllers: [.init(name: "z2-controller", ingress: "127.0.0.1:\(ports[6])", http: "127.0.0.1:\(ports[7])")]),
        ])
        return try await ProcessCluster(
            config: config,
            extraArguments: ["z1-controller": controllerArguments, "z2-controller": controllerArguments])
    }

    /// The controllers' token secret, and an admin token signed with it.
    let secretPath: String
    let token: String

    /// The hosts the members run on, one network namespace each; nil: all
    /// on this host's loopback.
    let bed: NetnsBed?
    /// More arguments for a member, by name.
    let extraArguments: [String: [String]]

    /// The hosts of `twoZones(on:)`, one per member.
    static let twoZoneHosts = ["z1-controller", "z1-server-1", "z1-server-2", "z2-controller", "z2-server-1", "z2-server-2"]

    /// 2 zones × 2 servers and a controller per zone, each member on its
    /// own host of `bed` (its address, fixed ports): servers listen on 9001
    /// and serve /metrics on 9100, controllers take ingress on 9000 and
    /// HTTP on 8080. `serverArguments` go to every server.
    static func twoZones(on bed: NetnsBed, serverArguments: [String] = []) async throws -> ProcessCluster {
        func address(_ host: String, _ port: Int) -> String { "\(bed.addresses[host]!):\(port)" }
        var zones: [ClusterConfig.Zone] = []
        var extra: [String: [String]] = [:]
        for zone in ["z1", "z2"] {
            let servers = (1...2).map { ClusterConfig.Server(name: "\(zone)-server-\($0)", listen: address("\(zone)-server-\($0)", 9001)) }
            for server in servers { extra[server.name] = ["--metrics", address(server.name, 9100)] + serverArguments }
            let controller = "\(zone)-controller"
            zones.append(
                .init(
                    name: zone, servers: servers,
                    controllers: [.init(name: controller, ingress: address(controller, 9000), http: address(controller, 8080))]))
        }
        return try await ProcessCluster(config: ClusterConfig(zones: zones), bed: bed, extraArguments: extra)
    }

    init(config: ClusterConfig, bed: NetnsBed? = nil, extraArguments: [String: [String]] = [:]) async throws {
        self.config = config
        self.bed = bed
        self.extraArguments = extraArguments
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-cluster-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configPath = directory.appendingPathComponent("cluster.json").path
        try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: configPath))
        secretPath = directory.appendingPathComponent("token-key").path
        try TokenIssuer.ensureSecret(at: secretPath)
        token = try await TokenIssuer.create(keyFile: secretPath, admin: true, apps: [], ttl: 3600)
    }

    func startAll() async throws {
        for zone in config.zones { for server in zone.servers { try await start(server.name) } }
        for zone in config.zones { for controller in zone.controllers { try await start(controller.name) } }
    }

    /// Starts one member and waits until it accepts connections.
    func start(_ name: String) async throws {
        guard let member = config.member(named: name) else { throw ProcessClusterError(description: "no \(name)") }
        let process = try process(loggingAs: name)
        // A controller binds its ingress, then its HTTP API: it is up once
        // the second answers.
        let address: String
        switch member {
        case .server(_, let server):
            process.arguments = ["server", "--config", configPath, "--name", name, "--log-level", Self.logLevel]
            address = server.listen
        case .controller(_, let controller):
            process.arguments = [
                "controller", "--config", configPath, "--name", name, "--token-secret", secretPath, "--log-level", Self.logLevel,
            ]
            address = controller.http
        }
        process.arguments! += extraArguments[name] ?? []
        if let bed {
            // On its own host: `ip netns exec` puts it in the host's
            // namespace and execs it, so the pid is the member's own.
            process.arguments = ["netns", "exec", bed.namespace(of: name), Self.binary.path] + process.arguments!
            process.executableURL = URL(fileURLWithPath: findProgram("ip") ?? "/usr/sbin/ip")
        }
        // Its own data directory (drain bindings), not the user's ~/.sluice.
        process.environment = ProcessInfo.processInfo.environment.merging(
            ["SLUICE_HOME": directory.path, "SLUICE_BINDINGS": ""]) { $1 }
        try await run(process, as: name, listeningOn: address)
    }

    /// A process of the members' binary whose output goes to `name`'s log;
    /// one started again writes after its earlier lives.
    private func process(loggingAs name: String) throws -> Process {
        let process = Process()
        process.executableURL = Self.binary
        let log = directory.appendingPathComponent("\(name).log")
        if !FileManager.default.fileExists(atPath: log.path) {
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        return process
    }

    /// Runs `process` as `name` and waits until it takes connections at
    /// `address`. stopAll() stops it, however the test ends (a member
    /// started twice: the old one now).
    private func run(_ process: Process, as name: String, listeningOn address: String) async throws {
        try process.run()
        if let previous = processes.withLockedValue({ $0.updateValue(process, forKey: name) }) {
            stopProcess(previous)
        }
        let endpoint = try Endpoint(parsing: address)
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let connection = try? await FrameConnection.connect(to: endpoint) {
                try? await connection.close()
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ProcessClusterError(description: "\(name) did not start listening on \(address): \(log(name).suffix(2000))")
    }

    /// Starts `sluice agent` (named `name`, for `kill`, `terminate` and
    /// `log`) with its framed input on `listen` and `arguments`, and waits
    /// until it accepts connections. Its controllers are the arguments'.
    func startAgent(_ name: String = "agent", listen: String, arguments: [String]) async throws {
        let process = try process(loggingAs: name)
        process.arguments = ["agent", "--listen", listen] + arguments
        try await run(process, as: name, listeningOn: listen)
    }

    /// Waits until the controllers have a restarted member back, as `bin/cluster
    /// rolling-restart` does: a server is up on every running controller's
    /// `/metrics` (`sluice_controller_buffer_server_up`), a controller has
    /// every server up.
    func rejoined(_ name: String, timeout: Duration = .seconds(30)) async throws {
        let running = processes.withLockedValue { Set($0.keys) }
        let controllers = config.zones.flatMap(\.controllers)
        let servers = config.zones.flatMap(\.servers)
        let asked: [ClusterConfig.Controller]
        let server = servers.first { $0.name == name }
        if server != nil {
            asked = controllers.filter { running.contains($0.name) }
        } else {
            asked = controllers.filter { $0.name == name }
        }
        func up(_ controller: ClusterConfig.Controller) async -> Bool {
            let http = Endpoint(controller.http)!
            guard let response = try? await HTTPClient.get(HTTPURL(host: http.host, port: http.port, path: "/metrics"))
            else { return false }
            let lines = String(buffer: response.body).split(separator: "\n").filter {
                $0.hasPrefix(MetricNames.controllerServerUp + "{") && $0.split(separator: " ").last.flatMap { Double($0) } == 1
            }
            if let server { return lines.contains { $0.contains("server=\"\(server.listen)\"") } }
            return lines.count >= servers.count
        }
        let deadline = ContinuousClock.now + timeout
        for controller in asked {
            while !(await up(controller)) {
                guard ContinuousClock.now < deadline else {
                    throw ProcessClusterError(description: "\(controller.name) did not have \(name) back within \(timeout)")
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    /// The members' log level: warning, or $SLUICE_MEMBER_LOG_LEVEL (info,
    /// debug) to see more of a failing run.
    static var logLevel: String { ProcessInfo.processInfo.environment["SLUICE_MEMBER_LOG_LEVEL"] ?? "warning" }

    /// The members' binary: the release build when bin/test names one
    /// ($SLUICE_RELEASE_BIN), so that load tests run at full speed.
    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["SLUICE_RELEASE_BIN"],
            FileManager.default.isExecutableFile(atPath: path)
        {
            return URL(fileURLWithPath: path)
        }
        return sluiceExecutable()
    }

    /// Runs `sluice bench load`: `count` numbered lines at `rate` a second
    /// to the controllers given (preferred first); returns once every line
    /// is acknowledged. Throws if that takes longer than `timeout` (the load
    /// generator is stopped then, as on any way out, cancellation included).
    func load(
        app: String, controllers: [Endpoint], rate: Int, count: Int, timeout: Duration = .seconds(300),
        logName: String = "load"
    ) async throws {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = [
            "bench", "load", "--app", app, "--controller", controllers.map(\.description).joined(separator: ","),
            "--rate", "\(rate)", "--count", "\(count)", "--batch", "100", "--payload", "16",
        ]
        let log = directory.appendingPathComponent("\(logName).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer { stopProcess(process) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw ProcessClusterError(
                    description: "the load generator did not finish within \(timeout): \(output.suffix(2000))")
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            throw ProcessClusterError(description: "the load generator failed: \(output)")
        }
    }

    /// `kill -9`.
    func kill(_ name: String) {
        guard let process = processes.withLockedValue({ $0.removeValue(forKey: name) }) else { return }
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, a graceful stop; returns once the member has exited, with
    /// its exit status and how long it took.
    func terminate(_ name: String, timeout: Duration = .seconds(30)) async throws -> (status: Int32, took: Duration) {
        guard let process = processes.withLockedValue({ $0.removeValue(forKey: name) }) else {
            throw ProcessClusterError(description: "\(name) is not running")
        }
        let started = ContinuousClock.now
        Foundation.kill(process.processIdentifier, SIGTERM)
        while process.isRunning {
            guard ContinuousClock.now - started < timeout else {
                Foundation.kill(process.processIdentifier, SIGKILL)
                throw ProcessClusterError(description: "\(name) did not exit within \(timeout) of SIGTERM")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return (process.terminationStatus, ContinuousClock.now - started)
    }

    /// The member's log so far.
    func log(_ name: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("\(name).log"), encoding: .utf8)) ?? ""
    }

    /// SIGSTOP: the process hangs with its sockets open.
    func pause(_ name: String) {
        if let process = processes.withLockedValue({ $0[name] }) { Foundation.kill(process.processIdentifier, SIGSTOP) }
    }

    func resume(_ name: String) {
        if let process = processes.withLockedValue({ $0[name] }) { Foundation.kill(process.processIdentifier, SIGCONT) }
    }

    func stopAll() {
        let all = processes.withLockedValue { state in
            let all = Array(state.values)
            state.removeAll()
            return all
        }
        for process in all {
            // A paused member (SIGSTOP) must go on to see its SIGTERM.
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGCONT) }
            stopProcess(process, grace: .seconds(5))
        }
        // $SLUICE_KEEP_CLUSTER_LOGS keeps the members' logs, to read after a failing run.
        if ProcessInfo.processInfo.environment["SLUICE_KEEP_CLUSTER_LOGS"] != nil {
            print("cluster logs kept in \(directory.path)")
        } else {
            try? FileManager.default.removeItem(at: directory)
        }
    }

    func client(zone: String) -> ControllerClient {
        let controller = config.zones.first { $0.name == zone }!.controllers[0]
        let http = Endpoint(controller.http)!
        return ControllerClient(
            ingress: Endpoint(controller.ingress)!, http: HTTPURL(host: http.host, port: http.port), token: token)
    }

    /// The name of the server that owns `app` in `zone`.
    func owner(of app: String, in zone: String) -> String {
        let servers = config.zones.first { $0.name == zone }!.servers
        let index = RendezvousHash(nodes: servers.map { Endpoint($0.listen)!.description }).owner(of: app)!
        return servers[index].name
    }

    /// The sum of a counter's series in a server's /metrics (a member of
    /// `twoZones(on:)`).
    func serverMetric(_ server: String, _ metric: String) async throws -> Double {
        let address = try Endpoint(parsing: extraArguments[server]![1])
        let response = try await HTTPClient.get(HTTPURL(host: address.host, port: address.port, path: "/metrics"))
        var sum = 0.0
        for line in String(buffer: response.body).split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, fields[0] == metric || fields[0].hasPrefix(metric + "{") else { continue }
            sum += Double(fields[1]) ?? 0
        }
        return sum
    }

    static func freePort() throws -> Int {
        let reserved = ReservedPort()
        defer { reserved.release() }
        return reserved.port
    }
}

struct ProcessClusterError: Error, CustomStringConvertible {
    var description: String
}
