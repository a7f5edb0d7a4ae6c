import SluiceBindings

/// A drain's URL as `sluice drains add` and `POST /apps/{app}/drains`
/// take it. What it shows (`redacted`) never holds the credentials.
enum DrainURLTarget: FuzzTarget {
    static let name = "drain-url"

    static func run(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        guard let url = try? DrainURL(parsing: text) else { return }
        let shown = url.redacted
        _ = url.requestTarget
        if let userInfo = url.userInfo, userInfo.utf8.count >= 8, !"\(url.host)\(url.path)".contains(userInfo),
            !url.query.contains(where: { $0.name.contains(userInfo) || $0.value.contains(userInfo) }),
            !(url.hostname ?? "").contains(userInfo), !(url.caPath ?? "").contains(userInfo),
            shown.contains(userInfo)
        {
            fatalError("the redacted URL shows its credentials")
        }
    }
}
