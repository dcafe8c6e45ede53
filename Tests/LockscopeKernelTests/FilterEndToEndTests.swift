import Foundation
import LockscopeCore
import LockscopeStress
import LockscopeTestSupport
import XCTest

/// perf lock contention's filters (`record --cpu`, `--tid`, `--callstack-filter`, `--max-stack`) against
/// real storms. Each filtered recording runs at the same time as an unfiltered one over the same waits,
/// so "fewer than without the filter" compares like with like, and each test fails when its filter is
/// ignored: the filtered profile would then have what only the unfiltered one may have.
///
/// The storms: a containerd-style mount storm confined half to CPU 0 and half to CPU 1, and three threads
/// of this process mapping and unmapping memory (contending on their process's mmap_lock), pinned to CPU 0,
/// 1 and 1. The CPU and thread filters are checked on those threads' waits (`--tid` of all three is the
/// unfiltered baseline): they are pinned, so every wait of theirs begins and ends on the CPU it is pinned
/// to, which the profile's CPU breakdown (the CPU that took the lock) can then check.
final class FilterEndToEndTests: XCTestCase {
    /// One session for every test here: the storms run once, under six recordings.
    struct Session {
        var mountBaseline: Profile
        var callstackFiltered: Profile
        var maxStack3: Profile
        var threadsBaseline: Profile
        var cpu1: Profile
        var oneThread: Profile
        /// The hammer threads' ids, and the CPU each is pinned to.
        var hammers: [(tid: Int32, cpu: Int)]
    }

    nonisolated(unsafe) private static var session: Result<Session, Error>?

    private func recorded() throws -> Session {
        try requireBPF()
        if Self.session == nil { Self.session = Result { try Self.runSession() } }
        return try Self.session!.get()
    }

    private static func runSession() throws -> Session {
        let directory = NSTemporaryDirectory() + "lockscope-filters-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let hammers = try MmapHammer(cpus: [0, 1, 1])
        defer { hammers.stop() }
        let tids = hammers.tids.map(String.init)
        let common = ["--quiet", "--no-report", "--spin-hz", "0", "--ringbuf-size", "32M"]
        let plans: [(name: String, arguments: [String])] = [
            ("mount", ["--locks", "mount"]),
            ("callstack", ["--locks", "mount", "--callstack-filter", "do_move_mount"]),
            ("maxstack", ["--locks", "mount", "--max-stack", "3"]),
            ("threads", ["--locks", "all", "--tid", tids.joined(separator: ",")]),
            ("cpu1", ["--locks", "all", "--tid", tids.joined(separator: ","), "--cpu", "1"]),
            ("onethread", ["--locks", "all", "--tid", tids[1]]),
        ]
        var recorders: [(name: String, path: String, process: LockscopeProcess)] = []
        defer { for recorder in recorders where recorder.process.process.isRunning { recorder.process.signal(SIGKILL) } }
        for plan in plans {
            let path = "\(directory)/\(plan.name).json"
            let process = try LockscopeProcess(["record"] + common + plan.arguments + ["-o", path], directory: directory)
            recorders.append((plan.name, path, process))
            guard process.waitUntilAttached() else {
                throw UserError("record \(plan.arguments) did not attach: \(process.stderr)")
            }
        }

        hammers.start()
        // One storm per CPU: a process runs one storm at a time, and each confined with taskset.
        let storms = try [0, 1].map { cpu in
            try LockscopeProcess(["stress", "--containers", "64", "--layers", "20", "--parallel", "4"],
                                 prefix: ["/usr/bin/taskset", "-c", String(cpu)], directory: directory)
        }
        let stormStatus = storms.map { $0.waitForExit() }
        hammers.stop()
        guard stormStatus == [0, 0] else {
            throw UserError("stress exited \(stormStatus): \(storms.map(\.stderr))")
        }

        var profiles: [String: Profile] = [:]
        for recorder in recorders {
            recorder.process.signal(SIGINT)
            let status = recorder.process.waitForExit()
            guard status == 0 else { throw UserError("record \(recorder.name) exited \(status): \(recorder.process.stderr)") }
            profiles[recorder.name] = try Profile.load(path: recorder.path)
        }
        return Session(mountBaseline: profiles["mount"]!, callstackFiltered: profiles["callstack"]!,
                       maxStack3: profiles["maxstack"]!, threadsBaseline: profiles["threads"]!, cpu1: profiles["cpu1"]!,
                       oneThread: profiles["onethread"]!, hammers: zip(hammers.tids, [0, 1, 1]).map { ($0, $1) })
    }

    private static func contentions(_ profile: Profile) -> UInt64 { profile.locks.map(\.stats.contentions).reduce(0, +) }

    /// `--cpu 1`: every wait of the pinned threads on CPU 1, none of CPU 0's, fewer than without it.
    func testCPUFilterKeepsOnlyWaitsThatBeganOnThoseCPUs() throws {
        let session = try recorded()
        let baselineCPUs = Set(session.threadsBaseline.locks.flatMap { $0.byCpu.map(\.key) })
        XCTAssertEqual(baselineCPUs, ["0", "1"], "the unfiltered recording saw waits on both CPUs")
        let filtered = session.cpu1
        XCTAssertEqual(filtered.recording.cpus, "1")
        XCTAssertGreaterThan(Self.contentions(filtered), 0)
        XCTAssertLessThan(Self.contentions(filtered), Self.contentions(session.threadsBaseline))
        for lock in filtered.locks {
            XCTAssertEqual(lock.byCpu.map(\.key), ["1"], lock.name)
            for stack in lock.stacks { XCTAssertEqual(Set(stack.contexts.map(\.cpu)), [1], lock.name) }
        }
        // Only the threads pinned to CPU 1 waited there.
        let onCPU1 = Set(session.hammers.filter { $0.cpu == 1 }.map(\.tid))
        XCTAssertTrue(Set((filtered.threads ?? []).compactMap(\.tid)).isSubset(of: onCPU1))
    }

    /// `--tid T`: only T's waits, fewer than its siblings' and its own together.
    func testThreadFilterKeepsOnlyThatThread() throws {
        let session = try recorded()
        let chosen = session.hammers[1].tid
        let baselineThreads = Set((session.threadsBaseline.threads ?? []).compactMap(\.tid))
        XCTAssertGreaterThan(baselineThreads.count, 1, "the unfiltered recording saw several threads wait")
        let filtered = session.oneThread
        XCTAssertEqual(filtered.recording.tids, [chosen])
        let threads = try XCTUnwrap(filtered.threads)
        XCTAssertEqual(threads.map(\.tid), [chosen])
        XCTAssertEqual(threads.first?.contentions, Self.contentions(filtered))
        XCTAssertGreaterThan(Self.contentions(filtered), 0)
        XCTAssertLessThan(Self.contentions(filtered), Self.contentions(session.threadsBaseline))
    }

    /// `--callstack-filter do_move_mount`: every stack has it, fewer waits than without the filter.
    func testCallstackFilterKeepsOnlyMatchingStacks() throws {
        let session = try recorded()
        let baseline = session.mountBaseline
        XCTAssertTrue(baseline.locks.contains { $0.stacks.contains { !$0.frames.contains { $0.contains("do_move_mount") } } },
                      "the unfiltered recording has stacks without do_move_mount")
        let filtered = session.callstackFiltered
        XCTAssertEqual(filtered.recording.callstackFilter, ["do_move_mount"])
        XCTAssertGreaterThan(Self.contentions(filtered), 0)
        XCTAssertLessThan(Self.contentions(filtered), Self.contentions(baseline))
        for lock in filtered.locks {
            for stack in lock.stacks {
                XCTAssertTrue(stack.frames.contains { $0.contains("do_move_mount") }, "\(lock.name): \(stack.frames)")
            }
        }
    }

    /// `--max-stack 3`: no stack deeper than 3 frames, where the unfiltered recording has deeper ones.
    func testMaxStackKeepsThatManyFrames() throws {
        let session = try recorded()
        XCTAssertGreaterThan(session.mountBaseline.locks.flatMap(\.stacks).map(\.frames.count).max() ?? 0, 3)
        let filtered = session.maxStack3
        XCTAssertEqual(filtered.recording.maxStack, 3)
        let stacks = filtered.locks.flatMap(\.stacks)
        XCTAssertFalse(stacks.isEmpty)
        for stack in stacks { XCTAssertLessThanOrEqual(stack.frames.count, 3, "\(stack.frames)") }
        // The innermost frames are the lock functions, as in the full stacks: the tracing glue is not counted.
        for stack in stacks where stack.frames != ["[no stack]"] {
            XCTAssertTrue(LockNamer.isLockPrimitive(stack.frames[0]), "\(stack.frames)")
        }
    }
}

/// Threads of this process that map and unmap a page in a loop, each pinned to a CPU: they contend on
/// their process's mmap_lock, a lock storm whose waiters are known by thread id before it starts.
final class MmapHammer: @unchecked Sendable {
    private let lock = NSLock()
    private var started = false
    private var stopped = false
    private var threads: [Thread] = []
    /// Each thread's id, in the order of the CPUs given (set before `init` returns).
    private(set) var tids: [Int32] = []

    init(cpus: [Int]) throws {
        let ready = DispatchSemaphore(value: 0)
        tids = [Int32](repeating: 0, count: cpus.count)
        for (index, cpu) in cpus.enumerated() {
            let thread = Thread { [self] in
                try? CPUAffinity.confineCurrentThread(to: [cpu])
                let tid = MmapHammer.currentThreadID()
                lock.withLock { tids[index] = tid }
                ready.signal()
                while !lock.withLock({ started || stopped }) { usleep(1_000) }
                while !lock.withLock({ stopped }) {
                    for _ in 0..<64 {
                        let page = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                        if page != MAP_FAILED { munmap(page, 4096) }
                    }
                }
            }
            threads.append(thread)
            thread.start()
        }
        for _ in cpus { ready.wait() }
    }

    /// The calling thread's id (gettid, which this libc's Swift module does not import).
    static func currentThreadID() -> Int32 {
        typealias GetTID = @convention(c) () -> Int32
        guard let symbol = dlsym(nil, "gettid") else { return 0 }
        return unsafeBitCast(symbol, to: GetTID.self)()
    }

    func start() { lock.withLock { started = true } }
    func stop() { lock.withLock { stopped = true } }
}
