// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "AdapterMix",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "adaptermix", targets: ["adaptermix"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
    ],
    targets: [
        // System-library shims (Debian: libopenblas-dev, libzmq3-dev).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CZeroMQ", path: "Sources/CZeroMQ"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),

        // Numeric core. CKernels: the elementwise kernels in C (AVX2 + FMA or portable, chosen at run time).
        // Optimised in debug builds too, so that tests on the real base model stay quick.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(
            name: "Tensor",
            dependencies: ["CBLAS", "CKernels"],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .target(name: "Encoder", dependencies: ["Tensor"]),
        .target(name: "Adapters", dependencies: ["Encoder", "Tensor", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Attack", dependencies: ["Tensor", "Encoder", "Adapters", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Datasets", dependencies: ["CZlib", .product(name: "Yams", package: "Yams")]),
        .target(name: "Cluster", dependencies: ["CZeroMQ", "Sweep", "Datasets"]),
        .target(
            name: "Sweep",
            dependencies: [
                "Adapters", "Datasets", "Attack", "Encoder", "Report",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),

        // The study report: statistics, inline-SVG charts, the HTML page (no dependencies beyond Tensor).
        .target(name: "Report", dependencies: ["Tensor"]),

        // The command line.
        .executableTarget(
            name: "adaptermix",
            dependencies: [
                "Encoder", "Tensor", "Datasets", "Adapters", "Sweep", "Cluster", "Attack", "Report",
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CKernels"]),
        .testTarget(name: "AttackTests", dependencies: ["Attack", "Adapters", "Datasets", "Encoder", "Tensor"]),
        .testTarget(
            name: "EncoderTests",
            dependencies: ["Encoder"],
            resources: [.copy("Fixtures")]
        ),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets"]),
        .testTarget(name: "AdaptersTests", dependencies: ["Adapters", "Encoder", "Tensor"], resources: [.copy("Fixtures")]),
        .testTarget(name: "CLITests", dependencies: ["Encoder"]),
        .testTarget(name: "SweepTests", dependencies: ["Sweep", "Attack", "Adapters", "Datasets", "Encoder", "Tensor"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Tensor"]),
        .testTarget(name: "ClusterTests", dependencies: ["Cluster", "Sweep", "Tensor"]),
        // Real coordinator and worker processes on loopback (runs the built executable).
        .testTarget(name: "SweepProcessTests", dependencies: ["Cluster", "Sweep"]),
    ]
)
