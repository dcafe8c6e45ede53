import Foundation
import LockscopeCore
import LockscopeStress
import LockscopeTestSupport
import XCTest

@testable import LockscopeKernel

/// Real kernel, real storm, real samples: `record --spin-hz` sees the spinning that no tracepoint
/// reports (namespace_sem's optimistic spin, mount_lock's seqcount readers) and attributes it by call path.
final class SpinSamplingTests: XCTestCase {
    /// A high rate, so each storm gives more samples: the storm's spinning is short and rare on 2 CPUs.
    static let testHz = 4999

    private func options(hz: Int = testHz) -> RecordOptions {
        var options = RecordOptions()
        options.selection = .mount
        options.bpf.filterByMountPath = true
        options.bpf.filterByLockAddress = true
        options.spinHz = hz
        return options
    }

    /// Records while `workload` runs on another thread.
    private func record(_ options: RecordOptions, _ workload: @escaping @Sendable () throws -> StressResult) throws
        -> (Profile, StressResult) {
        let recorder = try Recorder(options: options)
        try recorder.attach()
        let box = ResultBox<StressResult>()
        let thread = Thread { box.set(Swift.Result { try workload() }) }
        thread.start()
        recorder.run(shouldStop: { box.isSet }, status: { _ in })
        let profile = recorder.finish()
        return (profile, try box.get())
    }

    /// A per-layer storm with many more workers than the 2 CPUs, so that writers of namespace_sem find
    /// its owner running on the other CPU and spin.
    private func storm(scratchParent: String? = nil) throws -> StressOptions {
        var options = StressOptions()
        options.strategy = .perLayer
        options.cgroupStyle = .docker
        options.containers = 200
        options.layers = 40
        options.parallel = 24
        options.workerExecutable = try LockscopeBinary.path()
        if let scratchParent { options.scratchParent = scratchParent }
        return options
    }

    func testNamespaceSemOptimisticSpinIsSampledAndAttributedByCallPath() throws {
        try requireBPF()
        let stress = try storm()
        // An rwsem writer spins only while the owner runs on the other CPU: storm until a sample lands there.
        var namespaceSem: LockProfile?
        var profile: Profile?
        for _ in 0..<10 where namespaceSem?.spin?.spinFunctionSamples ?? 0 == 0 {
            let (recorded, result) = try record(options()) { try StressRunner(options: stress).run() }
            XCTAssertEqual(result.failures, 0)
            profile = recorded
            namespaceSem = recorded.locks.first { $0.name == LockNamer.namespaceSem && $0.spin != nil }
        }
        let lock = try XCTUnwrap(namespaceSem, "no namespace_sem spin samples in 10 storms")
        let spin = try XCTUnwrap(lock.spin)
        print("namespace_sem: \(lock.stats.contentions) waits; \(spin.spinFunctionSamples) samples in spin functions, "
              + "\(spin.pauseSamples) at PAUSE")
        XCTAssertEqual(lock.kind, .rwsem)
        XCTAssertGreaterThan(spin.spinFunctionSamples, 0)

        // Every spin-function stack attributed to it: a spin function among the innermost frames, then
        // an rwsem acquisition, then a caller that takes namespace_sem.
        let spinStacks = spin.stacks.filter { $0.sampleClass == .spinFunction }
        XCTAssertEqual(spinStacks.reduce(0) { $0 + $1.samples }, spin.spinFunctionSamples)
        for stack in spinStacks {
            let names = stack.frames.map(LockNamer.baseName)
            let spinIndex = try XCTUnwrap(names.prefix(3).firstIndex { SpinClassifier.spinFunctions.contains($0) },
                                          "\(stack.frames)")
            XCTAssertTrue(names[spinIndex...].contains { $0.hasPrefix("rwsem_down_") || $0.hasPrefix("down_") },
                          "\(stack.frames)")
            XCTAssertTrue(names.contains { LockNamer.namespaceSemCallers.contains($0) }, "\(stack.frames)")
        }

        // The estimate is samples x period, inside its interval; every kept sample is in one class.
        XCTAssertEqual(spin.periodNs, UInt64(1_000_000_000 / Self.testHz))
        XCTAssertEqual(spin.time.estimatedNs, spin.time.samples * spin.periodNs)
        XCTAssertLessThanOrEqual(spin.time.ciLowNs, spin.time.estimatedNs)
        XCTAssertGreaterThan(spin.time.ciHighNs, spin.time.estimatedNs)
        XCTAssertEqual(spin.byCpu.reduce(0) { $0 + $1.samples }, spin.time.samples)
        XCTAssertEqual(spin.byContainer.reduce(0) { $0 + $1.samples }, spin.time.samples)
        let samples = try XCTUnwrap(profile?.cpuSamples)
        XCTAssertEqual(samples.counters.samples, samples.counters.idle + samples.counters.user + samples.counters.kernel)
        let kept = samples.byClass.reduce(0) { $0 + $1.samples }
        XCTAssertEqual(kept + samples.counters.mapFull, samples.counters.user + samples.counters.kernel)
        XCTAssertEqual(samples.stacks.reduce(0) { $0 + $1.samples }, kept)
    }

    func testMountLockReadersSpinningInPathWalksAreAttributedToMountLock() throws {
        try requireBPF()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-spin-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let stress = try storm(scratchParent: scratch)
        // Path lookups start in path_init, which reads mount_lock's sequence and spins (PAUSE) while a
        // mount or umount of the storm holds it for writing: look up paths under the storm's scratch
        // directory from three threads for as long as the storm runs.
        var mountLock: LockProfile?
        for _ in 0..<10 where mountLock?.spin?.pauseSamples ?? 0 == 0 {
            let done = ResultBox<Bool>()
            let readers = (0..<3).map { _ in
                Thread {
                    var status = stat()
                    while !done.isSet { _ = stat(scratch, &status) }
                }
            }
            readers.forEach { $0.start() }
            let (recorded, result) = try record(options()) {
                defer { done.set(.success(true)) }
                return try StressRunner(options: stress).run()
            }
            XCTAssertEqual(result.failures, 0)
            mountLock = recorded.locks.first { $0.name == LockNamer.mountLock && $0.spin != nil }
        }
        let lock = try XCTUnwrap(mountLock, "no mount_lock read-side samples in 10 storms")
        let spin = try XCTUnwrap(lock.spin)
        print("mount_lock: \(spin.pauseSamples) PAUSE samples, \(spin.spinFunctionSamples) in spin functions; readers: "
              + spin.stacks.filter { $0.sampleClass == .pause }.map { "\($0.frames.first ?? "?") \($0.samples)" }.joined(separator: ", "))
        XCTAssertGreaterThan(spin.pauseSamples, 0)
        // Every PAUSE sample attributed to mount_lock was taken in one of its readers.
        for stack in spin.stacks where stack.sampleClass == .pause {
            let sampled = try XCTUnwrap(stack.frames.first.map(LockNamer.baseName))
            XCTAssertTrue(SpinAttribution.mountLockReaders.contains(sampled), "\(stack.frames)")
        }
    }
}
