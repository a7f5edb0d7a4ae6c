/// Metadata keys of every log line Sluice writes, in one place, so that one
/// thing is always logged under one name (`sluice.app_id`, never `app_id`).
public enum LogKeys {
    public static let appID = "sluice.app_id"
    public static let remote = "sluice.remote"
    public static let reason = "sluice.reason"
    public static let error = "sluice.error"
    public static let server = "sluice.server"
    public static let zone = "sluice.zone"
    public static let address = "sluice.address"
    public static let count = "sluice.count"
    public static let subscription = "sluice.subscription"
    public static let role = "sluice.role"
    public static let drain = "sluice.drain"
    public static let url = "sluice.url"
    public static let controller = "sluice.controller"
    public static let agent = "sluice.agent"
    public static let limit = "sluice.limit"
    public static let path = "sluice.path"
}
