import Foundation
import Logging
import NIOCore
import Prometheus
import SluiceAgent
import SluiceCLI
import SluiceProto
import SluiceTLS
import SluiceTransport
import SluiceWire
import Testing

/// The agent's TLS inputs, fed by senders no one here wrote: rsyslog's
/// syslog-tls (RFC 5425, its OpenSSL stream driver) and curl over HTTPS.
@Suite(.serialized) struct AgentTLSInputTests {
    /// An agent in front of a test cluster with `--syslog-tls` and `--https`.
    static func agent(
        _ cluster: TestCluster, inputTLS: LinkTLS, logger: Logger = .quiet
    ) async throws -> (Agent, Agent.Addresses) {
        let loopback = Endpoint(host: "127.0.0.1", port: 0)
        var configuration = Agent.Configuration(controllers: [cluster.ingress], listen: loopback)
        configuration.syslogTLS = loopback
        configuration.https = loopback
        configuration.inputTLS = inputTLS
        let agent = Agent(configuration: configuration, logger: logger, registry: PrometheusCollectorRegistry())
        return (agent, try await agent.bind())
    }

    @Test func rsyslogSendsOverSyslogTLSAndEveryLineArrivesInOrder() async throws {
        let rsyslogd = try #require(findProgram("rsyslogd"), "rsyslog is not installed (bin/test installs it)")
        let fixture = try TLSFixture("syslog-tls")
        defer { fixture.remove() }
        let cluster = try await TestCluster.start(servers: 1)
        let agentFiles = fixture.files("agent")
        let (agent, addresses) = try await Self.agent(
            cluster, inputTLS: try LinkTLS(servingCert: agentFiles.cert, key: agentFiles.key, flags: "--input-tls"))
        let port = addresses.syslogTLS?.port ?? 0
        #expect(port != 0)
        let received = Received()
        let tail = try await cluster.tail(app: "tls-syslog-app", into: received)

        let directory = URL(fileURLWithPath: fixture.directory).appendingPathComponent("rsyslog")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let lines = (1...2_000).map { "syslog over TLS line \($0)" }
        try (lines.joined(separator: "\n") + "\n").write(
            to: directory.appendingPathComponent("app.log"), atomically: true, encoding: .utf8)
        // rsyslog checks the agent's certificate against the CA and its name.
        let config = """
            global(workDirectory="\(directory.path)"
                   defaultNetstreamDriverCAFile="\(agentFiles.ca)")
            module(load="imfile")
            input(type="imfile" File="\(directory.path)/app.log" Tag="tls-syslog-app" Severity="info" Facility="local0" ruleset="forward")
            ruleset(name="forward") {
              action(type="omfwd" target="127.0.0.1" port="\(port)" protocol="tcp" TCP_Framing="octet-counted"
                     StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
                     StreamDriverPermittedPeers="sluice-agent"
                     template="RSYSLOG_SyslogProtocol23Format")
            }
            """
        let arrived = try await withRsyslogd(rsyslogd, config: config, in: directory) {
            await received.wait(for: lines.count, timeout: .seconds(60))
        }
        #expect(arrived)
        #expect(received.envelopes.map(\.text) == lines)
        await tail.close()
        try await agent.shutdown(timeout: .seconds(1))
        await cluster.shutdown()
    }

    @Test func curlPostsOverHTTPSAndAPlainSenderIsRefused() async throws {
        let curl = try #require(findProgram("curl"))
        let fixture = try TLSFixture("https-input")
        defer { fixture.remove() }
        let cluster = try await TestCluster.start(servers: 1)
        let agentFiles = fixture.files("agent")
        let log = LogRecorder()
        let (agent, addresses) = try await Self.agent(
            cluster, inputTLS: try LinkTLS(servingCert: agentFiles.cert, key: agentFiles.key, flags: "--input-tls"),
            logger: log.logger)
        let https = try #require(addresses.https)
        let received = Received()
        let tail = try await cluster.tail(app: "https-app", into: received)

        let body = octetCounted("<14>1 2026-11-29T10:00:00.000001Z host https-app [APP/PROC/WEB/0] - - over https")
        let post = try runProgram(
            curl,
            [
                "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", agentFiles.ca, "-H",
                "Content-Type: application/logplex-1", "--data-binary", body, "https://127.0.0.1:\(https.port)/logs",
            ])
        #expect(post.stdout == "204", "\(post.stdout) \(post.stderr)")
        #expect(await received.wait(for: 1))
        #expect(received.envelopes.map(\.text) == ["over https"])

        // Plain HTTP at the HTTPS port gets nowhere, and is told in the log.
        let plain = try runProgram(
            curl,
            [
                "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/logplex-1",
                "--data-binary", body, "http://127.0.0.1:\(https.port)/logs",
            ])
        #expect(plain.stdout != "204")
        let refused = await log.first { $0.message == "TLS handshake refused" }
        #expect(refused?.metadata["sluice.role"] == "agent-https")
        #expect(refused?.metadata["sluice.reason"]?.contains("does not speak TLS") == true, "\(log.entries)")
        await tail.close()
        try await agent.shutdown(timeout: .seconds(1))
        await cluster.shutdown()
    }
}
