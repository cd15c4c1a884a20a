// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "rampart",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.0"),
    ],
    targets: [
        // Pure domain: indicators, items, decisions, safety policy, configuration. No I/O but files.
        .target(
            name: "RampartCore",
            dependencies: [
                .product(name: "Yams", package: "Yams")
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
        .testTarget(name: "RampartCoreTests", dependencies: ["RampartCore"]),
        .testTarget(
            name: "RampartStoreTests",
            dependencies: ["RampartStore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
    ]
)
