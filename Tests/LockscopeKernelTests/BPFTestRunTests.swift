import CLibbpf
import CLockscopeBPF
import Foundation
import LockscopeCore
import XCTest

@testable import LockscopeKernel

/// The BPF programs driven through BPF_PROG_TEST_RUN with exact inputs: pairing, nesting, filters and
/// loss accounting, without depending on what the rest of the machine does.
final class BPFTestRunTests: XCTestCase {
    private let rwsemA: UInt64 = 0xffff_8880_1000_0000
    private let spinB: UInt64 = 0xffff_8880_2000_0040

    private static let write = UInt32(LOCKSCOPE_LCB_F_WRITE)
    private static let spin = UInt32(LOCKSCOPE_LCB_F_SPIN)
    private static let mutexSpin = UInt32(LOCKSCOPE_LCB_F_MUTEX | LOCKSCOPE_LCB_F_SPIN)
    private static let mutexSleep = UInt32(LOCKSCOPE_LCB_F_MUTEX)

    /// A loaded (not attached) program and everything it sent.
    private final class Harness {
        let program: BPFProgram
        var reader: RingBufferReader!
        var events: [KernelEvent] = []

        init(_ options: BPFOptions) throws {
            program = try BPFProgram(options: options)
            reader = try RingBufferReader(mapFD: program.eventsFD) { [unowned self] in events.append($0) }
        }

        func begin(_ lock: UInt64, _ flags: UInt32) throws {
            try program.testRun(\.progs.contention_begin, [lock, UInt64(flags)])
        }

        func end(_ lock: UInt64, ret: Int32 = 0) throws {
            try program.testRun(\.progs.contention_end, [lock, UInt64(UInt32(bitPattern: ret))])
        }

        var waits: [WaitEvent] {
            reader.drain()
            return events.compactMap { if case .wait(let wait) = $0 { wait } else { nil } }
        }

        func counter(_ index: lockscope_counter) -> UInt64 { program.counters()[Int(index.rawValue)] }
    }

    private func harness(_ configure: (inout BPFOptions) -> Void = { _ in }) throws -> Harness {
        try requireBPF()
        var options = BPFOptions()
        options.readOwners = false
        configure(&options)
        return try Harness(options)
    }

    /// A file descriptor that is not a ring buffer map is refused with an error naming what failed.
    func testReaderRefusesAnFDThatIsNotARingBuffer() {
        XCTAssertThrowsError(try RingBufferReader(mapFD: -1)) { error in
            XCTAssertTrue("\(error)".contains("open the ring buffer"), "\(error)")
        }
    }

    /// The collector's path: records go straight into the aggregator while it drains, and to the
    /// handler again afterwards.
    func testDrainIntoAnAggregatorRecordsEveryWait() throws {
        let h = try harness()
        try h.begin(rwsemA, Self.write)
        try h.end(rwsemA)
        var aggregator = Aggregator(topology: nil)
        XCTAssertEqual(h.reader.drain(into: &aggregator), 1)
        XCTAssertTrue(h.events.isEmpty, "the handler saw a record meant for the aggregator")
        let profile = aggregator.profile(ProfileInputs(
            stackAddresses: { _ in nil }, symbols: nil, container: { _ in Container(id: "host", runtime: "host", cgroup: "/") }, hostname: "test",
            kernel: "test", startedAt: "", durationNs: 1, drops: Drops(), recording: Recording(locks: "all")))
        XCTAssertEqual(profile.locks.map(\.stats.contentions), [1])
        XCTAssertEqual(profile.locks.first?.address, "0x\(String(rwsemA, radix: 16))")
        try h.begin(spinB, Self.spin)
        try h.end(spinB)
        XCTAssertEqual(h.waits.map(\.lockAddress), [spinB])
    }

    /// A set of programs attaches whole or not at all: the syscall hooks' fallback relies on it.
    /// lockscope-bench's emit_events is a plain SEC("raw_tp") with no tracepoint, which libbpf refuses to attach.
    func testAttachingASetIsAllOrNothing() throws {
        let h = try harness()
        let bench = try BPFObject<lockscope_bench_bpf>(options: BPFOptions())
        let unattachable: OpaquePointer = bench.skeleton.pointee.progs.emit_events
        XCTAssertThrowsError(try h.program.attach([h.program.skeleton.pointee.progs.contention_begin, unattachable])) { error in
            XCTAssertTrue("\(error)".contains("cannot attach emit_events"), "\(error)")
        }
        XCTAssertFalse(h.program.isAttached, "contention_begin was attached and must be detached again")
        try h.program.attach(h.program.lockPrograms)
        XCTAssertTrue(h.program.isAttached)
        h.program.detach()
    }

    /// Every program of the object is in exactly one of the sets `attach()` uses, and each mount
    /// syscall's pair is its own enter_/exit_ programs: a program added to bpf/lockscope.bpf.c but
    /// not to the typed table fails here.
    func testAttachSetsCoverEveryProgramOnce() throws {
        let h = try harness()
        let name = { (program: OpaquePointer) in String(cString: bpf_program__name(program)) }
        var inObject: [String] = []
        var program = bpf_object__next_program(h.program.skeleton.pointee.obj, nil)
        while let current = program {
            inObject.append(name(current))
            program = bpf_object__next_program(h.program.skeleton.pointee.obj, current)
        }
        let sets = (h.program.lockPrograms + h.program.perSyscallPrograms + h.program.rawSyscallPrograms).map(name)
        XCTAssertEqual(sets.sorted(), inObject.sorted())
        XCTAssertEqual(Set(sets).count, sets.count, "a program is in two sets: \(sets)")
        let pairs = stride(from: 0, to: h.program.perSyscallPrograms.count, by: 2).map { index in
            (name(h.program.perSyscallPrograms[index]), name(h.program.perSyscallPrograms[index + 1]))
        }
        XCTAssertEqual(pairs.count, MountSyscall.allCases.count)
        for (enter, exit) in pairs {
            XCTAssertTrue(enter.hasPrefix("enter_"), enter)
            XCTAssertEqual(exit, "exit_" + enter.dropFirst("enter_".count))
        }
        XCTAssertEqual(pairs.first.map { [$0.0, $0.1] }, ["enter_mount", "exit_mount"])
        XCTAssertTrue(pairs.contains { $0 == ("enter_umount", "exit_umount") }, "umount2's tracepoints are sys_*_umount")
    }

    /// The options reach the loaded programs' .rodata: read back through the skeleton, whose .rodata
    /// is the kernel map's memory after load.
    func testConfigIsInTheLoadedRodata() throws {
        let h = try harness {
            $0.minWaitNs = 1500
            $0.kinds = [.mutex, .rwsem]
            $0.pids = [1]
            $0.filterByMountPath = true
            $0.ringBufferBytes = 1 << 16
        }
        let config = h.program.skeleton.pointee.rodata.pointee.config
        XCTAssertEqual(config.min_wait_ns, 1500)
        XCTAssertEqual(config.kind_mask, UInt32(LOCKSCOPE_KIND_MUTEX.rawValue | LOCKSCOPE_KIND_RWSEM.rawValue))
        XCTAssertEqual(config.filters, UInt32(LOCKSCOPE_FILTER_MOUNT_PATH.rawValue | LOCKSCOPE_FILTER_PIDS.rawValue))
        XCTAssertEqual(config.wakeup_bytes, 1 << 14)
        XCTAssertEqual(config.read_owner, 0)
        XCTAssertEqual(bpf_map__max_entries(h.program.skeleton.pointee.maps.events), 1 << 16)
    }

    func testPairsBeginAndEndIntoOneWait() throws {
        let h = try harness()
        try h.begin(rwsemA, Self.write)
        try h.end(rwsemA)
        let waits = h.waits
        XCTAssertEqual(waits.count, 1)
        XCTAssertEqual(waits[0].lockAddress, rwsemA)
        XCTAssertEqual(waits[0].flags, Self.write)
        XCTAssertEqual(waits[0].kind, .rwsem)
        XCTAssertEqual(waits[0].outerLockAddress, 0)
        XCTAssertEqual(waits[0].pid, UInt32(getpid()))
        XCTAssertEqual(waits[0].comm.string, String(ProcessInfo.processInfo.processName.prefix(15)))
        XCTAssertGreaterThan(waits[0].waitNs, 0)
        XCTAssertEqual(h.counter(LOCKSCOPE_CTR_WAITS_COMPLETED), 1)
    }

    func testEndWithoutBeginIsIgnored() throws {
        let h = try harness()
        try h.end(rwsemA)
        XCTAssertEqual(h.waits.count, 0)
        XCTAssertEqual(h.counter(LOCKSCOPE_CTR_WAITS_COMPLETED), 0)
    }

    /// rwsem slow path: begin(sem) → begin(wait_lock) → end(wait_lock) → end(sem). The inner wait
    /// knows its outer lock, and the outer wait still spans the inner one.
    func testNestedWaitDoesNotCorruptTheOuterWait() throws {
        let h = try harness()
        try h.begin(rwsemA, Self.write)
        try h.begin(spinB, Self.spin)
        try h.end(spinB)
        try h.end(rwsemA)
        let waits = h.waits
        XCTAssertEqual(waits.map(\.lockAddress), [spinB, rwsemA])
        XCTAssertEqual(waits[0].outerLockAddress, rwsemA)
        XCTAssertEqual(waits[1].outerLockAddress, 0)
        XCTAssertEqual(waits[1].flags, Self.write)
        XCTAssertGreaterThanOrEqual(waits[1].waitNs, waits[0].waitNs)
        XCTAssertLessThanOrEqual(waits[1].endNs - waits[1].waitNs, waits[0].endNs - waits[0].waitNs,
                                 "the outer wait began first")
    }

    /// A mutex announces its wait twice (optimistic spin, then sleep) and ends it once: one wait, timed
    /// from the first begin, with the flags of how it ended up waiting.
    func testRepeatedBeginOfTheSameLockIsOneWait() throws {
        let h = try harness()
        try h.begin(rwsemA, Self.mutexSpin)
        try h.begin(rwsemA, Self.mutexSleep)
        try h.end(rwsemA)
        let waits = h.waits
        XCTAssertEqual(waits.count, 1)
        XCTAssertEqual(waits[0].flags, Self.mutexSleep)
        XCTAssertEqual(h.counter(LOCKSCOPE_CTR_NESTING_OVERFLOW), 0)
    }

    /// A spinlock begun again while its wait is open lost its contention_end: the stale wait is
    /// replaced, so the next end is timed from the newest begin (no giant stale wait).
    func testRepeatedBeginOfASpinlockReplacesTheStaleWait() throws {
        let h = try harness()
        try h.begin(spinB, Self.spin)
        usleep(20_000)
        try h.begin(spinB, Self.spin)
        try h.end(spinB)
        let waits = h.waits
        XCTAssertEqual(waits.count, 1)
        XCTAssertLessThan(waits[0].waitNs, 10_000_000, "timed from the second begin")
        try h.end(spinB)
        XCTAssertEqual(h.waits.count, 1, "nothing left open")
    }

    func testNestingBeyondTheLimitIsCountedAsLost() throws {
        let h = try harness()
        let locks = (0..<UInt64(LOCKSCOPE_MAX_NESTING + 1)).map { rwsemA + $0 * 64 }
        for lock in locks { try h.begin(lock, Self.spin) }
        for lock in locks.reversed() { try h.end(lock) }
        XCTAssertEqual(h.counter(LOCKSCOPE_CTR_NESTING_OVERFLOW), 1)
        XCTAssertEqual(h.waits.map(\.lockAddress), Array(locks.prefix(Int(LOCKSCOPE_MAX_NESTING)).reversed()))
    }

    func testKindFilterKeepsOnlyTheChosenKinds() throws {
        let h = try harness { $0.kinds = [.rwsem] }
        try h.begin(spinB, Self.spin)
        try h.end(spinB)
        try h.begin(rwsemA, Self.write)
        try h.end(rwsemA)
        XCTAssertEqual(h.waits.map(\.lockAddress), [rwsemA])
    }

    func testLockAddressFilter() throws {
        let h = try harness {
            $0.filterByLockAddress = true
            $0.lockAddresses = [self.spinB]
        }
        for lock in [rwsemA, spinB] {
            try h.begin(lock, Self.spin)
            try h.end(lock)
        }
        XCTAssertEqual(h.waits.map(\.lockAddress), [spinB])
    }

    func testPidFilter() throws {
        let other = try harness { $0.pids = [UInt32(getpid()) + 1] }
        try other.begin(rwsemA, Self.write)
        try other.end(rwsemA)
        XCTAssertEqual(other.waits.count, 0)

        let mine = try harness { $0.pids = [UInt32(getpid())] }
        try mine.begin(rwsemA, Self.write)
        try mine.end(rwsemA)
        XCTAssertEqual(mine.waits.count, 1)
    }

    func testThreadFilter() throws {
        let tid = MmapHammer.currentThreadID()
        let other = try harness { $0.tids = [UInt32(tid) + 1] }
        try other.begin(rwsemA, Self.write)
        try other.end(rwsemA)
        XCTAssertEqual(other.waits.count, 0)

        let mine = try harness { $0.tids = [UInt32(tid)] }
        try mine.begin(rwsemA, Self.write)
        try mine.end(rwsemA)
        XCTAssertEqual(mine.waits.map(\.tid), [UInt32(tid)])
        let config = mine.program.skeleton.pointee.rodata.pointee.config
        XCTAssertEqual(config.filters, UInt32(LOCKSCOPE_FILTER_TIDS.rawValue))
    }

    /// BPF_PROG_TEST_RUN runs the program on the calling thread's CPU: pinned to each CPU in turn, a wait
    /// is kept only where `cpus` has that CPU.
    func testCPUFilterKeepsWaitsBegunOnThoseCPUs() throws {
        let online = try CPUList.online()
        defer { try? CPUAffinity.confineCurrentThread(to: online) }
        for cpu in online.prefix(2) {
            try CPUAffinity.confineCurrentThread(to: [cpu])
            let kept = try harness { $0.cpus = try! CPUList(parsing: String(cpu), online: online) }
            try kept.begin(rwsemA, Self.write)
            try kept.end(rwsemA)
            XCTAssertEqual(kept.waits.map(\.beginCPU), [UInt32(cpu)])
            XCTAssertEqual(kept.program.skeleton.pointee.rodata.pointee.config.filters, UInt32(LOCKSCOPE_FILTER_CPUS.rawValue))

            guard let elsewhere = online.first(where: { $0 != cpu }) else { continue }
            let left = try harness { $0.cpus = try! CPUList(parsing: String(elsewhere), online: online) }
            try left.begin(rwsemA, Self.write)
            try left.end(rwsemA)
            XCTAssertEqual(left.waits.count, 0, "a wait begun on CPU \(cpu) with --cpu \(elsewhere)")
            XCTAssertEqual(left.counter(LOCKSCOPE_CTR_WAITS_COMPLETED), 0)
        }
    }

    /// `--max-stack` sizes the stack map's frames (which bounds the kernel's walk): N plus the tracing frames.
    func testMaxStackSizesTheStackMap() throws {
        let short = try harness { $0.maxStackDepth = 3 }
        XCTAssertEqual(bpf_map__value_size(short.program.skeleton.pointee.maps.stacks), UInt32((3 + StackDepth.tracingFrames) * 8))
        let full = try harness()
        XCTAssertEqual(bpf_map__value_size(full.program.skeleton.pointee.maps.stacks), UInt32(LOCKSCOPE_MAX_STACK_DEPTH * 8))
    }

    func testCgroupFilter() throws {
        let elsewhere = try harness { $0.cgroupIDs = [0xdead_beef] }
        try elsewhere.begin(rwsemA, Self.write)
        try elsewhere.end(rwsemA)
        XCTAssertEqual(elsewhere.waits.count, 0)

        let resolver = try CgroupResolver()
        let membership = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
        let path = try XCTUnwrap(membership.split(separator: "\n").first { $0.hasPrefix("0::") }).dropFirst(3)
        var info = stat()
        XCTAssertEqual(stat(resolver.cgroupRoot + path, &info), 0)
        let here = try harness { $0.cgroupIDs = [UInt64(info.st_ino)] }
        try here.begin(rwsemA, Self.write)
        try here.end(rwsemA)
        XCTAssertEqual(here.waits.map(\.cgroupID), [UInt64(info.st_ino)])
        // The kernel kept the cgroup's path, for containers that are gone before the profile is built.
        XCTAssertEqual(here.program.cgroupPaths()[UInt64(info.st_ino)], path.isEmpty ? "/" : String(path))
    }

    func testMinimumWaitFilter() throws {
        let h = try harness { $0.minWaitNs = 10_000_000_000 }
        try h.begin(rwsemA, Self.write)
        try h.end(rwsemA)
        XCTAssertEqual(h.waits.count, 0)
        XCTAssertEqual(h.counter(LOCKSCOPE_CTR_WAITS_COMPLETED), 0)
    }

    /// In mount mode a wait is kept only if it began inside a mount-family syscall; the syscall itself
    /// becomes an event with its latency.
    func testMountPathFilterAndSyscallAccounting() throws {
        let h = try harness { $0.filterByMountPath = true }
        try h.begin(rwsemA, Self.write)
        try h.end(rwsemA)
        XCTAssertEqual(h.waits.count, 0, "outside a mount syscall")

        let umount2 = UInt64(MountSyscall.umount2.x86_64Number)
        try h.program.testRun(\.progs.syscall_enter, [0, umount2])
        try h.begin(rwsemA, Self.write)
        try h.end(rwsemA)
        try h.program.testRun(\.progs.syscall_exit, [0, UInt64(bitPattern: -16)])  // -EBUSY
        XCTAssertEqual(h.waits.map(\.lockAddress), [rwsemA])
        let syscalls = h.events.compactMap { if case .syscall(let call) = $0 { call } else { nil } }
        XCTAssertEqual(syscalls.count, 1)
        XCTAssertEqual(syscalls.first?.syscall, .umount2)
        XCTAssertEqual(syscalls.first?.ret, -16)
        XCTAssertGreaterThan(syscalls.first?.latencyNs ?? 0, 0)

        // A non-mount syscall opens nothing.
        try h.program.testRun(\.progs.syscall_enter, [0, 0 /* read */])
        try h.begin(rwsemA, Self.write)
        try h.end(rwsemA)
        XCTAssertEqual(h.waits.count, 1)
    }

    /// With a one-page ring buffer that nobody drains, every wait beyond what fits is counted:
    /// delivered + dropped = produced, exactly.
    func testRingBufferOverflowIsCountedExactly() throws {
        let h = try harness { $0.ringBufferBytes = 4096 }
        let produced = 200
        for _ in 0..<produced {
            try h.begin(rwsemA, Self.write)
            try h.end(rwsemA)
        }
        let delivered = h.waits.count
        let dropped = h.counter(LOCKSCOPE_CTR_RINGBUF_FULL)
        XCTAssertGreaterThan(dropped, 0)
        XCTAssertGreaterThan(delivered, 0)
        XCTAssertEqual(UInt64(delivered) + dropped, UInt64(produced))
        XCTAssertEqual(h.counter(LOCKSCOPE_CTR_WAITS_COMPLETED), UInt64(produced))
    }
}

/// Skips BPF tests when not privileged, unless LOCKSCOPE_REQUIRE_BPF=1 (CI), where that is a failure.
func requireBPF(file: StaticString = #filePath, line: UInt = #line) throws {
    if geteuid() == 0 { return }
    let message = "BPF tests need root (CAP_BPF, CAP_PERFMON)"
    if ProcessInfo.processInfo.environment["LOCKSCOPE_REQUIRE_BPF"] == "1" {
        XCTFail("\(message), and LOCKSCOPE_REQUIRE_BPF=1", file: file, line: line)
        throw XCTSkip(message)
    }
    throw XCTSkip(message)
}
