import Foundation
import JWTKit
import NIOCore
import NIOHTTP1
import SluiceAuth
import SluiceBindings
import SluiceCLI
import Testing

/// Every read answers to a token (issue 11): real keys made by openssl,
/// real tokens, a real controller on loopback.
@Suite(.serialized) struct AuthTests {
    /// Keys of every kind a controller takes, in a directory of their own.
    struct Keys {
        let directory: URL
        let secret: String
        let otherSecret: String
        let rsaPrivate: String
        let jwks: String
        let ecPrivate: String
        let ecPublic: String

        static func make() throws -> Keys {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-auth-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
            guard let openssl = findProgram("openssl") else { throw DrainPeerError("openssl is not installed") }
            func run(_ arguments: [String]) throws -> String {
                let result = try runProgram(openssl, arguments)
                guard result.status == 0 else { throw DrainPeerError("openssl \(arguments): \(result.stderr)") }
                return result.stdout
            }
            let keys = Keys(
                directory: directory, secret: path("secret"), otherSecret: path("other-secret"),
                rsaPrivate: path("rsa.pem"), jwks: path("jwks.json"), ecPrivate: path("ec.pem"), ecPublic: path("ec-pub.pem"))
            try TokenIssuer.ensureSecret(at: keys.secret)
            try TokenIssuer.ensureSecret(at: keys.otherSecret)
            _ = try run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", keys.rsaPrivate])
            _ = try run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", keys.ecPrivate])
            _ = try run(["pkey", "-in", keys.ecPrivate, "-pubout", "-out", keys.ecPublic])
            // The JWKS a UAA would publish for the RSA key: n from openssl's
            // modulus, e 65537.
            let modulus = try run(["rsa", "-in", keys.rsaPrivate, "-noout", "-modulus"])
                .trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "Modulus=", with: "")
            var bytes: [UInt8] = []
            var index = modulus.startIndex
            while index < modulus.endIndex {
                let next = modulus.index(index, offsetBy: 2)
                bytes.append(UInt8(modulus[index..<next], radix: 16)!)
                index = next
            }
            let n = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            try #"{"keys":[{"kty":"RSA","kid":"uaa-key-1","alg":"RS256","use":"sig","n":"\#(n)","e":"AQAB"}]}"#
                .write(toFile: keys.jwks, atomically: true, encoding: .utf8)
            return keys
        }

        var settings: TokenSettings {
            TokenSettings(secretFiles: [secret], publicKeyFiles: [ecPublic], jwksFiles: [jwks])
        }

        func remove() { try? FileManager.default.removeItem(at: directory) }
    }

    /// A cluster whose controller checks tokens with `keys`.
    static func cluster(_ keys: Keys, settings: TokenSettings? = nil, check: Authorizer.ExternalCheck? = nil) async throws
        -> TestCluster
    {
        let verifier = try await TokenVerifier(settings: settings ?? keys.settings)
        let store = try SQLiteBindingStore(path: keys.directory.appendingPathComponent("bindings.sqlite").path)
        return try await TestCluster.start(
            bindings: store, authorizer: Authorizer(verifier: verifier, check: check ?? AuthorizeCheck.http()))
    }

    static func token(_ keys: Keys, admin: Bool = false, apps: [String] = [], key: String? = nil, ttl: TimeInterval = 3600, now: Date = Date())
        async throws -> String
    {
        try await TokenIssuer.create(keyFile: key ?? keys.secret, admin: admin, apps: apps, ttl: ttl, now: now)
    }

    static func get(_ cluster: TestCluster, _ path: String, token: String?) async throws -> HTTPClient.Response {
        try await HTTPClient.get(cluster.http.with(path: path), headers: HTTPClient.bearer(token))
    }

    /// The status a websocket tail gets: 101 if it was taken.
    static func tailStatus(_ cluster: TestCluster, app: String, header: String? = nil, query: String? = nil) async -> Int {
        let path = "/apps/\(app)/stream" + (query.map { "?access_token=\($0)" } ?? "")
        do {
            let client = try await WebSocketClient.connect(
                cluster.http.with(path: path), headers: HTTPClient.bearer(header)
            ) { _ in }
            await client.close()
            return 101
        } catch let refused as WebSocketRefused {
            return refused.status ?? -1
        } catch {
            return -2
        }
    }

    static func body(_ response: HTTPClient.Response) -> [String: String] {
        (try? JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: String]) ?? [:]
    }

    @Test func noTokenOrABadOneIs401WithTheReason() async throws {
        let keys = try Keys.make()
        defer { keys.remove() }
        let cluster = try await Self.cluster(keys)
        let missing = try await Self.get(cluster, "/apps/a/recentlogs", token: nil)
        #expect(missing.status == .unauthorized)
        #expect(missing.headers.first(name: "WWW-Authenticate") == #"Bearer realm="sluice""#)
        #expect(Self.body(missing)["error"] == "unauthorized")
        #expect(try await Self.get(cluster, "/healthz", token: nil).status == .ok)
        #expect(try await Self.get(cluster, "/metrics", token: nil).status == .ok)

        let now = Date()
        // exp an hour ago.
        let expired = try await Self.token(keys, admin: true, now: now.addingTimeInterval(-7200))
        // nbf in ten minutes, signed with the right secret.
        let early = JWTKeyCollection()
        await early.add(hmac: HMACKey(from: try String(contentsOfFile: keys.secret, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)), digestAlgorithm: .sha256)
        let notYet = try await early.sign(TokenClaims(exp: now.addingTimeInterval(3600), nbf: now.addingTimeInterval(600), scope: ["sluice.admin"]))
        // The right secret, an algorithm not configured.
        let hs384 = JWTKeyCollection()
        await hs384.add(hmac: HMACKey(from: try String(contentsOfFile: keys.secret, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)), digestAlgorithm: .sha384)
        let wrongAlgorithm = try await hs384.sign(TokenClaims(exp: now.addingTimeInterval(3600), scope: ["sluice.admin"]))
        // No signature at all.
        func base64URL(_ text: String) -> String {
            Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let unsigned = base64URL(#"{"alg":"none","typ":"JWT"}"#) + "." + base64URL(#"{"exp":\#(Int(now.timeIntervalSince1970) + 3600),"scope":["sluice.admin"]}"#) + "."
        let cases: [(String, String)] = [
            (try await Self.token(keys, admin: true, key: keys.otherSecret), "signature does not verify"),
            (expired, "token expired"),
            (notYet, "token not yet valid"),
            (wrongAlgorithm, "algorithm HS384 is not accepted (this controller takes ES256, HS256, RS256)"),
            (unsigned, "algorithm none is not accepted (this controller takes ES256, HS256, RS256)"),
            ("not-a-token", "malformed token"),
        ]
        for (token, reason) in cases {
            let response = try await Self.get(cluster, "/apps/a/recentlogs", token: token)
            #expect(response.status == .unauthorized, "\(reason)")
            #expect(
                response.headers.first(name: "WWW-Authenticate")
                    == #"Bearer realm="sluice", error="invalid_token", error_description="\#(reason)""#)
            #expect(Self.body(response) == ["error": "invalid_token", "message": reason])
            #expect(await Self.tailStatus(cluster, app: "a", header: token) == 401, "\(reason)")
            #expect(await Self.tailStatus(cluster, app: "a", query: token) == 401, "\(reason)")
        }
        #expect(await Self.tailStatus(cluster, app: "a") == 401)
        await cluster.shutdown()
    }

    @Test func aTokenForAppACannotReadTailListOrAddDrainsForAppB() async throws {
        let keys = try Keys.make()
        defer { keys.remove() }
        let cluster = try await Self.cluster(keys)
        try await cluster.emit(app: "app-a", lines: ["a line"])
        try await cluster.emit(app: "app-b", lines: ["b line"])
        let admin = try await Self.token(keys, admin: true)
        let tokenA = try await Self.token(keys, apps: ["app-a"])
        let drainsAdmin = Drains(base: cluster.http, token: admin)
        _ = try await drainsAdmin.add(app: "app-a", url: "syslog://127.0.0.1:9", name: "a-drain")
        _ = try await drainsAdmin.add(app: "app-b", url: "syslog://127.0.0.1:9", name: "b-drain")

        var recentA: [String] = []
        #expect(await waitUntil {
            let response = try? await Self.get(cluster, "/apps/app-a/recentlogs", token: tokenA)
            recentA = response.map { String(buffer: $0.body) }.map { [$0] } ?? []
            return response?.status == .ok && recentA.first?.contains("YSBsaW5l") == true
        })
        let refusedB = try await Self.get(cluster, "/apps/app-b/recentlogs", token: tokenA)
        #expect(refusedB.status == .notFound)
        #expect(Self.body(refusedB) == ["error": "not_found", "message": "resource not found"])
        // Exactly as for an app no one has heard of.
        let nobody = try await Self.get(cluster, "/apps/no-such-app/recentlogs", token: tokenA)
        #expect(nobody.status == .notFound)
        #expect(nobody.body == refusedB.body)

        #expect(await Self.tailStatus(cluster, app: "app-a", header: tokenA) == 101)
        #expect(await Self.tailStatus(cluster, app: "app-a", query: tokenA) == 101)
        #expect(await Self.tailStatus(cluster, app: "app-b", header: tokenA) == 404)
        #expect(await Self.tailStatus(cluster, app: "app-b", query: tokenA) == 404)

        let drainsA = Drains(base: cluster.http, token: tokenA)
        #expect(try await drainsA.list(app: "app-a").map(\.name) == ["a-drain"])
        #expect(try await drainsA.list(app: nil).map(\.name) == ["a-drain"], "only its own apps' drains")
        #expect(try await drainsAdmin.list(app: nil).map(\.name).sorted() == ["a-drain", "b-drain"])
        await #expect(throws: Drains.Failure.self) { _ = try await drainsA.list(app: "app-b") }
        let addB = try await HTTPClient.request(
            .POST, cluster.http.with(path: "/apps/app-b/drains"), headers: [("Authorization", "Bearer \(tokenA)")],
            body: ByteBuffer(string: #"{"url":"syslog://127.0.0.1:9"}"#))
        #expect(addB.status == .notFound)
        let removeB = try await HTTPClient.request(
            .DELETE, cluster.http.with(path: "/apps/app-b/drains/b-drain"), headers: [("Authorization", "Bearer \(tokenA)")])
        #expect(removeB.status == .notFound)
        #expect(try await drainsAdmin.list(app: "app-b").map(\.name) == ["b-drain"])

        // The rate limit is an admin's to change: 403 for its own app, 404 for another.
        let limit = ByteBuffer(string: #"{"bytes_per_second": 1000}"#)
        let own = try await HTTPClient.request(
            .PUT, cluster.http.with(path: "/apps/app-a/log-rate-limit"), headers: [("Authorization", "Bearer \(tokenA)")], body: limit)
        #expect(own.status == .forbidden)
        let other = try await HTTPClient.request(
            .PUT, cluster.http.with(path: "/apps/app-b/log-rate-limit"), headers: [("Authorization", "Bearer \(tokenA)")], body: limit)
        #expect(other.status == .notFound)
        #expect(try await Self.get(cluster, "/apps/app-a/log-rate-limit", token: tokenA).status == .ok)
        let byAdmin = try await HTTPClient.request(
            .PUT, cluster.http.with(path: "/apps/app-b/log-rate-limit"), headers: [("Authorization", "Bearer \(admin)")], body: limit)
        #expect(byAdmin.status == .ok)
        await cluster.shutdown()
    }

    @Test func rs256FromAJWKSWithLogsAdminAndES256FromAPEMAreTaken() async throws {
        let keys = try Keys.make()
        defer { keys.remove() }
        let cluster = try await Self.cluster(keys)
        // As a UAA signs: RS256, its key's kid, Cloud Foundry's admin scope.
        let rsa = JWTKeyCollection()
        await rsa.add(rsa: try Insecure.RSA.PrivateKey(pem: try String(contentsOfFile: keys.rsaPrivate, encoding: .utf8)), digestAlgorithm: .sha256, kid: "uaa-key-1")
        let uaa = try await rsa.sign(TokenClaims(exp: Date().addingTimeInterval(600), scope: ["openid", "logs.admin"]), kid: "uaa-key-1")
        #expect(try await Self.get(cluster, "/apps/anything/recentlogs", token: uaa).status == .ok)
        // A JWKS key without alg is taken as its type implies (RSA: RS256).
        let bare = keys.directory.appendingPathComponent("jwks-no-alg.json").path
        try String(contentsOfFile: keys.jwks, encoding: .utf8).replacingOccurrences(of: #""alg":"RS256","#, with: "")
            .write(toFile: bare, atomically: true, encoding: .utf8)
        #expect(try String(contentsOfFile: bare, encoding: .utf8).contains("alg") == false)
        let fromBare = try await TokenVerifier(settings: TokenSettings(jwksFiles: [bare]))
        #expect(try await fromBare.verify(uaa).get().admin)
        #expect(try await Self.get(cluster, "/drains", token: uaa).status == .ok)
        let limit = try await HTTPClient.request(
            .PUT, cluster.http.with(path: "/apps/anything/log-rate-limit"), headers: [("Authorization", "Bearer \(uaa)")],
            body: ByteBuffer(string: #"{"bytes_per_second": -1}"#))
        #expect(limit.status == .ok)

        let es = try await Self.token(keys, apps: ["ec-app"], key: keys.ecPrivate)
        #expect(TokenVerifierHeader.alg(es) == "ES256")
        #expect(try await Self.get(cluster, "/apps/ec-app/recentlogs", token: es).status == .ok)
        #expect(try await Self.get(cluster, "/apps/other/recentlogs", token: es).status == .notFound)
        // A scope string, space-separated, as some issuers write it, is read too.
        let spaced = JWTKeyCollection()
        await spaced.add(hmac: HMACKey(from: try String(contentsOfFile: keys.secret, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)), digestAlgorithm: .sha256)
        struct Spaced: JWTPayload {
            var exp: ExpirationClaim
            var scope: String
            func verify(using algorithm: some JWTAlgorithm) async throws {}
        }
        let spacedToken = try await spaced.sign(Spaced(exp: .init(value: Date().addingTimeInterval(600)), scope: "openid doppler.firehose"))
        #expect(try await Self.get(cluster, "/apps/x/recentlogs", token: spacedToken).status == .ok)
        await cluster.shutdown()
    }

    @Test func theExternalCheckAllowsDeniesIsCachedAndFailsClosed() async throws {
        let keys = try Keys.make()
        defer { keys.remove() }
        let access = try await AccessServer.start(allowing: ["granted-app"])
        var settings = keys.settings
        settings.authorizeURL = access.urlTemplate
        let cluster = try await Self.cluster(keys, settings: settings)
        let token = try await Self.token(keys, apps: ["own-app"])

        // Its own app: not asked.
        #expect(try await Self.get(cluster, "/apps/own-app/recentlogs", token: token).status == .ok)
        #expect(access.received.isEmpty)
        // Another: asked with the caller's token; yes.
        #expect(try await Self.get(cluster, "/apps/granted-app/recentlogs", token: token).status == .ok)
        #expect(access.received == [.init(path: "/internal/v4/log_access/granted-app", authorization: "Bearer \(token)")])
        // And no.
        #expect(try await Self.get(cluster, "/apps/secret-app/recentlogs", token: token).status == .notFound)
        #expect(access.received.count == 2)
        // A reconnecting tail is answered from the cache.
        #expect(await Self.tailStatus(cluster, app: "granted-app", header: token) == 101)
        #expect(await Self.tailStatus(cluster, app: "secret-app", header: token) == 404)
        #expect(try await Self.get(cluster, "/apps/granted-app/recentlogs", token: token).status == .ok)
        #expect(access.received.count == 2)
        // Down: 503, never yes.
        await access.stop()
        let down = try await Self.get(cluster, "/apps/unknown-app/recentlogs", token: token)
        #expect(down.status == .serviceUnavailable)
        #expect(Self.body(down)["error"] == "authorization_unavailable")
        #expect(await Self.tailStatus(cluster, app: "unknown-app", header: token) == 503)
        await cluster.shutdown()
    }

    /// A Cloud Controller is reached over HTTPS: its certificate is checked
    /// against the CA given, and one that does not check is a failure to
    /// ask (503), never yes.
    @Test func anHTTPSExternalCheckTrustsItsCAAndFailsClosedWithout() async throws {
        let keys = try Keys.make()
        defer { keys.remove() }
        let certificates = try TestCertificates.make(in: keys.directory.appendingPathComponent("tls"))
        let checker = try await HTTPSReceiver.start(certificates: certificates)
        checker.setResponses([200, 404])
        var settings = keys.settings
        settings.authorizeURL = "https://localhost:\(checker.port)/internal/v4/log_access/{app}"
        let token = try await Self.token(keys, apps: ["own-app"])

        let trusting = try await Self.cluster(keys, settings: settings, check: AuthorizeCheck.http(trustRoots: certificates.caPath))
        #expect(try await Self.get(trusting, "/apps/cc-app/recentlogs", token: token).status == .ok)
        #expect(try await Self.get(trusting, "/apps/other-app/recentlogs", token: token).status == .notFound)
        let asked = checker.requests
        #expect(asked.map(\.uri) == ["/internal/v4/log_access/cc-app", "/internal/v4/log_access/other-app"])
        #expect(asked.first?.header("Authorization") == "Bearer \(token)")
        await trusting.shutdown()

        // The system's roots do not know the test CA.
        let untrusting = try await Self.cluster(keys, settings: settings, check: AuthorizeCheck.http())
        #expect(try await Self.get(untrusting, "/apps/cc-app/recentlogs", token: token).status == .serviceUnavailable)
        await untrusting.shutdown()
        try await checker.stop()
    }

    @Test func keysAreReadAgainWithoutARestart() async throws {
        let keys = try Keys.make()
        defer { keys.remove() }
        let verifier = try await TokenVerifier(settings: TokenSettings(secretFiles: [keys.secret]))
        let old = try await Self.token(keys, admin: true)
        let new = try await Self.token(keys, admin: true, key: keys.otherSecret)
        #expect(try await verifier.verify(old).get().admin)
        #expect(await verifier.verify(new) == .failure(TokenRejection("signature does not verify")))
        try FileManager.default.removeItem(atPath: keys.secret)
        try FileManager.default.copyItem(atPath: keys.otherSecret, toPath: keys.secret)
        try await verifier.reload()
        #expect(try await verifier.verify(new).get().admin)
        #expect(await verifier.verify(old) == .failure(TokenRejection("signature does not verify")))
        // A key file gone bad leaves the keys in use.
        try "short".write(toFile: keys.secret, atomically: true, encoding: .utf8)
        await #expect(throws: (any Error).self) { try await verifier.reload() }
        #expect(try await verifier.verify(new).get().admin)
        // A public key is never taken for a shared secret: anyone holding
        // it could make tokens. Nor can it sign one.
        await #expect(throws: (any Error).self) {
            _ = try await TokenVerifier(settings: TokenSettings(secretFiles: [keys.ecPublic]))
        }
        await #expect(throws: TokenIssuer.IssueError.self) {
            _ = try await TokenIssuer.create(keyFile: keys.ecPublic, admin: true, apps: [], ttl: 60)
        }
    }
}

/// The `alg` of a token's header, read by hand.
enum TokenVerifierHeader {
    static func alg(_ token: String) -> String? {
        guard let head = token.split(separator: ".").first else { return nil }
        var base64 = head.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        guard let data = Data(base64Encoded: base64),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["alg"] as? String
    }
}
