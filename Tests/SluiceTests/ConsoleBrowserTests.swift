import Foundation
import SluiceAuth
import SluiceCLI
import Testing

/// The web console in a real browser: Debian's chromium, headless, driven
/// by Selenium through chromedriver (Tests/Browser/console_browser.py),
/// against two zones of processes whose controllers serve the console
/// under `--ui-base-path /sluice`. The scenarios sign in (by token, by
/// `sluice ui`'s link, with a bad token), tail an app (order, ERR in red,
/// pause and resume, filters, download), show hostile lines as text, show
/// drop notices as banners, add and remove drains beside `sluice drains`,
/// show the cluster; then zone 2's servers are killed and the cluster page
/// and a tail say so. Last, 10,000 lines a second for 10 s into an open
/// tail, with the page's own frame timings. `SLUICE_UPDATE_SCREENSHOTS=1`
/// writes the screenshots into docs/images/.
@Suite(.serialized)
struct ConsoleBrowserTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func theConsoleWorksInARealBrowser() async throws {
        #expect(
            FileManager.default.isExecutableFile(atPath: "/usr/bin/chromedriver"),
            "chromium-driver is not installed (bin/test installs chromium, chromium-driver and selenium)")
        let cluster = try await ProcessCluster.twoZones(controllerArguments: ["--ui-base-path", "/sluice"])
        defer { cluster.stopAll() }
        try await cluster.startAll()
        let z1 = cluster.config.zones[0].controllers[0]
        let appToken = try await TokenIssuer.create(keyFile: cluster.secretPath, admin: false, apps: ["web"], ttl: 3600)
        let expiredToken = try await TokenIssuer.create(
            keyFile: cluster.secretPath, admin: true, apps: [], ttl: 60, now: Date(timeIntervalSinceNow: -3600))
        let screenshots =
            ProcessInfo.processInfo.environment["SLUICE_UPDATE_SCREENSHOTS"] == "1"
            ? Self.repository.appendingPathComponent("docs/images").path
            : cluster.directory.appendingPathComponent("screenshots").path
        let frames = cluster.directory.appendingPathComponent("frames.json").path
        let environment = ProcessInfo.processInfo.environment.merging([
            "SLUICE_BIN": ProcessCluster.binary.path,
            "SLUICE_CONSOLE_URL": "http://\(z1.http)/sluice/",
            "SLUICE_INGRESS": z1.ingress,
            "SLUICE_TOKEN": cluster.token,
            "SLUICE_APP_TOKEN": appToken,
            "SLUICE_EXPIRED_TOKEN": expiredToken,
            "SLUICE_HOME": cluster.directory.path,
            "SLUICE_SCREENSHOTS": screenshots,
            "SLUICE_FRAMES_OUT": frames,
        ]) { $1 }
        let script = Self.repository.appendingPathComponent("Tests/Browser/console_browser.py").path
        let python = findProgram("python3") ?? "/usr/bin/python3"

        let allUp = try runProgram(
            python, [script, "signin", "tail", "hostile", "notices", "drains", "cluster-up"], environment: environment)
        #expect(allUp.status == 0, "\(allUp.stdout)\n\(allUp.stderr)")

        let framesRun = try runProgram(python, [script, "frames"], environment: environment)
        #expect(framesRun.status == 0, "\(framesRun.stdout)\n\(framesRun.stderr)")
        print("console frames: \((try? String(contentsOfFile: frames, encoding: .utf8)) ?? "none recorded")")

        cluster.kill("z2-server-1")
        cluster.kill("z2-server-2")
        let zoneDown = try runProgram(python, [script, "zone-down"], environment: environment)
        #expect(zoneDown.status == 0, "\(zoneDown.stdout)\n\(zoneDown.stderr)")
    }
}
