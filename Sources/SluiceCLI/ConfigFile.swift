import Foundation
import Yams

/// A configuration file (`--config FILE`, YAML; JSON is YAML too): each key
/// a flag's long name without its dashes, as `sluice ROLE --help` lists
/// them (`memory-limit: 256MiB`), a repeatable flag's values as a list, a
/// flag without a value as `true` or `false`. A mapping is a list of
/// `KEY=VALUE,VALUE` entries, as a controller's `servers` takes zones:
/// `servers: {z1: [10.0.0.1:9001], z2: dns+srv://…}`.
///
/// Three keys are not flags: `role` (which command the file is for, for
/// `sluice config check`), and a list `zones` and a mapping `tls`, which describe
/// a whole cluster as `deploy/local/cluster.json` does (its keys in either
/// spelling, `memory-limit` or `memoryLimit`).
public struct ConfigFile: Sendable {
    public enum Value: Equatable, Sendable {
        case text(String)
        case list([String])
    }

    /// One flag's setting, and the line it is on.
    public struct Setting: Equatable, Sendable {
        public var key: String
        public var line: Int
        public var value: Value

        public init(key: String, line: Int, value: Value) {
            self.key = key
            self.line = line
            self.value = value
        }
    }

    public var path: String
    public var settings: [Setting]
    public var role: String?
    /// The cluster the file describes (its `zones`), if it does.
    public var cluster: ClusterConfig?

    public init(path: String, settings: [Setting], role: String? = nil, cluster: ClusterConfig? = nil) {
        self.path = path
        self.settings = settings
        self.role = role
        self.cluster = cluster
    }

    /// The file at `path`, read and checked.
    public static func load(path: String) throws(ConfigError) -> ConfigFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(source: path, message: "cannot read it: \((error as NSError).localizedDescription)")
        }
        return try ConfigFile(parsing: text, path: path)
    }

    public init(parsing text: String, path: String) throws(ConfigError) {
        self.path = path
        self.settings = []
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Self.syntaxError(error, path: path)
        } catch {
            throw ConfigError(source: path, message: "not YAML: \(error)")
        }
        guard let root else { return }
        guard let mapping = root.mapping else {
            throw ConfigError(source: path, line: root.mark?.line, message: "expected a mapping of settings (key: value)")
        }
        var clusterPairs: [(Node, Node)] = []
        for (keyNode, valueNode) in mapping {
            let line = keyNode.mark?.line ?? 0
            guard let key = keyNode.scalar?.string, !key.isEmpty else {
                throw ConfigError(source: path, line: line, message: "a key must be a flag's name")
            }
            // `zones: 3` is `sluice up --zones 3`; a list of zones is a cluster.
            if (key == "zones" && valueNode.scalar == nil) || (key == "tls" && valueNode.mapping != nil) {
                clusterPairs.append((keyNode, valueNode))
                continue
            }
            let value = try Self.value(of: valueNode, key: key, line: line, path: path)
            if key == "role" {
                guard case .text(let role) = value else {
                    throw ConfigError(source: path, line: line, key: key, message: "expected one of \(Self.roles.joined(separator: ", "))")
                }
                guard Self.roles.contains(role) else {
                    throw ConfigError(
                        source: path, line: line, key: key,
                        message: "'\(role)' is not a role; expected one of \(Self.roles.joined(separator: ", "))")
                }
                self.role = role
                continue
            }
            settings.append(Setting(key: key, line: line, value: value))
        }
        if !clusterPairs.isEmpty {
            cluster = try Self.cluster(Node(clusterPairs), path: path)
        }
    }

    /// The roles a file can configure.
    public static let roles = ["server", "controller", "agent", "up"]

    public func setting(_ key: String) -> Setting? { settings.first { $0.key == key } }

    private static func value(of node: Node, key: String, line: Int, path: String) throws(ConfigError) -> Value {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain && (scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null") {
                throw ConfigError(source: path, line: line, key: key, message: "has no value")
            }
            return .text(scalar.string)
        case .sequence(let sequence):
            var values: [String] = []
            for (index, item) in sequence.enumerated() {
                guard let text = item.scalar?.string else {
                    throw ConfigError(
                        source: path, line: item.mark?.line ?? line, key: "\(key)[\(index)]", message: "expected a value, not a list or mapping")
                }
                values.append(text)
            }
            return .list(values)
        case .mapping(let mapping):
            var entries: [String] = []
            for (entryKey, entryValue) in mapping {
                let name = entryKey.scalar?.string ?? ""
                let entryLine = entryKey.mark?.line ?? line
                guard !name.isEmpty, !name.contains("=") else {
                    throw ConfigError(source: path, line: entryLine, key: key, message: "'\(name)' cannot be a name here")
                }
                let values: [String]
                switch try Self.value(of: entryValue, key: "\(key).\(name)", line: entryLine, path: path) {
                case .text(let text): values = [text]
                case .list(let list): values = list
                }
                guard !values.isEmpty else {
                    throw ConfigError(source: path, line: entryLine, key: "\(key).\(name)", message: "has no value")
                }
                entries.append("\(name)=\(values.joined(separator: ","))")
            }
            return .list(entries)
        case .alias:
            throw ConfigError(source: path, line: line, key: key, message: "aliases are not taken; write the value")
        }
    }

    private static func syntaxError(_ error: YamlError, path: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(source: path, line: mark.line, message: "not YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(
                source: path, line: context.mark.line, key: duplicates.sorted().joined(separator: ", "),
                message: "given twice in the mapping that starts here")
        default:
            return ConfigError(source: path, message: "not YAML: \(error)")
        }
    }

    // MARK: The cluster part

    /// `zones` (and a cluster-wide `tls`) decoded, with each error placed on
    /// its line.
    private static func cluster(_ node: Node, path: String) throws(ConfigError) -> ClusterConfig {
        let normalized = renamingKeys(node, camel)
        let cluster: ClusterConfig
        do {
            cluster = try YAMLDecoder().decode(ClusterConfig.self, from: normalized)
        } catch let error as DecodingError {
            let (codingPath, message) = Self.describe(error)
            let keyPath = Self.keyPath(codingPath)
            throw ConfigError(source: path, line: Self.line(of: codingPath, in: normalized), key: keyPath, message: message)
        } catch {
            throw ConfigError(source: path, message: "zones: \(error)")
        }
        do {
            try cluster.validate()
        } catch {
            let line = error.path.isEmpty ? nil : Self.line(of: error.path, in: normalized)
            throw ConfigError(source: path, line: line, key: error.path.isEmpty ? nil : keyPath(error.path), message: error.reason)
        }
        return cluster
    }

    private static func describe(_ error: DecodingError) -> ([any CodingKey], String) {
        switch error {
        case .keyNotFound(let key, let context):
            return (context.codingPath, "needs '\(kebab(key.stringValue))'")
        case .typeMismatch(let type, let context):
            return (context.codingPath, "expected \(type == String.self ? "a value" : type == Int.self ? "a whole number" : "\(type)")")
        case .valueNotFound(_, let context):
            return (context.codingPath, "has no value")
        case .dataCorrupted(let context):
            return (context.codingPath, context.debugDescription)
        @unknown default:
            return ([], "\(error)")
        }
    }

    /// `zones[0].servers[1].listen`.
    static func keyPath(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + kebab(key.stringValue)
            }
        }
        return text
    }

    /// The line of the node at `path`, or of the deepest node on the way.
    static func line(of path: [any CodingKey], in root: Node) -> Int? {
        var node = root
        var line = root.mark?.line
        for key in path {
            if let index = key.intValue, let sequence = node.sequence, index < sequence.count {
                node = sequence[index]
            } else if let mapping = node.mapping,
                let pair = mapping.first(where: { $0.key.scalar?.string == key.stringValue })
            {
                line = pair.key.mark?.line ?? line
                node = pair.value
                continue
            } else {
                break
            }
            line = node.mark?.line ?? line
        }
        return line
    }

    /// `node` with every mapping key renamed by `rename`, at every depth.
    static func renamingKeys(_ node: Node, _ rename: (String) -> String) -> Node {
        switch node {
        case .mapping(var mapping):
            mapping = Node.Mapping(
                mapping.map { pair -> (Node, Node) in
                    guard case .scalar(var scalar) = pair.key else { return (pair.key, renamingKeys(pair.value, rename)) }
                    scalar.string = rename(scalar.string)
                    return (.scalar(scalar), renamingKeys(pair.value, rename))
                }, mapping.tag, mapping.style, mapping.mark)
            return .mapping(mapping)
        case .sequence(var sequence):
            sequence = Node.Sequence(sequence.map { renamingKeys($0, rename) }, sequence.tag, sequence.style, sequence.mark)
            return .sequence(sequence)
        default:
            return node
        }
    }

    /// `memory-limit` as `memoryLimit`, as the cluster file's JSON spells it.
    static func camel(_ name: String) -> String {
        guard name.contains("-") else { return name }
        let parts = name.split(separator: "-")
        return String(parts[0]) + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
    }

    /// `cluster` as YAML, its keys spelled as the flags are
    /// (`memory-limit`): what `sluice config convert` writes.
    public static func yaml(of cluster: ClusterConfig) throws(ConfigError) -> String {
        do {
            guard let node = try Yams.compose(yaml: try YAMLEncoder().encode(cluster)) else { return "" }
            return try Yams.serialize(node: renamingKeys(node, kebab), sortKeys: false)
        } catch {
            throw ConfigError(source: "convert", message: "\(error)")
        }
    }

    /// `memoryLimit` as `memory-limit`.
    public static func kebab(_ name: String) -> String {
        var text = ""
        for character in name {
            if character.isUppercase {
                text += "-" + character.lowercased()
            } else {
                text.append(character)
            }
        }
        return text
    }
}

/// What is wrong with a configuration, and where: `FILE: line 12:
/// zones[0].servers[1].listen: …`, or `SLUICE_LISTEN: …`.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The file, or the environment variable.
    public var source: String
    public var line: Int?
    public var key: String?
    public var message: String

    public init(source: String, line: Int? = nil, key: String? = nil, message: String) {
        self.source = source
        self.line = line
        self.key = key
        self.message = message
    }

    public var description: String {
        var text = source
        if let line { text += ": line \(line)" }
        if let key { text += ": \(key)" }
        return text + ": " + message
    }
}
