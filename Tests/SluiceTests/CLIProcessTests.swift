import Foundation
import NIOCore
import NIOHTTP1
import SluiceAuth
import SluiceBindings
import SluiceCLI
import SluiceWire
import Testing

/// The `sluice` executable itself: `up` as a new user runs it, and `logs`
/// reconnecting to a controller that is not there.
@Suite(.serialized)
struct CLIProcessTests {
    @Test func upServesEmitAndLogsAndStopsOnSIGTERM() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-up-\(getpid())")
        let (process, out) = try startSluiceUp(
            home: home,
            [
                "--servers", "2", "--http-port", "0", "--ingress-port", "0", "--agent-port", "0", "--syslog-port", "0",
                "--agent-http-port", "0", "--log-level", "warning",
            ])
        // Stopped however the test ends; a no-op once it has exited below.
        defer { stopProcess(process, grace: .seconds(10)) }

        // Wait for the banner, which is printed once everything listens.
        let banner = try read(out, timeout: .seconds(60)) { $0.contains("Ctrl-C stops it.") }
        #expect(banner.contains("Sluice is up: 1 controller and 2 buffer servers"), "\(banner)")

        // config.json lets emit and logs run with no address flags.
        let config = try JSONDecoder().decode(
            SluiceConfig.self, from: Data(contentsOf: home.appendingPathComponent("config.json")))
        let controller = try #require(config.controllers.first)
        #expect(banner.contains(controller.ingress) && banner.contains(controller.http))

        let environment = ["SLUICE_HOME": home.path]
        let emit = try await runSluice(["emit", "--app", "up-app", "hello from up"], environment: environment)
        #expect(emit.status == 0, "\(emit.stderr)")
        let logs = try await runSluice(["logs", "up-app", "--recent"], environment: environment)
        #expect(logs.status == 0, "\(logs.stderr)")
        #expect(logs.stdout.hasSuffix(" [APP/PROC/WEB/0] OUT hello from up\n"), "\(logs.stdout)")

        // Every read takes a token: sluice up's admin token is in config.json,
        // which, like the key, only its owner may read.
        #expect(config.token != nil)
        for file in ["config.json", "token-key"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: home.appendingPathComponent(file).path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(file)")
        }
        let bare = try await HTTPClient.get(try HTTPURL(parsing: controller.http).with(path: "/apps/up-app/recentlogs"))
        #expect(bare.status == .unauthorized)
        let refused = try await runSluice(
            ["logs", "up-app", "--recent"], environment: environment.merging(["SLUICE_TOKEN": "not-a-token"]) { $1 })
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("the controller refused the token: malformed token"), "\(refused.stderr)")
        let other = try await runSluice(["token", "create", "--app", "other-app", "--ttl", "10m"], environment: environment)
        #expect(other.status == 0, "\(other.stderr)")
        let otherToken = other.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let notYours = try await runSluice(["logs", "up-app", "--recent", "--token", otherToken], environment: environment)
        #expect(notYours.status != 0)
        #expect(notYours.stderr.contains("this token may not read app up-app"), "\(notYours.stderr)")
        let yours = try await runSluice(["logs", "other-app", "--recent", "--token", otherToken], environment: environment)
        #expect(yours.status == 0, "\(yours.stderr)")

        // The local agent's address is in config.json too: sluice run needs no flag.
        let agent = try #require(config.agent)
        #expect(banner.contains("agent    \(agent)"))
        let run = try await runSluice(["run", "--app", "up-app", "--", "echo", "through the agent"], environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "through the agent\n")
        let after = try await runSluice(["logs", "up-app", "--recent"], environment: environment)
        #expect(after.stdout.hasSuffix(" [APP/PROC/WEB/0] OUT through the agent\n"), "\(after.stdout)")

        // Drains: bound with the CLI, kept in $SLUICE_HOME/bindings.sqlite,
        // run by the cluster's servers.
        let receiver = try RsyslogReceiver.start(mode: .tcp, directory: home.appendingPathComponent("rsyslog"))
        defer { receiver.stop() }
        let add = try await runSluice(
            ["drains", "add", "up-app", "syslog://user:s3cret@127.0.0.1:\(receiver.port)", "--name", "local"],
            environment: environment)
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdout.contains("Added drain local") && !add.stdout.contains("s3cret"), "\(add.stdout)")
        #expect(FileManager.default.fileExists(atPath: home.appendingPathComponent("bindings.sqlite").path))
        let list = try await runSluice(["drains", "list", "up-app"], environment: environment)
        #expect(list.stdout.contains("syslog://***@127.0.0.1:\(receiver.port)") && !list.stdout.contains("s3cret"))
        let bad = try await runSluice(["drains", "add", "up-app", "syslog://h:0"], environment: environment)
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("422") && bad.stderr.contains("port"), "\(bad.stderr)")
        // Servers poll SQLite; once the drain runs, a line emitted reaches rsyslog.
        var drained: [String] = []
        for attempt in 0..<20 where drained.isEmpty {
            _ = try await runSluice(["emit", "--app", "up-app", "to the drain \(attempt)"], environment: environment)
            drained = (try? await receiver.waitForLines(1, timeout: .milliseconds(500))) ?? []
        }
        #expect(drained.first?.contains(" up-app up-app [APP/PROC/WEB/0] - - to the drain ") == true, "\(drained)")
        let remove = try await runSluice(["drains", "remove", "up-app", "local"], environment: environment)
        #expect(remove.status == 0, "\(remove.stderr)")
        let empty = try await runSluice(["drains", "list"], environment: environment)
        #expect(empty.stdout == "No drains.\n", "\(empty.stdout)")

        // A new key, read on SIGHUP without a restart: the old admin token
        // is refused, one signed with the new key is taken.
        let keyPath = home.appendingPathComponent("token-key").path
        try FileManager.default.removeItem(atPath: keyPath)
        try TokenIssuer.ensureSecret(at: keyPath)
        kill(process.processIdentifier, SIGHUP)
        let fresh = try await runSluice(["token", "create", "--admin"], environment: environment)
        let freshToken = fresh.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let url = try HTTPURL(parsing: controller.http).with(path: "/apps/up-app/recentlogs")
        #expect(await waitUntil(timeout: .seconds(10)) {
            (try? await HTTPClient.get(url, headers: [("Authorization", "Bearer \(freshToken)")]))?.status == .ok
        })
        let stale = try await runSluice(["logs", "up-app", "--recent"], environment: environment)
        #expect(stale.status != 0 && stale.stderr.contains("signature does not verify"), "\(stale.stderr)")

        process.terminate()  // SIGTERM
        try waitForExit(process, timeout: .seconds(60), "after SIGTERM, sluice up")
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        try? FileManager.default.removeItem(at: home)
    }

    /// `sluice up` takes the options the role commands take, from the same
    /// place: here, how many lines each server keeps per app.
    @Test func upTakesTheServersOptions() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-up-options-\(getpid())")
        let (process, out) = try startSluiceUp(
            home: home,
            [
                "--servers", "1", "--http-port", "0", "--ingress-port", "0", "--no-agent", "--recent-per-app", "3",
                "--tail-queue", "50", "--drain-queue", "7", "--log-level", "warning",
            ])
        defer {
            stopProcess(process, grace: .seconds(10))
            try? FileManager.default.removeItem(at: home)
        }
        _ = try read(out, timeout: .seconds(60)) { $0.contains("Ctrl-C stops it.") }
        let environment = ["SLUICE_HOME": home.path]
        let emit = try await runSluice(["emit", "--app", "kept"], stdin: "1\n2\n3\n4\n5\n", environment: environment)
        #expect(emit.status == 0, "\(emit.stderr)")
        let logs = try await runSluice(["logs", "kept", "--recent"], environment: environment)
        let kept: [String] = logs.stdout.split(separator: "\n").map { line in String(line.split(separator: " ").last ?? "") }
        #expect(kept == ["3", "4", "5"], "\(logs.stdout)")
    }

    /// A command that fails while running says why in plain words, and not
    /// with the usage text a mistyped flag gets.
    @Test func runtimeFailuresAreSaidPlainlyWithoutUsage() async throws {
        let port = try ProcessCluster.freePort()
        let logs = try await runSluice(["logs", "nobody", "--recent", "--controller", "http://127.0.0.1:\(port)"])
        #expect(logs.status != 0)
        #expect(logs.stderr.contains("cannot reach 127.0.0.1:\(port): connection refused"), "\(logs.stderr)")
        #expect(!logs.stderr.contains("Usage:"), "\(logs.stderr)")
        let emit = try await runSluice(["emit", "--app", "a", "--controller", "127.0.0.1:\(port)", "hello"])
        #expect(emit.status != 0)
        #expect(emit.stderr.contains("no controller answered at 127.0.0.1:\(port): connection refused"), "\(emit.stderr)")
        #expect(!emit.stderr.contains("Usage:"), "\(emit.stderr)")
        let drains = try await runSluice(["drains", "list", "--controller", "http://127.0.0.1:\(port)"])
        #expect(drains.stderr.contains("cannot reach 127.0.0.1:\(port): connection refused"), "\(drains.stderr)")
        #expect(!drains.stderr.contains("Usage:"), "\(drains.stderr)")
        // A mistyped flag still gets the usage.
        let typo = try await runSluice(["logs", "nobody", "--controler", "x"])
        #expect(typo.status != 0 && typo.stderr.contains("Usage:"), "\(typo.stderr)")
    }

    /// Processes started at the same moment on one new SQLite bindings file
    /// (as `bin/bench` and `bin/cluster` start a controller and its
    /// servers) all open it: none exits with "database is locked".
    @Test func serversStartedTogetherAllOpenOneNewBindingsFile() async throws {
        for round in 0..<3 {
            let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-together-\(getpid())-\(round)")
            try? FileManager.default.removeItem(at: home)
            try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: home) }
            let bindings = home.appendingPathComponent("bindings.sqlite").path
            var started: [Process] = []
            defer { for process in started { stopProcess(process) } }
            for _ in 0..<6 {
                let process = Process()
                process.executableURL = sluiceExecutable()
                // Port 0 for metrics too: the port is read from the log, so
                // no other test can take it between choosing and binding.
                process.arguments = [
                    "server", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--bindings", bindings,
                    "--log-level", "info",
                ]
                // What a server says, kept to find its metrics port and to be
                // shown if it exits.
                let log = home.appendingPathComponent("server-\(started.count).log")
                _ = FileManager.default.createFile(atPath: log.path, contents: nil)
                process.standardError = try FileHandle(forWritingTo: log)
                started.append(process)
            }
            for process in started { try process.run() }
            for (index, process) in started.enumerated() {
                let logPath = home.appendingPathComponent("server-\(index).log")
                func said() -> String { (try? String(contentsOf: logPath, encoding: .utf8)) ?? "" }
                let healthy = await waitUntil(timeout: .seconds(30)) {
                    guard process.isRunning else { return true }
                    guard let port = Self.metricsPort(inLog: said()) else { return false }
                    let health = HTTPURL(host: "127.0.0.1", port: port, path: "/healthz")
                    return (try? await HTTPClient.get(health))?.status == .ok
                }
                #expect(healthy && process.isRunning, "round \(round): a server exited at start: \(said())")
            }
        }
    }

    /// The port a server's log says its metrics listen on (`--metrics
    /// 127.0.0.1:0`, `--log-level info`).
    static func metricsPort(inLog log: String) -> Int? {
        guard let line = log.split(separator: "\n").first(where: { $0.contains("metrics listening") }),
            let range = line.range(of: "sluice.address=127.0.0.1:")
        else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    /// A buffer server run alone serves its metrics, drains' among them.
    @Test func aServerServesItsMetricsWithItsDrains() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-metrics-\(getpid())")
        try? FileManager.default.removeItem(at: home)
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let bindingsPath = home.appendingPathComponent("bindings.sqlite").path
        let bindings = try SQLiteBindingStore(path: bindingsPath)
        let process = Process()
        process.executableURL = sluiceExecutable()
        process.arguments = [
            "server", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--bindings", bindingsPath,
            "--log-level", "info",
        ]
        let log = home.appendingPathComponent("server.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        defer {
            stopProcess(process, grace: .seconds(10))
            try? FileManager.default.removeItem(at: home)
        }
        var metricsPort = 0
        #expect(await waitUntil(timeout: .seconds(20)) {
            metricsPort = Self.metricsPort(inLog: (try? String(contentsOf: log, encoding: .utf8)) ?? "") ?? 0
            return metricsPort != 0
        })
        let metrics = HTTPURL(host: "127.0.0.1", port: metricsPort, path: "/metrics")
        let binding = try await bindings.add(app: "metrics-app", url: "syslog://127.0.0.1:9", name: nil)
        var text = ""
        let shown = await waitUntil(timeout: .seconds(20)) {
            guard let response = try? await HTTPClient.get(metrics), response.status == .ok else { return false }
            text = String(buffer: response.body)
            return text.contains("sluice_server_drain_envelopes_sent_total{drain=\"\(binding.id)\"}")
        }
        #expect(shown, "\(text)")
        // Idle, it has sent nothing and failed nothing: up, not a false alert.
        #expect(text.contains("sluice_server_drain_up{drain=\"\(binding.id)\"} 1"), "\(text)")
        #expect(text.contains("sluice_server_envelopes_stored_total"))
        let missing = try await HTTPClient.get(metrics.with(path: "/nope"))
        #expect(missing.status == .notFound)
        await bindings.close()
    }

    @Test func logsSaysOnStderrThatItRetriesWithBackoff() async throws {
        // A port with nothing listening: bind one, note it, close it.
        let socket = try ProcessCluster.freePort()
        let process = Process()
        process.executableURL = sluiceExecutable()
        process.arguments = ["logs", "nobody", "--controller", "http://127.0.0.1:\(socket)"]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { stopProcess(process) }
        // 500 ms, then 1 s: two retries are announced within about 1.5 s.
        let text = try read(err) { $0.components(separatedBy: "retrying in").count >= 3 }
        process.terminate()
        try waitForExit(process, timeout: .seconds(30), "after SIGTERM, sluice logs")
        // Said in plain words: what could not be reached and why.
        #expect(text.contains("sluice: cannot reach 127.0.0.1:\(socket): connection refused; retrying in 500 ms"), "\(text)")
        #expect(!text.contains("NIOConnectionError") && !text.contains("errno"), "\(text)")
        #expect(text.contains("retrying in 500 ms"), "\(text)")
        #expect(text.contains("retrying in 1 s"), "\(text)")
    }
}
