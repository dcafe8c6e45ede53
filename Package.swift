// swift-tools-version:6.0
// lockscope: an eBPF lock-contention profiler. The pipeline, one module per stage:
//   bpf/ (precompiled, embedded in CLockscopeBPF) -> LockscopeKernel (load, attach, ring buffer)
//   -> LockscopeCore (events, aggregation, identity, symbols, topology, containers, profile)
//   -> LockscopeReport / LockscopeExport / LockscopeCompare -> the `lockscope` CLI.
import PackageDescription

let package = Package(
    name: "lockscope",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lockscope", targets: ["lockscope"]),
        .executable(name: "lockscope-bench", targets: ["LockscopeBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // HMAC-SHA256 for the stable pseudonyms of `lockscope redact`.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        // `lockscope agent`: its HTTP server and the Prometheus exposition (LockscopeAgent only).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // libbpf from the system (libbpf-dev), found through pkg-config.
        .systemLibrary(name: "CLibbpf", path: "Sources/CLibbpf", pkgConfig: "libbpf",
                       providers: [.apt(["libbpf-dev", "libelf-dev", "zlib1g-dev"])]),
        // libelf from the system (libelf-dev, already libbpf's dependency), for the symbols of user stacks.
        .systemLibrary(name: "CLibelf", path: "Sources/CLibelf", pkgConfig: "libelf", providers: [.apt(["libelf-dev"])]),
        // The shared event layout (bpf/lockscope.h) and the precompiled BPF object (`make bpf`).
        .target(name: "CLockscopeBPF", path: "Sources/CLockscopeBPF"),
        // Mount-API syscalls Glibc does not wrap (open_tree, move_mount, mount_setattr, ...).
        .target(name: "CMountSyscalls", path: "Sources/CMountSyscalls"),
        // A cache prefetch hint for the aggregator's per-event path (Swift has no intrinsic for it).
        .target(name: "CPrefetch", path: "Sources/CPrefetch"),
        // Pure model and logic: no kernel needed, testable from fixtures and recorded events.
        .target(name: "LockscopeCore",
                dependencies: ["CLockscopeBPF", "CPrefetch", .product(name: "Histogram", package: "hdrhistogram-swift"),
                               .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "LockscopeReport", dependencies: ["LockscopeCore"]),
        // zlib from the system (zlib1g-dev), for gzip-compressed pprof files.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "LockscopeExport",
                dependencies: ["LockscopeCore", "CZlib", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                exclude: ["Proto/profile.proto"]),
        .target(name: "LockscopeCompare", dependencies: ["LockscopeCore"]),
        // `lockscope agent`'s serving side: a window's profile mapped to Prometheus metrics (pure, tested
        // without a kernel), the pprof endpoint's body, and the HTTP server. The only module with the
        // server and exposition packages.
        .target(name: "LockscopeAgent",
                dependencies: ["LockscopeCore", "LockscopeExport",
                               .product(name: "Hummingbird", package: "hummingbird"),
                               .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "NIOCore", package: "swift-nio")]),
        // The kernel side: load and attach BPF, read the ring buffer, probe what the kernel supports.
        .target(name: "LockscopeKernel", dependencies: ["CLibbpf", "CLibelf", "CLockscopeBPF", "CPrefetch", "LockscopeCore"]),
        // The built-in container-start mount storm.
        .target(name: "LockscopeStress", dependencies: ["CMountSyscalls", "LockscopeCore"]),
        .executableTarget(name: "lockscope", dependencies: [
            "LockscopeCore", "LockscopeKernel", "LockscopeReport", "LockscopeExport", "LockscopeCompare",
            "LockscopeStress", "LockscopeAgent", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // `make bench`: ingest, ceiling, memory and start-up benchmarks (never part of `swift test`).
        .executableTarget(name: "LockscopeBench",
                          dependencies: ["CLibbpf", "CLockscopeBPF", "CPrefetch", "LockscopeCore", "LockscopeKernel"]),
        .testTarget(name: "LockscopeCoreTests", dependencies: ["LockscopeCore"],
                    resources: [.copy("Fixtures")]),
        // Also every reader end to end: the crafted-profile, limits and fuzz tests run report, export, flamegraph, check and diff.
        .testTarget(name: "LockscopeReportTests",
                    dependencies: ["LockscopeReport", "LockscopeExport", "LockscopeCompare", "LockscopeTestSupport"]),
        .testTarget(name: "LockscopeExportTests", dependencies: ["LockscopeExport", "CZlib", "LockscopeTestSupport"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "LockscopeCompareTests", dependencies: ["LockscopeCompare", "LockscopeTestSupport"],
                    resources: [.copy("Fixtures")]),
        // Shared by the test targets that run the built `lockscope` binary.
        .target(name: "LockscopeTestSupport", path: "Tests/LockscopeTestSupport"),
        .testTarget(name: "LockscopeKernelTests",
                    dependencies: ["LockscopeKernel", "LockscopeStress", "LockscopeTestSupport"]),
        // lockscope-bench's reading of scripts/bench.sh's files (the benchmarks themselves are not tests).
        .testTarget(name: "LockscopeBenchTests", dependencies: ["LockscopeBench"]),
        // deploy/ checked by the tools that read it (kubernetes-validate, promtool).
        .testTarget(name: "LockscopeDeployTests", dependencies: ["LockscopeTestSupport"]),
        .testTarget(name: "LockscopeAgentTests", dependencies: ["LockscopeAgent", "LockscopeCore", "LockscopeTestSupport"]),
        .testTarget(name: "LockscopeStressTests", dependencies: ["LockscopeStress", "LockscopeCore", "LockscopeTestSupport"]),
    ]
)
