import ArgumentParser
import Foundation
import SluiceCLI

/// `sluice ui`: the web console's address, with a one-time sign-in link.
struct UICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Print the web console's address, with a one-time sign-in link for your token.",
        discussion: """
            The link (…/#login=CODE) signs a browser tab in once, within a minute; the token is kept for \
            that tab only and never appears in an address. Behind a reverse proxy, give --controller the \
            proxy's URL with its path (e.g. https://ops.example.com/sluice).
            """)

    @OptionGroup var options: ReaderOptions

    @Flag(help: "Open the link in the desktop's browser too (xdg-open).")
    var open = false

    func run() async throws {
        let link = ConsoleLink(base: try options.base(), token: options.resolvedToken, trustRoots: options.trustRoots)
        let made: (link: String, note: String)
        do {
            made = try await link.make()
        } catch let failure as ConsoleLink.Failure {
            throw CommandFailure(failure.description)
        } catch {
            throw CommandFailure(ErrorText.describe(error))
        }
        print(made.link)
        FileHandle.standardError.write(Data("(\(made.note))\n".utf8))
        guard open else { return }
        guard let opener = ["/usr/bin/xdg-open", "/usr/bin/open"].first(where: FileManager.default.isExecutableFile) else {
            throw CommandFailure("no xdg-open here: open the link above yourself")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: opener)
        process.arguments = [made.link]
        try process.run()
    }
}
