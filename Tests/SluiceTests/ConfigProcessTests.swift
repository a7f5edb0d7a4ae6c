import Foundation
import NIOHTTP1
import SluiceCLI
import Testing

/// The roles run from configuration files (`--config FILE`), as the
/// deployments in deploy/ run them.
@Suite(.serialized)
struct ConfigProcessTests {
    /// Every role's keys are exactly its flags (as `--help` lists them):
    /// a flag added later is a key with nothing more to do.
    @Test func everyFlagOfEveryRoleIsAKeyAndNothingElseIs() async throws {
        for role in ConfigFile.roles {
            let keys = try await runSluice(["config", "keys", role])
            #expect(keys.status == 0, "\(keys.stderr)")
            let listed = Set(keys.stdout.split(separator: "\n").map { String($0.split(separator: "\t")[0]) })
            let help = try await runSluice([role, "--help"])
            #expect(help.status == 0, "\(help.stderr)")
            // An option's own line: two spaces, then `--name` (after `-h, ` for help).
            let flags = Set(
                help.stdout.split(separator: "\n").compactMap { line -> String? in
                    guard line.hasPrefix("  ") else { return nil }
                    var option = line.drop { $0 == " " }
                    if option.hasPrefix("-h, ") { option = option.dropFirst(4) }
                    guard option.hasPrefix("--") else { return nil }
                    return String(option.dropFirst(2).prefix { $0.isLetter || $0.isNumber || $0 == "-" })
                })
            #expect(listed.count > 10, "\(role): \(listed)")
            #expect(listed == flags.subtracting(["help", "config", "version"]), "\(role)")
        }
    }

    @Test func rolesStartFromTheirFilesAndTheEnvironmentWins() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-config-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let serverPort = try freeLoopbackPort(udp: false)
        let ingressPort = try freeLoopbackPort(udp: false)
        let httpPort = try freeLoopbackPort(udp: false)
        let serverFile = directory.appendingPathComponent("server.yaml").path
        try """
        role: server
        zone: z1
        listen: 127.0.0.1:\(serverPort)
        bindings: \(directory.appendingPathComponent("bindings.sqlite").path)
        """.write(toFile: serverFile, atomically: true, encoding: .utf8)
        // The file's http is a port no one listens on: SLUICE_HTTP wins.
        let controllerFile = directory.appendingPathComponent("controller.yaml").path
        try """
        role: controller
        zone: z1
        ingress: 127.0.0.1:\(ingressPort)
        http: 127.0.0.1:9
        servers:
          z1: [127.0.0.1:\(serverPort)]
        bindings: \(directory.appendingPathComponent("bindings.sqlite").path)
        no-auth: true
        """.write(toFile: controllerFile, atomically: true, encoding: .utf8)

        for file in [serverFile, controllerFile] {
            let check = try await runSluice(["config", "check", file])
            #expect(check.status == 0 && check.stdout.contains("ok for sluice"), "\(check.stdout)\(check.stderr)")
        }
        let server = try start(["server", "--config", serverFile], log: directory.appendingPathComponent("server.log"))
        defer { stopProcess(server, grace: .seconds(10)) }
        let controller = try start(
            ["controller", "--config", controllerFile], environment: ["SLUICE_HTTP": "127.0.0.1:\(httpPort)"],
            log: directory.appendingPathComponent("controller.log"))
        defer { stopProcess(controller, grace: .seconds(10)) }

        let ready = await waitUntil(timeout: .seconds(30)) {
            (try? await HTTPClient.get(HTTPURL(host: "127.0.0.1", port: httpPort, path: "/readyz")))?.status == .ok
        }
        let controllerLog = (try? String(contentsOfFile: directory.appendingPathComponent("controller.log").path, encoding: .utf8)) ?? ""
        #expect(ready, "\(controllerLog)")
        let emit = try await runSluice(["emit", "--controller", "127.0.0.1:\(ingressPort)", "--app", "config-app", "from a file"])
        #expect(emit.status == 0, "\(emit.stderr)")
        let logs = try await runSluice(["logs", "config-app", "--recent", "--controller", "http://127.0.0.1:\(httpPort)"])
        #expect(logs.stdout.hasSuffix(" [APP/PROC/WEB/0] OUT from a file\n"), "\(logs.stdout)\(logs.stderr)")
    }

    @Test func aMistakeIsSaidWithItsLineAtStartAndByCheck() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-config-bad-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("server.yaml").path
        try "# a buffer server\nzone: z1\nlisten: 127.0.0.1:70000\n".write(toFile: file, atomically: true, encoding: .utf8)
        let said = "server.yaml: line 3: listen: '127.0.0.1:70000' is not an address: the port must be a number from 0 to 65535"
        let started = try await runSluice(["server", "--config", file])
        #expect(started.status != 0)
        #expect(started.stderr.contains(said), "\(started.stderr)")
        let check = try await runSluice(["config", "check", file, "--role", "server"])
        #expect(check.status == 1)
        #expect(check.stderr.contains(said), "\(check.stderr)")
        // The environment is placed too, and wins over the flag.
        let environment = try await runSluice(
            ["server", "--listen", "127.0.0.1:0", "--memory-limit", "1MiB"], environment: ["SLUICE_MEMORY_LIMIT": "lots"])
        #expect(environment.status != 0)
        #expect(environment.stderr.contains("SLUICE_MEMORY_LIMIT: 'lots' is not a size"), "\(environment.stderr)")
        // check takes the environment only when asked to.
        let good = directory.appendingPathComponent("good.yaml").path
        try "zone: z1\nlisten: 127.0.0.1:0\n".write(toFile: good, atomically: true, encoding: .utf8)
        let alone = try await runSluice(["config", "check", good, "--role", "server"], environment: ["SLUICE_MEMORY_LIMIT": "lots"])
        #expect(alone.status == 0, "\(alone.stderr)")
        let withIt = try await runSluice(
            ["config", "check", good, "--role", "server", "--with-environment"], environment: ["SLUICE_MEMORY_LIMIT": "lots"])
        #expect(withIt.status == 1 && withIt.stderr.contains("SLUICE_MEMORY_LIMIT: 'lots' is not a size"), "\(withIt.stderr)")
        let unknown = try await runSluice(["config", "check", file, "--role", "agent"])
        #expect(unknown.stderr.contains("server.yaml: line 3: listen: "), "\(unknown.stderr)")
    }

    @Test func aJSONClusterFileConvertsToYAMLThatRunsTheSame() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-convert-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = directory.appendingPathComponent("cluster.json").path
        var cluster = ClusterConfig.generate(zones: 2, serversPerZone: 2, httpPort: 0, ingressPort: 0)
        cluster.zones[0].servers[1].memoryLimit = "32MiB"
        try JSONEncoder().encode(cluster).write(to: URL(fileURLWithPath: json))
        let yaml = directory.appendingPathComponent("cluster.yaml").path
        let convert = try await runSluice(["config", "convert", json, "--output", yaml])
        #expect(convert.status == 0, "\(convert.stderr)")
        #expect(try ClusterConfig.load(path: yaml) == cluster)
        let check = try await runSluice(["config", "check", yaml, "--role", "up"])
        #expect(check.status == 0, "\(check.stderr)")
    }

    private func start(_ arguments: [String], environment: [String: String] = [:], log: URL) throws -> Process {
        let process = Process()
        process.executableURL = sluiceExecutable()
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }
}
