// swift-tools-version:6.2
import PackageDescription

// bin/fuzz sets SLUICE_FUZZ=1: Sluice's own modules are built for libFuzzer
// (coverage) and AddressSanitizer, its dependencies as they are, so that a
// fuzzing build reuses their release build; and the target sluice-fuzz is
// added (below).
let fuzzing = Context.environment["SLUICE_FUZZ"] == "1"

// bin/test (and so CI) sets SLUICE_STRICT=1: warnings are errors there.
let strict: [SwiftSetting] =
    [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ] + (Context.environment["SLUICE_STRICT"] == "1" ? [.treatAllWarnings(as: .error)] : [])
    + (fuzzing ? [.unsafeFlags(["-sanitize=fuzzer,address"])] : [])

// Test code is compiled without optimization even in bin/test's release
// build: what the tests exercise is Sluice's modules, optimized as they
// ship; optimizing the tests' own code cost minutes of CI on two cores
// and bought nothing.
let testCode: [SwiftSetting] = [.unsafeFlags(["-Onone"])]

let package = Package(
    name: "sluice",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "sluice", targets: ["sluice"]),
        .library(name: "SluiceWire", targets: ["SluiceWire"]),
        // For Swift programs that log straight to the local agent.
        .library(name: "SluiceEmitter", targets: ["SluiceEmitter"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        // The YAML configuration file (--config), with line numbers for its errors.
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        // Generated from Protos/ by bin/generate-protos. Never edited by hand.
        .target(
            name: "SluiceProto",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // Wire format, routing key, hashing, notices, the clock, log keys and
        // metric names: plain Swift, no NIO.
        .target(
            name: "SluiceWire",
            dependencies: ["SluiceProto", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strict
        ),
        // The web console a controller serves: its page, script and style
        // inside the binary, its base path, its one-time sign-in codes.
        // Plain Swift, no dependencies.
        .target(
            name: "SluiceConsole",
            swiftSettings: strict
        ),
        // Syslog as the agent reads it and drains write it: RFC 5424/3164
        // messages, RFC 6587 octet counting, the TCP stream's framing.
        .target(
            name: "SluiceSyslog",
            dependencies: ["SluiceWire", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // Framing, the acknowledged window, listeners, HTTP answers and the
        // tap protocol: plumbing every role shares.
        // Mutual TLS for the links between parts (certificates, keys and
        // CA re-read on SIGHUP; refused handshakes logged and counted), and
        // the development CA `sluice certs` makes.
        .target(
            name: "SluiceTLS",
            dependencies: [
                "SluiceWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceTransport",
            dependencies: [
                "SluiceWire", "SluiceTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // gRPC over HTTP/2 on the NIO event loops, Sluice's own framing (see
        // docs/cloud-foundry.md, "Why not grpc-swift"): the server codec,
        // routes, the listener with ALPN h2, and Loggregator's ingress and
        // egress calls as plain state.
        .target(
            name: "SluiceGRPC",
            dependencies: [
                "SluiceWire", "SluiceTransport", "SluiceTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The emitter client stack: acknowledged ingress client, the bounded
        // shipper and its queue, line splitting, Log envelopes from fields.
        // Used by the agent, SluiceEmitter and the CLI.
        .target(
            name: "SluiceShipping",
            dependencies: [
                "SluiceWire", "SluiceTransport", "SluiceTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // Drain bindings: which app's logs go where. SQLite (GRDB) or PostgreSQL.
        .target(
            name: "SluiceBindings",
            dependencies: [
                "SluiceWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Drains: one app's envelopes to a syslog or HTTPS endpoint, their
        // line formats, and the manager that keeps runners in step with the
        // bindings and attaches them to a buffer server's taps.
        .target(
            name: "SluiceDrain",
            dependencies: [
                "SluiceWire", "SluiceProto", "SluiceTransport", "SluiceSyslog", "SluiceBindings",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        // Tokens: JWTs verified against the keys a controller trusts, the
        // access rules, the external check's cache, and tokens made for
        // `sluice token create` and `sluice up`.
        .target(
            name: "SluiceAuth",
            dependencies: [
                "SluiceWire",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceServer",
            dependencies: [
                "SluiceWire", "SluiceProto", "SluiceTransport", "SluiceTLS",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceController",
            dependencies: [
                "SluiceWire", "SluiceProto", "SluiceTransport", "SluiceTLS", "SluiceBindings", "SluiceAuth", "SluiceGRPC",
                "SluiceConsole",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        // The source agent: framed, syslog and HTTP inputs, shipped to controllers.
        .target(
            name: "SluiceAgent",
            dependencies: [
                "SluiceWire", "SluiceTransport", "SluiceTLS", "SluiceSyslog", "SluiceShipping", "SluiceGRPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "SluiceEmitter",
            dependencies: [
                "SluiceWire", "SluiceTransport", "SluiceShipping",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // What the commands do: emit, logs, up, run. The executable only parses arguments.
        .target(
            name: "SluiceCLI",
            dependencies: [
                "SluiceWire", "SluiceProto", "SluiceTransport", "SluiceTLS", "SluiceServer", "SluiceController", "SluiceAgent",
                "SluiceBindings", "SluiceDrain", "SluiceShipping", "SluiceAuth", "SluiceConsole",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                // `sluice run`'s signal handler reads the child's pid (already built for SwiftNIO).
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "sluice",
            dependencies: [
                "SluiceCLI", "SluiceWire", "SluiceTransport", "SluiceTLS", "SluiceServer", "SluiceController", "SluiceAgent",
                "SluiceBindings", "SluiceDrain", "SluiceShipping", "SluiceAuth", "SluiceConsole",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "SluiceWireTests",
            dependencies: [
                // The formats built on the wire: syslog, drain URLs and lines, cf's lines.
                "SluiceWire", "SluiceProto", "SluiceSyslog", "SluiceBindings", "SluiceDrain", "SluiceCLI",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict + testCode
        ),
        .testTarget(
            name: "SluiceUnitTests",
            dependencies: [
                "SluiceWire", "SluiceProto", "SluiceTransport", "SluiceTLS", "SluiceServer", "SluiceController", "SluiceCLI",
                "SluiceAgent", "SluiceDrain", "SluiceBindings", "SluiceSyslog", "SluiceShipping", "SluiceAuth", "SluiceGRPC",
                "SluiceConsole",
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict + testCode
        ),
        .testTarget(
            name: "SluiceTests",
            dependencies: [
                "sluice", "SluiceWire", "SluiceProto", "SluiceTransport", "SluiceTLS", "SluiceServer", "SluiceController", "SluiceCLI",
                "SluiceAgent", "SluiceEmitter", "SluiceBindings", "SluiceDrain", "SluiceSyslog", "SluiceShipping",
                "SluiceAuth", "SluiceGRPC", "SluiceConsole",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict + testCode
        ),
    ]
)

// libFuzzer targets for every parser that reads bytes from outside
// (Tests/Fuzz), built only by bin/fuzz; they run under libFuzzer's driver.
if fuzzing {
    package.targets.append(.target(name: "CFuzzDriver", path: "Tests/Fuzz/CFuzzDriver"))
    package.targets.append(
        .executableTarget(
            name: "sluice-fuzz",
            dependencies: [
                "SluiceWire", "SluiceProto", "SluiceTransport", "SluiceServer", "SluiceController", "SluiceSyslog",
                "SluiceShipping", "SluiceBindings", "SluiceDrain", "SluiceGRPC", "CFuzzDriver",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/Fuzz/SluiceFuzz",
            swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]
        ))
}
