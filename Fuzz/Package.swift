// swift-tools-version: 6.1
// libFuzzer targets for Rampart's parsers (swiftc -sanitize=fuzzer,address), a package of their
// own so that the main build is never built with sanitizers. Fuzz/run.sh builds and runs them.
import PackageDescription

// Fuzz/run.sh passes -sanitize=fuzzer,address to every Swift module (the code under test is
// instrumented too); the targets link libFuzzer's runtime with lld (gold fails on it).
let link: [LinkerSetting] = [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]

let package = Package(
    name: "rampart-fuzz",
    dependencies: [.package(name: "rampart", path: "..")],
    targets: [
        // libFuzzer's driver, called from each target's main (SwiftPM gives executables a main of their own).
        .target(name: "FuzzDriver")
    ]
        + ["FuzzValues", "FuzzIngest", "FuzzYAML", "FuzzSignature", "FuzzRules", "FuzzOpenC2", "FuzzFirewall"].map { name in
            .executableTarget(
                name: name,
                dependencies: [
                    "FuzzDriver", .product(name: "RampartCore", package: "rampart"), .product(name: "RampartFirewall", package: "rampart"),
                ],
                linkerSettings: link)
        }
)
