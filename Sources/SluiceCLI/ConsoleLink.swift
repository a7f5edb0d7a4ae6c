import FoundationEssentials
import NIOCore
import NIOHTTP1

/// `sluice ui`: the web console's address, and with a token a one-time
/// sign-in link (`…/#login=CODE`): the controller trades the code for the
/// token once, within a minute, so the token itself is in no URL.
public struct ConsoleLink: Sendable {
    /// The controller's URL as the reader reaches it (a path after the
    /// host is a reverse proxy's prefix: the console is under it).
    public var base: HTTPURL
    public var token: String?
    public var trustRoots: String?

    public init(base: HTTPURL, token: String?, trustRoots: String? = nil) {
        self.base = base
        self.token = token
        self.trustRoots = trustRoots
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The page's address: the base with a trailing slash.
    public var page: HTTPURL { base.with(path: base.path.hasSuffix("/") ? base.path : base.path + "/") }

    /// What to open: the page, with a sign-in code when there is a token
    /// and the controller checks tokens; and a line saying which.
    public func make() async throws -> (link: String, note: String) {
        guard let token else {
            return (page.description, "no token given (--token, $SLUICE_TOKEN or config.json): the page asks for one")
        }
        let response = try await HTTPClient.request(
            .POST, page.with(path: page.path + "ui/login-codes"), headers: HTTPClient.bearer(token), timeout: .seconds(10),
            trustRoots: trustRoots)
        switch response.status.code {
        case 201:
            struct Code: Decodable {
                var code: String
                var expires_in: Int
            }
            let code = try JSONDecoder().decode(Code.self, from: Data(response.body.readableBytesView))
            return ("\(page)#login=\(code.code)", "the link signs in once, within \(code.expires_in) s; the token stays in that tab only")
        case 404 where AccessAdvice.apiCode(response.body) == "no_tokens":
            return (page.description, "this controller checks no tokens: no sign-in needed")
        case 401:
            throw Failure(description: "the controller refused the token: \(AccessAdvice.apiMessage(response.body) ?? "401")")
        default:
            throw Failure(
                description:
                    "\(response.status.code) \(response.status.reasonPhrase) from \(page): \(AccessAdvice.apiMessage(response.body) ?? "")")
        }
    }
}
