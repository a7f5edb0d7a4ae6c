import Foundation
import NIOCore
import SluiceCLI
import SluiceProto
import SluiceTLS
import SluiceWire
import SwiftProtobuf
import Testing

/// The `sluice` executable with TLS: `sluice certs`, and `sluice up --tls`
/// taking lines from the CLI and the agent over mutual TLS, refusing a
/// client without a certificate, and taking a new CA on SIGHUP.
@Suite(.serialized)
struct TLSProcessTests {
    @Test func certsMakesACAAndOneCertificatePerRole() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-certs-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let made = try await runSluice(["certs", directory, "--hosts", "logs.example.internal,10.1.2.3"])
        #expect(made.status == 0, "\(made.stderr)")
        for role in ["ca"] + CertificateDirectory.roles {
            let key = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(role)-key.pem")
            #expect((key[.posixPermissions] as? NSNumber)?.intValue == 0o600, "\(role)-key.pem")
            let cert = try FileManager.default.attributesOfItem(atPath: "\(directory)/\(role).pem")
            #expect((cert[.posixPermissions] as? NSNumber)?.intValue == 0o644, "\(role).pem")
        }
        // openssl, no part of Sluice, takes the chain and reads the names.
        let openssl = try #require(findProgram("openssl"))
        let verify = try runProgram(openssl, ["verify", "-CAfile", "\(directory)/ca.pem", "\(directory)/controller.pem"])
        #expect(verify.stdout.contains("controller.pem: OK"), "\(verify.stdout)\(verify.stderr)")
        let text = try runProgram(openssl, ["x509", "-in", "\(directory)/server.pem", "-noout", "-text"]).stdout
        for name in ["DNS:sluice-server", "DNS:localhost", "IP Address:127.0.0.1", "DNS:logs.example.internal", "IP Address:10.1.2.3"] {
            #expect(text.contains(name), "\(name) in \(text)")
        }
        #expect(text.contains("TLS Web Server Authentication, TLS Web Client Authentication"))

        // Run again, the CA stays and the roles' certificates are made anew.
        let ca = try String(contentsOfFile: "\(directory)/ca.pem", encoding: .utf8)
        let server = try String(contentsOfFile: "\(directory)/server.pem", encoding: .utf8)
        #expect(try await runSluice(["certs", directory]).status == 0)
        #expect(try String(contentsOfFile: "\(directory)/ca.pem", encoding: .utf8) == ca)
        #expect(try String(contentsOfFile: "\(directory)/server.pem", encoding: .utf8) != server)
    }

    @Test func upWithTLSCarriesLinesAndTakesANewCAOnSIGHUP() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-up-tls-\(getpid())")
        defer { try? FileManager.default.removeItem(at: home) }
        let (process, out) = try startSluiceUp(
            home: home,
            [
                "--tls", "--servers", "2", "--http-port", "0", "--ingress-port", "0", "--agent-port", "0",
                "--syslog-port", "0", "--agent-http-port", "0", "--log-level", "warning",
            ])
        defer { stopProcess(process, grace: .seconds(10)) }
        let banner = try read(out, timeout: .seconds(60)) { $0.contains("Ctrl-C stops it.") }
        #expect(banner.contains("every link mutual TLS"), "\(banner)")

        let config = try JSONDecoder().decode(
            SluiceConfig.self, from: Data(contentsOf: home.appendingPathComponent("config.json")))
        let tls = try #require(config.tls)
        #expect(tls.ca == home.appendingPathComponent("tls/ca.pem").path)
        let environment = ["SLUICE_HOME": home.path]
        let emit = try await runSluice(["emit", "--app", "tls-app", "over mutual TLS"], environment: environment)
        #expect(emit.status == 0, "\(emit.stderr)")
        let run = try await runSluice(["run", "--app", "tls-app", "--", "echo", "through the agent"], environment: environment)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(await waitUntil {
            let logs = try? await runSluice(["logs", "tls-app", "--recent"], environment: environment)
            return logs?.stdout.contains("OUT through the agent") == true
        })
        let logs = try await runSluice(["logs", "tls-app", "--recent"], environment: environment)
        #expect(logs.stdout.contains(" [APP/PROC/WEB/0] OUT over mutual TLS\n"), "\(logs.stdout)")

        // Without a certificate, a TLS client no one here wrote is refused,
        // and the refusal is counted on /metrics.
        let ingress = try Endpoint(parsing: try #require(config.controllers.first).ingress)
        _ = try opensslClient(ingress, arguments: ["-CAfile", tls.ca, "-ign_eof"])
        let http = try #require(config.controllers.first).http
        #expect(http.hasPrefix("https://"), "\(http)")
        let metrics = try HTTPURL(parsing: http).with(path: "/metrics")
        #expect(await waitUntil {
            let body = (try? await HTTPClient.get(metrics, trustRoots: tls.ca)).map { String(buffer: $0.body) } ?? ""
            return body.contains(#"sluice_tls_handshakes_refused_total{role="controller-ingress"} 1"#)
        })

        // The HTTP API is HTTPS: curl, no part of Sluice, reads it with the CA.
        let curl = try #require(findProgram("curl"))
        let health = try runProgram(curl, ["-sS", "--cacert", tls.ca, "\(http)/healthz"])
        #expect(health.status == 0 && health.stdout.contains("ok"), "\(health.stdout)\(health.stderr)")
        let plainHTTP = try runProgram(curl, ["-sS", "http://" + http.dropFirst("https://".count) + "/healthz"])
        #expect(plainHTTP.status != 0 || !plainHTTP.stdout.contains("ok"), "\(plainHTTP.stdout)")
        // A websocket over TLS, as sluice logs opens it.
        let received = Received()
        let stream = try await WebSocketClient.connect(
            try HTTPURL(parsing: http).with(path: "/apps/tls-app/stream"), headers: HTTPClient.bearer(config.token),
            trustRoots: tls.ca
        ) { message in
            if case .binary(let bytes) = message,
                let envelope = try? Loggregator_V2_Envelope(serializedBytes: Array(bytes.readableBytesView))
            {
                received.add(envelope)
            }
        }
        #expect(try await runSluice(["emit", "--app", "tls-app", "live over wss"], environment: environment).status == 0)
        #expect(await received.wait(for: 1))
        await stream.close()
        // Trusting another CA, sluice logs stops at once and says why,
        // rather than retrying for ever.
        let otherCA = home.appendingPathComponent("other-ca").path
        #expect(try await runSluice(["certs", otherCA]).status == 0)
        let distrust = try await runSluice(
            ["logs", "tls-app", "--ca", "\(otherCA)/ca.pem"], environment: environment, timeout: .seconds(60))
        #expect(distrust.status != 0)
        #expect(distrust.stderr.contains("TLS with https://"), "\(distrust.stderr)")
        // A new CA and certificates, read on SIGHUP: the CLI's new
        // certificate is taken only once the cluster has read them.
        let tlsDirectory = home.appendingPathComponent("tls").path
        try FileManager.default.removeItem(atPath: tlsDirectory)
        #expect(try await runSluice(["certs", tlsDirectory]).status == 0)
        kill(process.processIdentifier, SIGHUP)
        #expect(await waitUntil(timeout: .seconds(20)) {
            (try? await runSluice(["emit", "--app", "tls-app", "after the new CA"], environment: environment, timeout: .seconds(30)))?.status == 0
        })
        let after = try await runSluice(["logs", "tls-app", "--recent"], environment: environment)
        #expect(after.stdout.contains("OUT after the new CA\n"), "\(after.stdout)")

        process.terminate()
        try waitForExit(process, timeout: .seconds(60), "after SIGTERM, sluice up --tls")
        #expect(process.terminationStatus == 0)
    }
}
