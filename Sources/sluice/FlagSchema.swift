import ArgumentParser
import SluiceCLI

/// A command's flags, read from its declaration: every `@Option`, `@Flag`
/// and `@OptionGroup` property, named as ArgumentParser names them
/// (`memoryLimit` is `--memory-limit`), so that a configuration file's keys
/// are exactly the flags, with nothing to keep in step by hand.
enum FlagSchema {
    static func of(_ command: any ParsableArguments.Type) -> ConfigArguments.Schema {
        var kinds: [String: ConfigArguments.Schema.Kind] = [:]
        collect(command.init(), into: &kinds)
        let name = (command as? any ParsableCommand.Type)?.configuration.commandName ?? "\(command)"
        return ConfigArguments.Schema(command: name, kinds: kinds)
    }

    private static func collect(_ instance: Any, into kinds: inout [String: ConfigArguments.Schema.Kind]) {
        for child in Mirror(reflecting: instance).children {
            guard let label = child.label, label.hasPrefix("_") else { continue }
            if let group = child.value as? any ReflectedGroup {
                collect(group.groupType.init(), into: &kinds)
            } else if let argument = child.value as? any ReflectedArgument {
                kinds[ConfigFile.kebab(String(label.dropFirst()))] = argument.reflectedKind
            }
        }
    }
}

private protocol ReflectedArgument {
    var reflectedKind: ConfigArguments.Schema.Kind { get }
}

private protocol ReflectedGroup {
    var groupType: any ParsableArguments.Type { get }
}

private protocol RepeatedValue {}

extension Array: RepeatedValue {}

extension Option: ReflectedArgument {
    fileprivate var reflectedKind: ConfigArguments.Schema.Kind { Value.self is any RepeatedValue.Type ? .values : .value }
}

extension Flag: ReflectedArgument {
    fileprivate var reflectedKind: ConfigArguments.Schema.Kind { .flag }
}

extension OptionGroup: ReflectedGroup {
    fileprivate var groupType: any ParsableArguments.Type { Value.self }
}
