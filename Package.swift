// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "rampart",
    platforms: [.macOS(.v15)],
    dependencies: [
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
        .testTarget(name: "RampartCoreTests", dependencies: ["RampartCore"]),
    ]
)
