import Foundation
import NIOCore
import NIOHTTP1

/// What the CLI says when a controller refuses it: what is wrong, in plain
/// words, and what to run.
public enum AccessAdvice {
    /// The `message` of a JSON error body, else the body as text.
    public static func apiMessage(_ body: ByteBuffer) -> String? {
        struct APIError: Decodable { var message: String }
        if let error = try? JSONDecoder().decode(APIError.self, from: Data(body.readableBytesView)) {
            return error.message
        }
        let text = String(buffer: body)
        return text.isEmpty ? nil : text
    }

    /// The `error` code of an API error body, if it is one.
    public static func apiCode(_ body: ByteBuffer) -> String? {
        struct APIError: Decodable { var error: String }
        return (try? JSONDecoder().decode(APIError.self, from: Data(body.readableBytesView)))?.error
    }

    /// The advice for a response that refused a request about `app`.
    public static func text(for response: HTTPClient.Response, app: String?, sentToken: Bool) -> String? {
        text(status: Int(response.status.code), message: apiMessage(response.body), app: app, sentToken: sentToken)
    }

    /// The advice for a refusal (401, 403, 404) of a request about `app`
    /// (nil: about every app); nil for any other status.
    public static func text(status: Int, message: String?, app: String?, sentToken: Bool) -> String? {
        switch status {
        case 401 where !sentToken:
            return "the controller needs a token: pass --token TOKEN or set SLUICE_TOKEN "
                + "(sluice up writes an admin token into \(SluiceConfig.path.path); "
                + "an operator makes one with: sluice token create --app APP)"
        case 401:
            return "the controller refused the token: \(message ?? "invalid token"). Get a new one: "
                + "sluice token create \(app.map { "--app \($0)" } ?? "--admin") --key KEYFILE (or restart sluice up "
                + "for a new local admin token), and pass it with --token or SLUICE_TOKEN"
        case 403:
            return "the controller says this token may not do that: \(message ?? "forbidden")"
        // The access check's 404 says only this; a missing drain says which.
        case 404 where app != nil && message == "resource not found":
            return "this token may not read app \(app!), or there is no such app: the token does not name it "
                + "(sluice token create --app \(app!) makes one that does)"
        default:
            return nil
        }
    }
}
