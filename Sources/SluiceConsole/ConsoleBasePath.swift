/// Where the console is served when a reverse proxy puts the controller
/// under a path (`--ui-base-path /sluice`). The page names its own
/// address with `<base href="/sluice/">` and every request it makes is
/// relative to that; the controller takes a request with or without the
/// prefix, so a proxy that strips it and one that passes it on both work.
public struct ConsoleBasePath: Equatable, Sendable, CustomStringConvertible {
    /// `""` for none, else `/a/b` (no trailing slash).
    public let prefix: String

    public static let root = ConsoleBasePath(validated: "")

    private init(validated prefix: String) {
        self.prefix = prefix
    }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// `/`, `""`, `/sluice` or `/sluice/`; letters, digits and `-._~/`
    /// only (it is written into the page and matched against request paths).
    public init(parsing text: String) throws {
        var path = text
        while path.hasSuffix("/") { path.removeLast() }
        if path.isEmpty {
            self = .root
            return
        }
        guard path.hasPrefix("/") else {
            throw Invalid(description: "'\(text)' must begin with / (e.g. /sluice)")
        }
        let allowed = path.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E || byte == 0x2F
        }
        guard allowed, !path.contains("//"), !path.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else {
            throw Invalid(description: "'\(text)' may hold only letters, digits, -._~ and single / between segments")
        }
        // A prefix that begins as an API path would take that path from
        // clients that call the controller directly (`/apps/x/stream`
        // stripped of `/apps`).
        let first = path.split(separator: "/").first.map(String.init) ?? ""
        guard !Self.reserved.contains(first) else {
            throw Invalid(description: "'\(text)' begins with /\(first), a path of the controller's API: choose another (e.g. /sluice)")
        }
        prefix = path
    }

    /// The first segments of the controller's own paths.
    static let reserved: Set<String> = [
        "apps", "ui", "drains", "firehose", "metrics", "healthz", "readyz", "v2", "api", "index.html",
    ]

    /// The page's `<base href>`: the prefix and a slash.
    public var href: String { prefix + "/" }

    public var description: String { href }

    /// `uri` without the prefix, when it begins with it (`/sluice` alone is
    /// `/`); otherwise as it is.
    public func strip(_ uri: String) -> String {
        guard !prefix.isEmpty, uri.hasPrefix(prefix) else { return uri }
        let rest = uri.dropFirst(prefix.count)
        if rest.isEmpty { return "/" }
        guard let first = rest.first, first == "/" || first == "?" else { return uri }
        return first == "?" ? "/" + rest : String(rest)
    }
}
