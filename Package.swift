// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "rampart",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rampart", targets: ["rampart"]),
        // For the fuzz targets (Fuzz/, a package of their own, built with sanitizers).
        .library(name: "RampartCore", targets: ["RampartCore"]),
        // For the fuzz targets (Fuzz/), which test the nftables batch builder.
        .library(name: "RampartFirewall", targets: ["RampartFirewall"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        .package(url: "https://github.com/adam-fowler/compress-nio.git", from: "1.5.0"),
    ],
    targets: [
        // Pure domain: indicators, items, decisions, safety policy, configuration. No I/O but files.
        .target(
            name: "RampartCore",
            dependencies: [
                .product(name: "Yams", package: "Yams"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // SQLite (GRDB): items, decisions, audit chain; group commit.
        .target(
            name: "RampartStore",
            dependencies: [
                "RampartCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Firewall backends.
        .target(
            name: "RampartFirewall",
            dependencies: [
                "RampartCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // HTTP API, ingest pipeline and service wiring.
        .target(
            name: "RampartServer",
            dependencies: [
                "RampartCore",
                "RampartStore",
                "RampartFirewall",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ],
            plugins: [.plugin(name: "EmbedOpenAPI")]
        ),
        // docs/openapi.yaml, compiled into RampartServer (served at GET /openapi.yaml).
        .executableTarget(name: "rampart-embed", path: "Plugins/EmbedTool"),
        .plugin(name: "EmbedOpenAPI", capability: .buildTool(), dependencies: ["rampart-embed"], path: "Plugins/EmbedOpenAPI"),
        .executableTarget(
            name: "rampart",
            dependencies: [
                "RampartCore",
                "RampartStore",
                "RampartFirewall",
                "RampartServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // What the test targets share: a manual clock, the test API keys.
        .target(name: "RampartTesting", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // The baseline the ingest benchmark compares against: bare Hummingbird, same JSON, no storage.
        .executableTarget(
            name: "rampart-baseline",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            path: "Benchmarks/Baseline"
        ),
        // The matcher benchmark: indexed PlaybookSet against a linear evaluation (Benchmarks/matcher.sh).
        .executableTarget(name: "rampart-bench-matcher", dependencies: ["RampartCore"], path: "Benchmarks/Matcher"),
        // Fixtures are read through #filePath, not bundled.
        .testTarget(
            name: "RampartCoreTests", dependencies: ["RampartCore", "RampartTesting", .product(name: "Yams", package: "Yams")], exclude: ["Fixtures"]
        ),
        .testTarget(name: "RampartFirewallTests", dependencies: ["RampartFirewall", "RampartTesting"]),
        .testTarget(
            name: "RampartStoreTests",
            dependencies: ["RampartStore", "RampartTesting", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // Runs the built `rampart` binary as users do: CLI commands, a daemon killed with SIGKILL.
        .testTarget(
            name: "RampartCLITests",
            dependencies: ["rampart", "RampartStore", "RampartTesting", .product(name: "GRDB", package: "GRDB.swift")],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "RampartServerTests",
            dependencies: [
                "RampartServer",
                "RampartTesting",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "CompressNIO", package: "compress-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            exclude: ["Fixtures"]
        ),
    ]
)
