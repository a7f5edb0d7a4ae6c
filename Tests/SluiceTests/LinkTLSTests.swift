import CoreMetrics
import Foundation
import Logging
import NIOCore
import Prometheus
import SluiceCLI
import SluiceProto
import SluiceServer
import SluiceShipping
import SluiceTLS
import SluiceTransport
import SluiceWire
import Testing

/// A development CA and every role's certificate in a directory of its own.
struct TLSFixture {
    let directory: String

    init(_ name: String) throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sluice-tls-\(name)-\(UUID().uuidString)").path
        try CertificateDirectory.make(in: directory)
    }

    func files(_ role: String) -> TLSFiles { CertificateDirectory.files(in: directory, role: role) }

    func tls(_ role: String, registry: PrometheusCollectorRegistry? = nil, allowedNames: [String]? = nil) throws -> LinkTLS {
        var files = files(role)
        files.allowedNames = allowedNames
        return try LinkTLS(
            files: files,
            metrics: registry.map { PrometheusMetricsFactory(registry: $0) as any MetricsFactory } ?? NOOPMetricsHandler.instance)
    }

    /// A certificate for `names` from this CA, valid from `from` for `days`,
    /// written as `NAME.pem` and `NAME-key.pem`.
    func issue(_ name: String, names: [String], days: Int, from: Date) throws -> (cert: String, key: String) {
        let ca = try DevelopmentCA(
            certificatePEM: try String(contentsOfFile: "\(directory)/ca.pem", encoding: .utf8),
            keyPEM: try String(contentsOfFile: "\(directory)/ca-key.pem", encoding: .utf8))
        let issued = try ca.issue(names: names, days: days, from: from)
        let cert = "\(directory)/\(name).pem"
        let key = "\(directory)/\(name)-key.pem"
        try issued.certificatePEM.write(toFile: cert, atomically: true, encoding: .utf8)
        try issued.keyPEM.write(toFile: key, atomically: true, encoding: .utf8)
        return (cert, key)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// `openssl s_client` against `endpoint`, its input empty; what it printed.
func opensslClient(_ endpoint: Endpoint, arguments: [String]) throws -> String {
    guard let openssl = findProgram("openssl") else { throw DrainPeerError("openssl is not installed") }
    let command =
        ([openssl, "s_client", "-connect", "\(endpoint.host):\(endpoint.port)"] + arguments).joined(separator: " ")
        + " < /dev/null"
    let result = try runProgram("/bin/sh", ["-c", command], timeout: .seconds(30))
    return result.stdout + result.stderr
}

@Suite(.serialized) struct LinkTLSTests {
    static func lines(_ count: Int, _ tag: String) -> [String] { (1...count).map { "\(tag) line \($0)" } }

    /// `sluice_tls_certificate_expiry_timestamp_seconds{use}`: when the
    /// soonest certificate in use expires, read again with the files.
    @Test func theSoonestExpiryIsAMetricAndFollowsAReload() throws {
        let fixture = try TLSFixture("expiry")
        defer { fixture.remove() }
        let now = Date()
        let issued = try fixture.issue("member", names: ["sluice-server"], days: 30, from: now)
        let registry = PrometheusCollectorRegistry()
        let tls = try LinkTLS(
            files: TLSFiles(cert: issued.cert, key: issued.key, ca: fixture.files("server").ca),
            metrics: PrometheusMetricsFactory(registry: registry), flags: "--tls")
        let line = #"sluice_tls_certificate_expiry_timestamp_seconds{use="--tls"}"#
        let first = try #require(registry.value(of: line))
        #expect(abs(first - now.addingTimeInterval(30 * 86_400).timeIntervalSince1970) < 300, "\(first)")
        _ = try fixture.issue("member", names: ["sluice-server"], days: 3, from: now)
        try tls.reload()
        let second = try #require(registry.value(of: line))
        #expect(abs(second - now.addingTimeInterval(3 * 86_400).timeIntervalSince1970) < 300, "\(second)")
    }

    @Test func everyLineCrossesLinksThatAreMutualTLS() async throws {
        let fixture = try TLSFixture("deliver")
        defer { fixture.remove() }
        let log = LogRecorder()
        let registry = PrometheusCollectorRegistry()
        let cluster = try await TestCluster.start(
            servers: 2,
            tls: (
                try fixture.tls("controller", registry: registry),
                try fixture.tls("server", registry: registry, allowedNames: ["sluice-controller"])
            ),
            logger: log.logger)
        var client = cluster.client
        client.tls = try fixture.tls("client")
        // A live reader: the server streams to the controller over the link.
        let received = Received()
        let tail = try await cluster.tail(app: "tls-a", into: received)
        for app in ["tls-a", "tls-b", "tls-c"] {
            try await client.emit(app: app, lines: Self.lines(300, app))
        }
        for app in ["tls-a", "tls-b", "tls-c"] {
            let recent = try await cluster.recent(app: app)
            #expect(recent.map { String(decoding: $0.log.payload, as: UTF8.self) } == Self.lines(300, app))
        }
        #expect(await received.wait(for: 300))
        await tail.close()
        #expect(!log.entries.contains { $0.message.contains("TLS handshake") && $0.level >= .warning })
        #expect(registry.value(of: #"sluice_tls_handshakes_refused_total{role="server"}"#) == 0)
        #expect(registry.value(of: #"sluice_tls_handshakes_refused_total{role="controller-ingress"}"#) == 0)
        await cluster.shutdown()
    }

    @Test func aClientWithoutACertificateIsRefusedAndCounted() async throws {
        let fixture = try TLSFixture("nocert")
        defer { fixture.remove() }
        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1, tls: (try fixture.tls("controller", registry: nil), try fixture.tls("server")), logger: log.logger)
        defer { Task { await cluster.shutdown() } }
        // A TLS client no one here wrote: it verifies our chain, then is
        // refused for showing no certificate of its own.
        let without = try opensslClient(cluster.ingress, arguments: ["-CAfile", fixture.files("ca").ca, "-ign_eof"])
        #expect(without.contains("Verify return code: 0 (ok)"), "\(without)")
        #expect(without.contains("certificate required"), "\(without)")
        let refused = await log.first { $0.message == "TLS handshake refused" }
        #expect(refused?.metadata["sluice.reason"]?.contains("the client sent no certificate") == true, "\(log.entries)")
        #expect(refused?.metadata["sluice.role"] == "controller-ingress")

        // The same client with the client certificate gets in.
        let client = fixture.files("client")
        let with = try opensslClient(
            cluster.ingress, arguments: ["-CAfile", client.ca, "-cert", client.cert, "-key", client.key])
        #expect(with.contains("Verify return code: 0 (ok)"), "\(with)")
        #expect(!with.contains("alert"), "\(with)")
        #expect(log.entries.filter { $0.message == "TLS handshake refused" }.count == 1, "\(log.entries)")
    }

    @Test func plainFramesAtATLSIngressAreRefusedAndCloseOnlyThatConnection() async throws {
        let fixture = try TLSFixture("plain")
        defer { fixture.remove() }
        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1, tls: (try fixture.tls("controller"), try fixture.tls("server")), logger: log.logger)
        var client = cluster.client
        client.tls = try fixture.tls("client")
        let plain = try await FrameConnection.connect(to: cluster.ingress)
        var builder = BatchFrameBuilder()
        var line = "not encrypted"
        line.withUTF8 {
            builder.appendLog(LogEnvelopeFields(sourceID: "plain"), timestamp: 1, payload: UnsafeRawBufferPointer($0))
        }
        try await plain.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        try await plain.closeFuture.get()
        let refused = await log.first { $0.message == "TLS handshake refused" }
        #expect(refused?.metadata["sluice.reason"]?.contains("the client does not speak TLS") == true, "\(log.entries)")
        // Clients with certificates are served as before.
        try await client.emit(app: "plain", lines: Self.lines(5, "tls"))
        #expect(try await cluster.recent(app: "plain").map { String(decoding: $0.log.payload, as: UTF8.self) } == Self.lines(5, "tls"))
        await cluster.shutdown()
    }

    @Test func refusalsAreCountedInTheMembersMetrics() async throws {
        let fixture = try TLSFixture("count")
        defer { fixture.remove() }
        // The controller's own registry, as its /metrics shows it.
        let log = LogRecorder()
        let registry = PrometheusCollectorRegistry()
        let tlsCluster = try await TestCluster.start(
            servers: 1, tls: (try fixture.tls("controller", registry: registry), try fixture.tls("server")),
            logger: log.logger)
        for _ in 0..<3 {
            _ = try opensslClient(tlsCluster.ingress, arguments: ["-CAfile", fixture.files("ca").ca, "-ign_eof"])
        }
        #expect(
            await waitUntil {
                registry.value(of: #"sluice_tls_handshakes_refused_total{role="controller-ingress"}"#) == 3
            })
        await tlsCluster.shutdown()
    }

    @Test func aCertificateFromAnotherCAIsRefused() async throws {
        let fixture = try TLSFixture("ca")
        let other = try TLSFixture("other")
        defer {
            fixture.remove()
            other.remove()
        }
        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1, tls: (try fixture.tls("controller"), try fixture.tls("server")), logger: log.logger)
        defer { Task { await cluster.shutdown() } }
        // Trusts the controller, but shows a certificate another CA signed.
        let stranger = try LinkTLS(
            files: TLSFiles(cert: other.files("client").cert, key: other.files("client").key, ca: fixture.files("ca").ca))
        // Under TLS 1.3 the client's handshake is done before the server has
        // checked its certificate: the refusal comes as an alert after it.
        let strangerLog = LogRecorder()
        let strangerClient = try? await IngressClient.connect(
            to: [cluster.ingress], tls: stranger.dialer(role: "test", logger: strangerLog.logger))
        let told = await strangerLog.first { $0.message == "TLS handshake with server failed" }
        #expect(told?.metadata["sluice.reason"]?.contains("the server does not trust the CA that signed our certificate") == true, "\(strangerLog.entries)")
        strangerClient?.abort()
        let refused = await log.first { $0.message == "TLS handshake refused" }
        #expect(refused?.metadata["sluice.reason"]?.contains("not signed by a trusted CA") == true, "\(log.entries)")
        #expect(refused?.metadata["sluice.reason"]?.contains("CERTIFICATE_VERIFY_FAILED") == true)

        // One that trusts another CA refuses the controller, and says so.
        let doubter = LogRecorder()
        await #expect(throws: (any Error).self) {
            _ = try await IngressClient.connect(
                to: [cluster.ingress], tls: try other.tls("client").dialer(role: "test", logger: doubter.logger))
        }
        let failed = await doubter.first { $0.message == "TLS handshake with server failed" }
        #expect(failed?.metadata["sluice.reason"]?.contains("the server's certificate is not signed") == true, "\(doubter.entries)")
    }

    @Test func anExpiredCertificateIsRefusedWithItsDate() async throws {
        let fixture = try TLSFixture("expired")
        defer { fixture.remove() }
        let expired = try fixture.issue(
            "expired", names: ["sluice-client"], days: 1, from: Date().addingTimeInterval(-10 * 86400))
        // Sluice will not start with it.
        #expect {
            _ = try LinkTLS(files: TLSFiles(cert: expired.cert, key: expired.key, ca: fixture.files("ca").ca))
        } throws: { "\($0)".contains("expired at") }

        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1, tls: (try fixture.tls("controller"), try fixture.tls("server")), logger: log.logger)
        defer { Task { await cluster.shutdown() } }
        let output = try opensslClient(
            cluster.ingress,
            arguments: ["-CAfile", fixture.files("ca").ca, "-cert", expired.cert, "-key", expired.key, "-ign_eof"])
        #expect(output.contains("alert"), "\(output)")
        let refused = await log.first { $0.message == "TLS handshake refused" }
        let reason = refused?.metadata["sluice.reason"] ?? ""
        #expect(reason.contains("its certificate expired at"), "\(log.entries)")
    }

    @Test func aListenerWithAllowedNamesLetsOnlyThoseIn() async throws {
        let fixture = try TLSFixture("names")
        defer { fixture.remove() }
        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1,
            tls: (try fixture.tls("controller"), try fixture.tls("server", allowedNames: ["sluice-controller"])),
            logger: log.logger)
        defer { Task { await cluster.shutdown() } }
        var client = cluster.client
        client.tls = try fixture.tls("client")
        try await client.emit(app: "names", lines: Self.lines(10, "names"))
        #expect(try await cluster.recent(app: "names").count == 10)

        // The client certificate is from the same CA, but not a controller's.
        let bound = try await cluster.servers[0].bind()
        let files = fixture.files("client")
        _ = try opensslClient(bound, arguments: ["-CAfile", files.ca, "-cert", files.cert, "-key", files.key, "-ign_eof"])
        let refused = await log.first { $0.message == "TLS handshake refused" }
        #expect(
            refused?.metadata["sluice.reason"]?.contains("names sluice-client, localhost") == true, "\(log.entries)")
        #expect(refused?.metadata["sluice.reason"]?.contains("none of the allowed sluice-controller") == true)
        #expect(refused?.metadata["sluice.role"] == "server")
    }

    @Test func aRefusedPeerGetsNothingIn() async throws {
        // The controller shows a certificate from the right CA but not a
        // controller's name: under TLS 1.3 its handshake completes and it
        // sends at once; the server must take none of it.
        let fixture = try TLSFixture("refused-data")
        defer { fixture.remove() }
        let log = LogRecorder()
        let cluster = try await TestCluster.start(
            servers: 1,
            tls: (try fixture.tls("client"), try fixture.tls("server", allowedNames: ["sluice-controller"])),
            logger: log.logger)
        let sender = try await IngressClient.connect(
            to: [cluster.ingress], tls: try fixture.tls("client").dialer(role: "test", logger: .quiet))
        var builder = BatchFrameBuilder()
        for index in 1...50 {
            var line = "should not be stored \(index)"
            line.withUTF8 {
                builder.appendLog(
                    LogEnvelopeFields(sourceID: "refused"), timestamp: WallClock.nowNanos(),
                    payload: UnsafeRawBufferPointer($0))
            }
        }
        try await sender.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        // The link is refused again on each try; after three, nothing is kept.
        #expect(await waitUntil { log.entries.filter { $0.message == "TLS handshake refused" }.count >= 3 })
        #expect(cluster.servers[0].store.totals.envelopes == 0)
        let refused = try #require(log.entries.first { $0.message == "TLS handshake refused" })
        #expect(refused.metadata["sluice.reason"]?.contains("none of the allowed sluice-controller") == true)
        sender.abort()
        await cluster.shutdown()
    }

    @Test func aDiallerGivenAServerNameTakesOnlyThatServer() async throws {
        let fixture = try TLSFixture("server-name")
        defer { fixture.remove() }
        func controllerTLS() throws -> LinkTLS {
            var files = fixture.files("controller")
            files.serverName = "sluice-server"
            return try LinkTLS(files: files)
        }
        // A server showing the agent's certificate: same CA, and it names
        // 127.0.0.1, which is dialled; but it is not sluice-server.
        let log = LogRecorder()
        let impostor = try await TestCluster.start(
            servers: 1, tls: (try controllerTLS(), try fixture.tls("agent")), logger: log.logger)
        let told = await log.first { $0.message == "TLS handshake with server failed" }
        #expect(told?.metadata["sluice.reason"]?.contains("not sluice-server") == true, "\(log.entries)")
        await impostor.shutdown()

        let cluster = try await TestCluster.start(servers: 1, tls: (try controllerTLS(), try fixture.tls("server")))
        var client = cluster.client
        client.tls = try fixture.tls("client")
        try await client.emit(app: "named", lines: Self.lines(5, "named"))
        #expect(try await cluster.recent(app: "named").count == 5)
        await cluster.shutdown()

        var address = fixture.files("controller")
        address.serverName = "127.0.0.1"
        #expect { _ = try LinkTLS(files: address) } throws: { "\($0)".contains("is an address") }
    }

    @Test func filesThatCannotBeUsedAreNamedWithWhy() throws {
        let fixture = try TLSFixture("files")
        defer { fixture.remove() }
        let server = fixture.files("server")
        let client = fixture.files("client")
        func refusal(_ files: TLSFiles) -> String {
            do {
                _ = try LinkTLS(files: files)
                return "taken"
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal(server) == "taken")
        let mismatched = refusal(TLSFiles(cert: server.cert, key: client.key, ca: server.ca))
        #expect(mismatched == "--tls-key \(client.key) is not the key of the certificate in \(server.cert)", "\(mismatched)")
        let missing = refusal(TLSFiles(cert: server.cert, key: server.key, ca: "\(fixture.directory)/nothing.pem"))
        #expect(missing == "--tls-ca \(fixture.directory)/nothing.pem: no such file", "\(missing)")
        let notPEM = "\(fixture.directory)/not.pem"
        try "hello".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let garbled = refusal(TLSFiles(cert: notPEM, key: server.key, ca: server.ca))
        #expect(garbled.hasPrefix("--tls-cert \(notPEM): "), "\(garbled)")
        let keyAsCA = refusal(TLSFiles(cert: server.cert, key: server.key, ca: server.key))
        #expect(keyAsCA.hasPrefix("--tls-ca \(server.key)"), "\(keyAsCA)")
    }

    @Test func newFilesTakeEffectWithoutDroppingLinksThatAreUp() async throws {
        // A CA rotation as docs/security.md tells it: the server trusts the
        // old and the new CA; the controller moves from an old-CA
        // certificate, trusting the old CA, to a new-CA certificate,
        // trusting both.
        let first = try TLSFixture("before")
        let second = try TLSFixture("after")
        let live = try TLSFixture("live")
        defer {
            first.remove()
            second.remove()
            live.remove()
        }
        let firstCA = try String(contentsOfFile: first.files("ca").ca, encoding: .utf8)
        let secondCA = try String(contentsOfFile: second.files("ca").ca, encoding: .utf8)
        let both = "\(live.directory)/both.pem"
        try (firstCA + "\n" + secondCA).write(toFile: both, atomically: true, encoding: .utf8)
        func install(_ from: TLSFixture, ca: String) throws {
            for name in ["controller.pem", "controller-key.pem"] {
                let target = "\(live.directory)/\(name)"
                try? FileManager.default.removeItem(atPath: target)
                try FileManager.default.copyItem(atPath: "\(from.directory)/\(name)", toPath: target)
            }
            try ca.write(toFile: "\(live.directory)/ca.pem", atomically: true, encoding: .utf8)
        }
        try install(first, ca: firstCA)
        let controllerTLS = try live.tls("controller")
        var serverFiles = first.files("server")
        serverFiles.ca = both
        let cluster = try await TestCluster.start(
            servers: 1, tls: (controllerTLS, try LinkTLS(files: serverFiles)), logger: .quiet)

        let log = LogRecorder()
        let sender = try await IngressClient.connect(
            to: [cluster.ingress], logger: log.logger, tls: try first.tls("client").dialer(role: "test", logger: .quiet))
        var builder = BatchFrameBuilder()
        let fields = LogEnvelopeFields(sourceID: "rotate")
        func send(_ lines: [String]) async throws {
            for line in lines {
                var line = line
                line.withUTF8 { builder.appendLog(fields, timestamp: WallClock.nowNanos(), payload: UnsafeRawBufferPointer($0)) }
            }
            try await sender.send(frame: builder.finish(type: .envelopes, sequence: 0)!)
        }
        func recentCount() async -> Int { (try? await cluster.recent(app: "rotate").count) ?? -1 }
        try await send(Self.lines(20, "before"))
        #expect(await waitUntil { await recentCount() == 20 })
        // Before the reload a new-CA client is not taken.
        await #expect(throws: (any Error).self) {
            _ = try await IngressClient.connect(
                to: [cluster.ingress], tls: try second.tls("client").dialer(role: "test", logger: .quiet))
        }

        try install(second, ca: firstCA + "\n" + secondCA)
        try controllerTLS.reload()
        // The link that is up stays up and keeps delivering.
        try await send(Self.lines(20, "after"))
        #expect(await waitUntil { await recentCount() == 40 })
        #expect(!log.entries.contains { $0.message.contains("lost the controller") }, "\(log.entries)")
        try await sender.close()

        // New connections see the new certificate: a new-CA client is
        // taken now.
        let fresh = try await IngressClient.connect(
            to: [cluster.ingress], tls: try second.tls("client").dialer(role: "test", logger: .quiet))
        try await fresh.close()
        await cluster.shutdown()
    }
}
