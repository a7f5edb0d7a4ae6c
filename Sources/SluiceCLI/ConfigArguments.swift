import Foundation

/// A role's arguments from its three sources: the configuration file
/// (`--config FILE`, or `$SLUICE_CONFIG`), the command line, and `SLUICE_*`
/// environment variables. The command line wins over the file, and an
/// environment variable over both (containers set them over an image's
/// arguments). A setting keeps where it came from, so that an error about
/// it names its file and line. An empty variable counts as not set.
public struct ConfigArguments: Sendable {
    /// A role's flags: each long name, and whether it takes no value, one,
    /// or repeats.
    public struct Schema: Sendable {
        public enum Kind: Sendable, Equatable {
            case flag
            case value
            case values
        }

        public var command: String
        public var kinds: [String: Kind]

        public init(command: String, kinds: [String: Kind]) {
            self.command = command
            self.kinds = kinds
        }

        /// `SLUICE_MEMORY_LIMIT` for `memory-limit`.
        public static func environmentName(_ key: String) -> String {
            "SLUICE_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
        }
    }

    /// The arguments to parse: the command line's, less what the
    /// environment overrides, then the environment's and the file's.
    public var arguments: [String]
    /// Where each flag set by the file or the environment came from:
    /// `FILE: line 3: listen` or `SLUICE_LISTEN`.
    public var origins: [String: String]

    /// Keys that are never taken from a file or the environment.
    public static let reserved: Set<String> = ["config", "help", "version"]

    public init(
        commandLine: [String], file: ConfigFile?, environment: [String: String], schema: Schema
    ) throws(ConfigError) {
        var given: [String: [Range<Int>]] = [:]
        var index = 0
        while index < commandLine.count {
            let token = commandLine[index]
            if token == "--" { break }
            guard token.hasPrefix("--") else {
                index += 1
                continue
            }
            let name = String(token.dropFirst(2).prefix { $0 != "=" })
            guard let kind = schema.kinds[name] else {
                index += 1
                continue
            }
            let takesNext = kind != .flag && !token.contains("=") && index + 1 < commandLine.count
            let end = index + (takesNext ? 2 : 1)
            given[name, default: []].append(index..<end)
            index = end
        }
        var dropped = Set<Int>()
        var added: [String] = []
        var origins: [String: String] = [:]
        for key in schema.kinds.keys.sorted() where !Self.reserved.contains(key) {
            let kind = schema.kinds[key]!
            let variable = Schema.environmentName(key)
            // An empty variable is one not set (`SLUICE_BINDINGS=` clears
            // an inherited value), as a shell user expects.
            if let text = environment[variable], !text.isEmpty {
                for range in given[key] ?? [] { dropped.formUnion(range) }
                added += try Self.arguments(key: key, kind: kind, environment: text, variable: variable)
                origins[key] = variable
            } else if given[key] == nil, let setting = file?.setting(key), let file {
                added += try Self.arguments(setting, kind: kind, path: file.path)
                origins[key] = "\(file.path): line \(setting.line): \(key)"
            }
        }
        if let file {
            for setting in file.settings where schema.kinds[setting.key] == nil || Self.reserved.contains(setting.key) {
                throw ConfigError(
                    source: file.path, line: setting.line, key: setting.key,
                    message: "no such setting for sluice \(schema.command) (its keys are its flags: sluice \(schema.command) --help)")
            }
        }
        arguments = added + commandLine.enumerated().filter { !dropped.contains($0.offset) }.map(\.element)
        self.origins = origins
    }

    private static func arguments(_ setting: ConfigFile.Setting, kind: Schema.Kind, path: String) throws(ConfigError) -> [String] {
        let flag = "--" + setting.key
        switch (kind, setting.value) {
        case (.flag, .text(let text)):
            guard let on = Self.boolean(text) else {
                throw ConfigError(source: path, line: setting.line, key: setting.key, message: "'\(text)' is not true or false")
            }
            return on ? [flag] : []
        case (.flag, .list):
            throw ConfigError(source: path, line: setting.line, key: setting.key, message: "expected true or false, not a list")
        case (.value, .text(let text)):
            return ["\(flag)=\(text)"]
        case (.value, .list):
            throw ConfigError(source: path, line: setting.line, key: setting.key, message: "takes one value, not a list")
        case (.values, .text(let text)):
            return ["\(flag)=\(text)"]
        case (.values, .list(let values)):
            return values.map { "\(flag)=\($0)" }
        }
    }

    private static func arguments(key: String, kind: Schema.Kind, environment text: String, variable: String) throws(ConfigError)
        -> [String]
    {
        let flag = "--" + key
        switch kind {
        case .flag:
            guard let on = Self.boolean(text) else {
                throw ConfigError(source: variable, message: "'\(text)' is not true or false")
            }
            return on ? [flag] : []
        case .value:
            return ["\(flag)=\(text)"]
        case .values:
            return text.split(whereSeparator: \.isWhitespace).map { "\(flag)=\($0)" }
        }
    }

    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: return nil
        }
    }

    /// `message` (an error from parsing or checking the arguments) with
    /// the file line or variable of the flag it names, if it names one that
    /// came from there: `c.yaml: line 4: listen: '…' is not an address`.
    public func placing(_ message: String) -> String {
        var best: (position: String.Index, key: String)?
        for key in origins.keys {
            for form in ["--" + key, "'" + key + "'"] {
                var searchStart = message.startIndex
                while let range = message.range(of: form, range: searchStart..<message.endIndex) {
                    let after = range.upperBound
                    let boundary = after == message.endIndex || !(message[after].isLetter || message[after].isNumber || message[after] == "-")
                    if boundary {
                        if best == nil || range.lowerBound < best!.position { best = (range.lowerBound, key) }
                        break
                    }
                    searchStart = after
                }
            }
        }
        guard let best, let origin = origins[best.key] else { return message }
        var rest = message
        for prefix in ["--\(best.key): ", "--\(best.key) "] where rest.hasPrefix(prefix) {
            rest = String(rest.dropFirst(prefix.count))
            break
        }
        return "\(origin): \(rest)"
    }
}
