import SluiceBindings

/// A drain's URL as `sluice drains add` and `POST /apps/{app}/drains`
/// take it. What it shows (`redacted`) is the URL without its credentials
/// and with `***@` in their place: exactly that, whatever they hold.
enum DrainURLTarget: FuzzTarget {
    static let name = "drain-url"

    static func run(_ input: UnsafeRawBufferPointer) {
        let text = String(decoding: input, as: UTF8.self)
        guard let url = try? DrainURL(parsing: text) else { return }
        _ = url.requestTarget
        guard url.userInfo != nil else { return }
        var without = url
        without.userInfo = nil
        let prefix = "\(url.scheme.rawValue)://"
        let expected = prefix + "***@" + without.redacted.dropFirst(prefix.count)
        guard url.redacted == expected else {
            fatalError("the redacted URL is \(url.redacted), not \(expected)")
        }
    }
}
