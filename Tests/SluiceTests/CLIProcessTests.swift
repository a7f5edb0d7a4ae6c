import Foundation
import NIOCore
import NIOHTTP1
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
        try? FileManager.default.removeItem(at: home)
        let process = Process()
        process.executableURL = sluiceExecutable()
        process.arguments = [
            "up", "--servers", "2", "--http-port", "0", "--ingress-port", "0", "--agent-port", "0", "--syslog-port", "0",
            "--agent-http-port", "0", "--log-level", "warning",
        ]
        process.environment = ProcessInfo.processInfo.environment.merging(["SLUICE_HOME": home.path]) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()

        // Wait for the banner, which is printed once everything listens.
        let banner = read(out) { $0.contains("Ctrl-C stops it.") }
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

        process.terminate()  // SIGTERM
        process.waitUntilExit()
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        try? FileManager.default.removeItem(at: home)
    }

    /// A buffer server run alone serves its metrics, drains' among them.
    @Test func aServerServesItsMetricsWithItsDrains() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-metrics-\(getpid())")
        try? FileManager.default.removeItem(at: home)
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        let bindingsPath = home.appendingPathComponent("bindings.sqlite").path
        let bindings = try SQLiteBindingStore(path: bindingsPath)
        let metricsPort = try freeLoopbackPort(udp: false)
        let process = Process()
        process.executableURL = sluiceExecutable()
        process.arguments = [
            "server", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:\(metricsPort)", "--bindings", bindingsPath,
            "--log-level", "warning",
        ]
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(at: home)
        }
        let metrics = HTTPURL(host: "127.0.0.1", port: metricsPort, path: "/metrics")
        let binding = try await bindings.add(app: "metrics-app", url: "syslog://127.0.0.1:9", name: nil)
        var text = ""
        let shown = await waitUntil(timeout: .seconds(20)) {
            guard let response = try? await HTTPClient.get(metrics), response.status == .ok else { return false }
            text = String(buffer: response.body)
            return text.contains("sluice_server_drain_envelopes_sent_total{drain=\"\(binding.id)\"}")
        }
        #expect(shown, "\(text)")
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
        // 500 ms, then 1 s: two retries are announced within about 1.5 s.
        let text = read(err) { $0.components(separatedBy: "retrying in").count >= 3 }
        process.terminate()
        process.waitUntilExit()
        #expect(text.contains("cannot reach http://127.0.0.1:\(socket)/apps/nobody/stream"), "\(text)")
        #expect(text.contains("retrying in 500 ms"), "\(text)")
        #expect(text.contains("retrying in 1 s"), "\(text)")
    }
}
