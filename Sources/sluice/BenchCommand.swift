import ArgumentParser
import Logging
import SluiceCLI
import SluiceWire


struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "The load generator and tail reader that bin/bench runs.",
        shouldDisplay: false, subcommands: [Load.self, Tail.self])

    struct Load: AsyncParsableCommand {
        @Option(help: "Controllers' ingress HOST:PORT, comma-separated, preferred first.")
        var controller: String = "127.0.0.1:8090"
        @Option(help: "App id.") var app: String = "bench-app"
        @Option(help: "Envelopes to send.") var count: Int = 1_000_000
        @Option(help: "Envelopes per second; 0 for as fast as possible.") var rate: Int = 0
        @Option(help: "Envelopes per batch.") var batch: Int = 100
        @Option(help: "Payload bytes per envelope.") var payload: Int = 200
        @OptionGroup(title: "TLS") var tls: TLSOptions

        func run() async throws {
            // Only what goes wrong: a bench runs many loads, and each would
            // say that its links use TLS.
            var logger = Logger(label: "sluice.bench")
            logger.logLevel = .warning
            let result = try await Bench.load(
                controllers: try controller.split(separator: ",").map { try parseEndpoint(String($0), option: "--controller") },
                app: app, count: count, rate: rate,
                batch: batch, payloadBytes: payload,
                tls: try TLSOptions.load(try tls.files(), registry: nil, logger: logger))
            let usage = Bench.resourceUsage()
            print(
                "load sent=\(result.sent) seconds=\(result.seconds) rate=\(Int(Double(result.sent) / result.seconds)) cpu_seconds=\(usage.cpuSeconds) peak_rss=\(usage.peakRSS)"
            )
        }
    }

    struct Tail: AsyncParsableCommand {
        @Option(help: "The controller's HTTP URL.") var controller: String = "http://127.0.0.1:8080"
        @Option(help: "App id.") var app: String = "bench-app"
        @Option(help: "Stop after this many envelopes.") var expect: Int = 1_000_000
        @Option(help: "Stop after this many seconds without an envelope.") var idleTimeout: Double = 5
        @Option(help: "The token to send (default: $SLUICE_TOKEN, else config.json's).") var token: String?
        @Option(help: "PEM CA certificates for an https:// controller.") var ca: String?

        func run() async throws {
            let base = try HTTPURL(parsing: controller)
            let result = try await Bench.tail(
                url: base.with(path: "/apps/\(pathEscape(app))/stream"), token: SluiceConfig.token(token), trustRoots: ca,
                expect: expect,
                idleTimeout: idleTimeout
            ) {
                print("ready")
                Output.flushStandardOutput()
            }
            let usage = Bench.resourceUsage()
            let rate = result.seconds > 0 ? Int(Double(result.received) / result.seconds) : 0
            print(
                "tail received=\(result.received) seconds=\(result.seconds) rate=\(rate) notices=\(result.notices) dropped_reported=\(result.droppedReported) out_of_order=\(result.outOfOrder) cpu_seconds=\(usage.cpuSeconds) peak_rss=\(usage.peakRSS)"
            )
        }
    }
}
