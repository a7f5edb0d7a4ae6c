import Foundation
import SluiceCLI
import Testing

/// The configuration file (`--config FILE`): its settings with their lines,
/// its cluster part, and how it merges with flags and the environment.
struct ConfigFileTests {
    let schema = ConfigArguments.Schema(
        command: "controller",
        kinds: [
            "config": .value, "zone": .value, "http": .value, "ingress": .value, "servers": .values,
            "token-secret": .values, "no-auth": .flag, "max-frame": .value,
        ])

    @Test func settingsKeepTheirLinesAndAMappingIsZoneEntries() throws {
        let file = try ConfigFile(
            parsing: """
                # a controller
                role: controller
                zone: z2
                servers:
                  z1: dns+srv://_sluice._tcp.sluice-server-z1.sluice.svc.cluster.local
                  z2: [10.0.2.10:9001, 10.0.2.11:9001]
                token-secret:
                  - /etc/sluice/token/key
                no-auth: false
                """, path: "c.yaml")
        #expect(file.role == "controller")
        #expect(file.cluster == nil)
        #expect(file.setting("zone") == .init(key: "zone", line: 3, value: .text("z2")))
        #expect(
            file.setting("servers")?.value
                == .list(["z1=dns+srv://_sluice._tcp.sluice-server-z1.sluice.svc.cluster.local", "z2=10.0.2.10:9001,10.0.2.11:9001"]))
        #expect(file.setting("servers")?.line == 4)
        #expect(file.setting("token-secret")?.value == .list(["/etc/sluice/token/key"]))
        #expect(file.setting("no-auth") == .init(key: "no-auth", line: 9, value: .text("false")))
    }

    @Test func mistakesAreSaidWithTheirLine() {
        func error(_ text: String) -> String {
            do {
                _ = try ConfigFile(parsing: text, path: "f.yaml")
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(error("zone: z1\nzone: z2\n") == "f.yaml: line 1: zone: given twice in the mapping that starts here")
        #expect(error("zone: z1\nlisten:\n") == "f.yaml: line 2: listen: has no value")
        #expect(error("role: drain\n") == "f.yaml: line 1: role: 'drain' is not a role; expected one of server, controller, agent, up")
        #expect(error("- a\n- b\n") == "f.yaml: line 1: expected a mapping of settings (key: value)")
        #expect(error("zone: z1\n  listen: [a\n").hasPrefix("f.yaml: line 2: not YAML: "))
        #expect(error("servers:\n  z1: [[a]]\n") == "f.yaml: line 2: servers.z1[0]: expected a value, not a list or mapping")
    }

    @Test func aClusterIsReadInEitherSpellingAndItsErrorsArePlaced() throws {
        let text = """
            zones:
              - name: z1
                servers:
                  - name: s1
                    listen: 127.0.0.1:9001
                    memory-limit: 64MiB
                  - name: s2
                    listen: 127.0.0.1:9002
                    recentPerApp: 50
                controllers:
                  - {name: c1, ingress: 127.0.0.1:8090, http: 127.0.0.1:8080}
            """
        let cluster = try #require(try ConfigFile(parsing: text, path: "c.yaml").cluster)
        #expect(cluster.zones[0].servers[0].memoryLimit == "64MiB")
        #expect(cluster.zones[0].servers[1].recentPerApp == 50)
        #expect(cluster.member(named: "c1") != nil)

        func error(_ text: String) -> String {
            do {
                _ = try ConfigFile(parsing: text, path: "c.yaml")
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(
            error(text.replacingOccurrences(of: "127.0.0.1:9002", with: "127.0.0.1:70000"))
                == "c.yaml: line 8: zones[0].servers[1].listen: '127.0.0.1:70000' is not an address: the port must be a number from 0 to 65535")
        #expect(
            error(text.replacingOccurrences(of: "name: s2", with: "name: s1"))
                == "c.yaml: line 7: zones[0].servers[1].name: the name s1 is used twice (also at zones[0].servers[0])")
        #expect(error(text.replacingOccurrences(of: "64MiB", with: "lots")).hasPrefix("c.yaml: line 6: zones[0].servers[0].memory-limit: 'lots' is not a size"))
        #expect(error(text.replacingOccurrences(of: "        listen: 127.0.0.1:9001\n", with: "")) == "c.yaml: line 4: zones[0].servers[0]: needs 'listen'")
        #expect(error(text.replacingOccurrences(of: "50", with: "many")) == "c.yaml: line 9: zones[0].servers[1].recent-per-app: expected a whole number")
    }

    @Test func aConvertedClusterReadsBackTheSame() throws {
        let cluster = ClusterConfig.generate(zones: 2, serversPerZone: 2, httpPort: 8080, ingressPort: 8090)
        var withLimits = cluster
        withLimits.zones[1].servers[0].memoryLimit = "1GiB"
        withLimits.zones[1].servers[0].recentPerApp = 5
        let yaml = try ConfigFile.yaml(of: withLimits)
        #expect(yaml.contains("memory-limit: 1GiB") && yaml.contains("recent-per-app: 5"), "\(yaml)")
        #expect(try ConfigFile(parsing: yaml, path: "x").cluster == withLimits)
    }

    @Test func theCommandLineWinsOverTheFileAndTheEnvironmentOverBoth() throws {
        let file = try ConfigFile(
            parsing: "zone: z1\nhttp: 0.0.0.0:8080\ningress: 0.0.0.0:8090\nservers: {z1: [a:1, b:2]}\ntoken-secret: [/k1, /k2]\nno-auth: true\n",
            path: "c.yaml")
        let merged = try ConfigArguments(
            commandLine: ["--config", "c.yaml", "--http", "127.0.0.1:1", "--ingress=127.0.0.1:2", "--max-frame", "1MiB"],
            file: file, environment: ["SLUICE_INGRESS": "127.0.0.1:3", "SLUICE_TOKEN_SECRET": "/e1 /e2", "OTHER": "x"], schema: schema)
        #expect(
            merged.arguments == [
                "--ingress=127.0.0.1:3", "--no-auth", "--servers=z1=a:1,b:2", "--token-secret=/e1", "--token-secret=/e2", "--zone=z1",
                "--config", "c.yaml", "--http", "127.0.0.1:1", "--max-frame", "1MiB",
            ])
        #expect(merged.origins["zone"] == "c.yaml: line 1: zone")
        #expect(merged.origins["ingress"] == "SLUICE_INGRESS")
        #expect(merged.origins["http"] == nil)
        let off = try ConfigArguments(commandLine: [], file: file, environment: ["SLUICE_NO_AUTH": "false"], schema: schema)
        #expect(!off.arguments.contains("--no-auth"))
        // An empty variable is one not set: the file's value holds.
        let empty = try ConfigArguments(commandLine: [], file: file, environment: ["SLUICE_ZONE": ""], schema: schema)
        #expect(empty.arguments.contains("--zone=z1") && empty.origins["zone"] == "c.yaml: line 1: zone")
    }

    @Test func aSettingOfTheWrongShapeOrNameIsRefusedWithItsLine() throws {
        func error(_ text: String, environment: [String: String] = [:]) throws -> String {
            let file = try ConfigFile(parsing: text, path: "c.yaml")
            do {
                _ = try ConfigArguments(commandLine: [], file: file, environment: environment, schema: schema)
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(try error("zone: [z1, z2]\n") == "c.yaml: line 1: zone: takes one value, not a list")
        #expect(try error("zone: z1\nno-auth: sometimes\n") == "c.yaml: line 2: no-auth: 'sometimes' is not true or false")
        #expect(
            try error("zone: z1\nlisten: x\n")
                == "c.yaml: line 2: listen: no such setting for sluice controller (its keys are its flags: sluice controller --help)")
        #expect(try error("config: other.yaml\n").hasPrefix("c.yaml: line 1: config: no such setting"))
        #expect(try error("zone: z1\n", environment: ["SLUICE_NO_AUTH": "maybe"]) == "SLUICE_NO_AUTH: 'maybe' is not true or false")
    }

    @Test func anErrorAboutASettingNamesWhereItCameFrom() throws {
        let file = try ConfigFile(parsing: "zone: z1\n\nhttp: 0.0.0.0:99999\n", path: "c.yaml")
        let merged = try ConfigArguments(
            commandLine: [], file: file, environment: ["SLUICE_MAX_FRAME": "big"], schema: schema)
        #expect(
            merged.placing("--http: '0.0.0.0:99999' is not an address: the port must be a number from 0 to 65535")
                == "c.yaml: line 3: http: '0.0.0.0:99999' is not an address: the port must be a number from 0 to 65535")
        #expect(merged.placing("--max-frame: 'big' is not a size") == "SLUICE_MAX_FRAME: 'big' is not a size")
        #expect(merged.placing("--http-tls-cert needs --http-tls-key") == "--http-tls-cert needs --http-tls-key")
        #expect(merged.placing("--ingress: bad") == "--ingress: bad")
    }
}
