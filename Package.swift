// swift-tools-version:6.2
// Hyperion: pipelined LLM inference across edge, fog and cloud tiers over RabbitMQ.
import PackageDescription

/// Every first-party target builds in Swift 6 mode with warnings treated as errors.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .treatAllWarnings(as: .error),
]

/// The wide integer kernels are one source compiled twice: `WideKernels` for CPUs with AVX-512
/// VNNI (LLVM's `cascadelake`) and `WideKernelsAVX2` for CPUs with AVX2 (LLVM's `haswell`; its
/// directory links to the first one's files). The code that calls them checks the running CPU
/// first, so the rest of the build stays portable x86-64.
#if arch(x86_64)
let wideKernelCPU: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "cascadelake"])]
let avx2KernelCPU: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"]), .define("HALF_WIDTH_TILES")]
#else
let wideKernelCPU: [SwiftSetting] = []
let avx2KernelCPU: [SwiftSetting] = [.define("HALF_WIDTH_TILES")]
#endif

let package = Package(
    name: "Hyperion",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hyperion", targets: ["HyperionCLI"]),
        .executable(name: "partition-planner", targets: ["PartitionPlanner"]),
        .executable(name: "stage-worker", targets: ["StageWorker"]),
        .executable(name: "scheduler", targets: ["Scheduler"]),
        .executable(name: "link-emulator", targets: ["LinkEmulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // C libraries, seen through module maps and a shim header each.
        .systemLibrary(
            name: "CRabbitMQ", path: "Shared/CRabbitMQ", pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]),
        .systemLibrary(
            name: "CJansson", path: "Shared/CJansson", pkgConfig: "jansson",
            providers: [.apt(["libjansson-dev"])]),

        // Shared libraries.
        .target(name: "JSON", dependencies: ["CJansson"], path: "Shared/JSON", swiftSettings: strict),
        .target(
            name: "AMQP", dependencies: ["CRabbitMQ", .product(name: "Logging", package: "swift-log")],
            path: "Shared/AMQP", swiftSettings: strict),
        .target(name: "Messages", dependencies: ["JSON"], path: "Shared/Messages", swiftSettings: strict),
        .target(name: "QuantFormats", path: "Shared/QuantFormats", swiftSettings: strict),
        .target(name: "Measurement", path: "Shared/Measurement", swiftSettings: strict),
        .target(name: "GGUF", path: "Shared/GGUF", swiftSettings: strict),
        .target(
            name: "WideKernels", dependencies: ["QuantFormats"], path: "Shared/WideKernels",
            swiftSettings: strict + wideKernelCPU),
        .target(
            name: "WideKernelsAVX2", dependencies: ["QuantFormats"], path: "Shared/WideKernelsAVX2",
            swiftSettings: strict + avx2KernelCPU),
        .target(
            name: "Inference", dependencies: ["GGUF", "QuantFormats", "WideKernels", "WideKernelsAVX2", "Measurement"],
            path: "Shared/Inference",
            swiftSettings: strict),
        .target(
            name: "Profiles", dependencies: ["JSON", "GGUF"], path: "Shared/Profiles",
            swiftSettings: strict),
        .target(
            name: "Partitioning", dependencies: ["Profiles", "JSON"], path: "Shared/Partitioning",
            swiftSettings: strict),

        .target(name: "Scheduling", dependencies: ["Messages"], path: "Shared/Scheduling", swiftSettings: strict),
        .target(
            name: "Emulation", dependencies: ["Profiles", "Partitioning", "Messages"], path: "Shared/Emulation",
            swiftSettings: strict),
        .target(
            name: "Simulation", dependencies: ["Profiles", "Partitioning", "Scheduling", "JSON", "Measurement"],
            path: "Shared/Simulation", swiftSettings: strict),
        .target(name: "Reporting", dependencies: ["JSON", "Simulation"], path: "Shared/Reporting", swiftSettings: strict),

        .target(
            name: "ServiceSupport",
            dependencies: [
                "AMQP", "Messages", .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Shared/ServiceSupport", swiftSettings: strict),

        .target(
            name: "PlanningOptions",
            dependencies: ["Profiles", "Partitioning", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Shared/PlanningOptions", swiftSettings: strict),

        // Services.
        .executableTarget(
            name: "PartitionPlanner",
            dependencies: [
                "AMQP", "JSON", "Messages", "Profiles", "Partitioning", "PlanningOptions", "ServiceSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/PartitionPlanner", swiftSettings: strict, plugins: ["BuildInfo"]),
        .executableTarget(
            name: "HyperionCLI",
            dependencies: [
                "JSON", "AMQP", "Messages", "ServiceSupport", "Scheduling", "Profiles", "Partitioning", "PlanningOptions", "GGUF", "Inference", "Simulation", "Reporting",
                "Emulation", "Measurement",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/HyperionCLI", swiftSettings: strict, plugins: ["BuildInfo"]),
        // Before every build: the version and git commit that each executable's `--version` prints.
        .plugin(name: "BuildInfo", capability: .buildTool(), path: "Plugins/BuildInfo"),

        .executableTarget(
            name: "StageWorker",
            dependencies: [
                "AMQP", "JSON", "Messages", "GGUF", "Inference", "Profiles", "Partitioning", "Scheduling", "ServiceSupport", "Emulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/StageWorker", swiftSettings: strict, plugins: ["BuildInfo"]),

        .executableTarget(
            name: "LinkEmulator",
            dependencies: [
                "AMQP", "Messages", "Profiles", "ServiceSupport", "Emulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/LinkEmulator", swiftSettings: strict, plugins: ["BuildInfo"]),

        .executableTarget(
            name: "Scheduler",
            dependencies: [
                "AMQP", "JSON", "Messages", "GGUF", "Inference", "Profiles", "Partitioning", "Scheduling", "ServiceSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/Scheduler", swiftSettings: strict, plugins: ["BuildInfo"]),

        // Tests.
        .target(
            name: "IntegrationSupport", dependencies: ["AMQP", "JSON", "Messages"], path: "Tests/IntegrationSupport",
            swiftSettings: strict),
        .testTarget(
            name: "IntegrationTests", dependencies: ["IntegrationSupport", "AMQP", "JSON", "Messages"],
            swiftSettings: strict),
        .testTarget(name: "JSONTests", dependencies: ["JSON"], swiftSettings: strict),
        .testTarget(name: "AMQPTests", dependencies: ["AMQP", "Messages"], swiftSettings: strict),
        .testTarget(name: "MessagesTests", dependencies: ["Messages", "JSON"], swiftSettings: strict),
        .testTarget(
            name: "InferenceTests", dependencies: ["Inference", "GGUF", "JSON"], exclude: ["Fixtures"],
            swiftSettings: strict),
        .testTarget(name: "SchedulingTests", dependencies: ["Scheduling", "Messages"], swiftSettings: strict),
        .testTarget(
            name: "ProfilesTests", dependencies: ["Profiles", "JSON"], swiftSettings: strict),
        .testTarget(
            name: "PartitionPlannerTests",
            dependencies: ["IntegrationSupport", "AMQP", "Messages", "Partitioning", "Profiles", "JSON", "ServiceSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "PartitioningTests", dependencies: ["Partitioning", "Profiles", "JSON", "IntegrationSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "EmulationTests", dependencies: ["Emulation", "Partitioning", "Profiles", "Messages"],
            swiftSettings: strict),
        .testTarget(
            name: "SimulationTests", dependencies: ["Simulation", "Inference", "Partitioning", "Profiles", "Scheduling", "JSON"],
            swiftSettings: strict),
        .testTarget(name: "MeasurementTests", dependencies: ["Measurement"], swiftSettings: strict),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "JSON", "IntegrationSupport"], swiftSettings: strict),
    ]
)
