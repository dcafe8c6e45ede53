import Foundation
import LockscopeCore
import LockscopeKernel

/// The collector's memory after a number of events, measured in a fresh process so nothing else
/// the benchmark did counts.
struct MemoryRun: Codable {
    var events: UInt64
    /// VmHWM (the peak RSS so far) once every event is aggregated, and after the profile is built and written.
    var peakRSSAfterEventsBytes: UInt64
    var peakRSSBytes: UInt64
    /// Building and writing the profile at the end of a recording.
    var profileMs: Double
    var profileBytes: Int
    var profileLocks: Int
    /// Naming every lock, which `record` does once a second for its status line and kernel filter.
    var namingMs: Double
}

extension MemoryRun {
    /// Runs `lockscope-bench memory EVENTS LOCKS CPUS CONTAINERS` and reads its result.
    static func inChildProcess(events: Int, keys: KeySpace) throws -> MemoryRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = ["memory", String(events), String(keys.locks), String(keys.cpus), String(keys.containers)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchError("the memory benchmark (\(events) events) exited with status \(process.terminationStatus)")
        }
        return try JSONDecoder().decode(MemoryRun.self, from: data)
    }

    /// What `lockscope record` holds (symbols, topology, cgroup resolver, a loaded BPF object, an 8 MiB
    /// ring buffer, the aggregator), fed `events` synthetic events in lock step with the producer so
    /// none is lost, then the profile built with synthetic stacks and written, as at the end of `record`.
    static func measure(events: Int, keys: KeySpace) throws -> MemoryRun {
        let symbols = try Kallsyms.load()
        let kernel = KernelInfo.read()
        let cgroups = try? CgroupResolver()
        let stacks = SyntheticStacks(symbols: symbols)
        let source = try SyntheticSource(ringBufferBytes: 8 << 20)
        let collector = try CollectorConsumer(mapFD: source.eventsFD, topology: try? Topology.read())
        let emitter = source.emitter(keys: keys)
        var emitted = 0
        while emitted < events {
            let count = min(4096, events - emitted)
            try emitter.emit(count: count, first: UInt64(emitted))
            emitted += count
            _ = collector.drain()
        }
        let counts = source.counts()
        guard counts.lost == 0, collector.aggregator.waitEvents == UInt64(events) else {
            throw BenchError("memory benchmark lost events: produced \(counts.produced), lost \(counts.lost), aggregated \(collector.aggregator.waitEvents)")
        }
        let peakAfterEvents = ResidentSet.peakBytes
        for (name, size) in collector.aggregator.tableSizes.sorted(by: { $0.key < $1.key }) {
            progress("table \(name): \(size.bytes >> 20) MiB, \(size.entries) entries")
        }

        let inputs = ProfileInputs(
            stackAddresses: stacks.addresses, symbols: symbols, layout: kernel.layout,
            container: { id in
                cgroups?.container(forCgroupID: id) ?? Container(id: "cgroup:\(id)", runtime: "unknown", cgroup: "")
            },
            hostname: kernel.hostname, kernel: kernel.release, startedAt: "", durationNs: 1_000_000_000,
            drops: Drops(), recording: Recording(), selection: .all)
        let namingStart = monotonicNs()
        _ = collector.aggregator.lockNames(inputs)
        let namingNs = monotonicNs() - namingStart

        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-bench-\(getpid()).json").path
        defer { unlink(path) }
        let profileStart = monotonicNs()
        let profile = collector.takeProfile(inputs)
        try profile.write(to: path)
        let profileNs = monotonicNs() - profileStart
        let profileBytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0

        return MemoryRun(events: UInt64(events), peakRSSAfterEventsBytes: peakAfterEvents,
                         peakRSSBytes: ResidentSet.peakBytes, profileMs: Double(profileNs) / 1e6,
                         profileBytes: profileBytes, profileLocks: profile.locks.count,
                         namingMs: Double(namingNs) / 1e6)
    }
}

/// The peak resident set size of this process so far: VmHWM in /proc/self/status.
enum ResidentSet {
    static var peakBytes: UInt64 {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, let kib = UInt64(fields[1]) { return kib * 1024 }
        }
        return 0
    }
}

/// Kernel stacks for the synthetic stack ids: 12 frames each, drawn from the running kernel's text
/// symbols, so building a profile symbolizes and names as much as it would for real stacks.
struct SyntheticStacks: Sendable {
    static let depth = 12
    private let functions: [UInt64]

    init(symbols: Kallsyms) {
        functions = symbols.kernelFunctionAddresses
    }

    func addresses(_ id: Int32) -> [UInt64]? {
        guard id >= 0 else { return nil }
        return (0..<Self.depth).map { frame in
            var hash = UInt64(id) &* 0x9e37_79b9_7f4a_7c15 &+ UInt64(frame) &* 0xbf58_476d_1ce4_e5b9
            hash ^= hash >> 29
            return functions[Int(hash % UInt64(functions.count))] + 0x10
        }
    }
}
