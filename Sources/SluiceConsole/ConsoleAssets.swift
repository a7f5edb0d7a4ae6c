/// The web console's files, inside the binary: one HTML page, its script
/// and its style sheet. Nothing is fetched from anywhere else, and no
/// script runs inline (the Content-Security-Policy forbids it).
public enum ConsoleAssets {
    public struct Asset: Sendable {
        public var contentType: String
        public var body: String
    }

    /// `ui/console.js` or `ui/console.css` (the path after the base path,
    /// without its leading slash); nil for anything else.
    public static func asset(_ path: String) -> Asset? {
        switch path {
        case "ui/console.js": Asset(contentType: "text/javascript; charset=utf-8", body: ConsoleScript.source)
        case "ui/console.css": Asset(contentType: "text/css; charset=utf-8", body: ConsoleStyle.source)
        default: nil
        }
    }

    /// The page, with its address under `base`.
    public static func page(base: ConsoleBasePath) -> String {
        pageTemplate.replacing("{{BASE}}", with: base.href)
    }

    /// Headers every console answer carries: no script but the console's
    /// own, no framing, no sniffing, no referrer (a tail's URL names the
    /// app). `connect-src 'self'` covers the page's own websockets.
    public static let securityHeaders: [(String, String)] = [
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                + "base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
        ),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-cache"),
    ]

    static let pageTemplate = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Sluice</title>
        <base href="{{BASE}}">
        <link rel="icon" href="data:,">
        <link rel="stylesheet" href="ui/console.css">
        <script src="ui/console.js" defer></script>
        </head>
        <body>
        <header class="top">
          <a class="brand" href="#/apps">Sluice</a>
          <nav>
            <a id="nav-apps" href="#/apps">Apps</a>
            <a id="nav-cluster" href="#/cluster">Cluster</a>
          </nav>
          <span id="who"></span>
          <button id="sign-out" type="button" hidden>Sign out</button>
        </header>
        <div id="message" role="alert" hidden></div>
        <main id="view"><p class="muted">Loading…</p></main>
        <noscript><p>The Sluice console needs JavaScript.</p></noscript>
        </body>
        </html>

        """#
}
