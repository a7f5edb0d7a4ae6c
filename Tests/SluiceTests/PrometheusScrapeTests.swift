import Foundation
import NIOCore
import NIOHTTP1
import SluiceCLI
import SluiceWire
import Testing

/// A real Prometheus (Debian's) scrapes a `sluice up` cluster with the alert
/// rules operators are given (deploy/prometheus/sluice-alerts.yml) and
/// answers a query for one of its counters.
@Suite(.serialized)
struct PrometheusScrapeTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func aRealPrometheusScrapesSluiceUpAndAnswersForItsCounter() async throws {
        let prometheus = try #require(
            findProgram("prometheus"), "prometheus is not installed (bin/test installs Debian's prometheus)")
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-prometheus-\(getpid())")
        defer { try? FileManager.default.removeItem(at: home) }
        let (up, out) = try startSluiceUp(
            home: home,
            [
                "--servers", "2", "--http-port", "0", "--ingress-port", "0", "--no-agent", "--log-level", "warning",
            ])
        defer { stopProcess(up, grace: .seconds(10)) }
        _ = try read(out, timeout: .seconds(60)) { $0.contains("Ctrl-C stops it.") }
        let config = try JSONDecoder().decode(
            SluiceConfig.self, from: Data(contentsOf: home.appendingPathComponent("config.json")))
        let controller = try HTTPURL(parsing: try #require(config.controllers.first).http)

        let lines = (0..<250).map { "line \($0)" }.joined(separator: "\n") + "\n"
        let emit = try await runSluice(["emit", "--app", "prom-app"], stdin: lines, environment: ["SLUICE_HOME": home.path])
        #expect(emit.status == 0, "\(emit.stderr)")

        // Prometheus's own configuration: the controller (whose /metrics is
        // the whole cluster's under sluice up), scraped every second, and
        // the alert rules as shipped.
        let port = try freeLoopbackPort(udp: false)
        let directory = home.appendingPathComponent("prometheus")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let rules = Self.repository.appendingPathComponent("deploy/prometheus/sluice-alerts.yml").path
        let file = directory.appendingPathComponent("prometheus.yml")
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        rule_files: ["\(rules)"]
        scrape_configs:
          - job_name: sluice-controller
            static_configs:
              - targets: ["\(controller.host):\(controller.port)"]
        """.write(to: file, atomically: true, encoding: .utf8)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: prometheus)
        server.arguments = [
            "--config.file=\(file.path)", "--storage.tsdb.path=\(directory.appendingPathComponent("data").path)",
            "--web.listen-address=127.0.0.1:\(port)",
        ]
        let log = directory.appendingPathComponent("prometheus.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        server.standardOutput = handle
        server.standardError = handle
        try server.run()
        defer { stopProcess(server, grace: .seconds(5)) }

        let api = HTTPURL(host: "127.0.0.1", port: port, path: "/api/v1/query")
        let query = "sluice_controller_envelopes_received_total"
        var answer = ""
        let counted = await waitUntil(timeout: .seconds(60)) {
            guard let response = try? await HTTPClient.get(api.with(path: "/api/v1/query?query=\(query)")),
                response.status == .ok
            else { return false }
            answer = String(buffer: response.body)
            return Self.value(in: answer) == 250
        }
        #expect(counted, "\(answer)\n\((try? String(contentsOf: log, encoding: .utf8))?.suffix(2000) ?? "")")
        // The scrape is healthy and the shipped rules loaded, every group.
        let target = try await HTTPClient.get(api.with(path: "/api/v1/query?query=up"))
        #expect(Self.value(in: String(buffer: target.body)) == 1)
        let loaded = try await HTTPClient.get(api.with(path: "/api/v1/rules"))
        let groups = try #require(
            ((try JSONSerialization.jsonObject(with: Data(String(buffer: loaded.body).utf8)) as? [String: Any])?["data"]
                as? [String: Any])?["groups"] as? [[String: Any]])
        #expect(!groups.isEmpty && groups.allSatisfy { ($0["rules"] as? [Any])?.isEmpty == false }, "\(groups)")
    }

    /// The first sample's value in an instant query's JSON answer.
    static func value(in answer: String) -> Double? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any],
            let data = object["data"] as? [String: Any], let result = data["result"] as? [[String: Any]],
            let sample = result.first?["value"] as? [Any], sample.count == 2, let text = sample[1] as? String
        else { return nil }
        return Double(text)
    }
}
