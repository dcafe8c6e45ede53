import CLockscopeBPF
import XCTest

@testable import LockscopeCore

/// The pure parts of perf lock contention's filters and views: CPU lists, callstack filters, the
/// per-thread and per-address tables the aggregation keeps, and `--max-stack`'s cut.
final class FilterViewsTests: XCTestCase {
    private static let spin = AggregatorTests.spin
    private static let write = AggregatorTests.rwsemWrite

    // MARK: CPU lists (record --cpu)

    func testCPUListsParseAsPerfAndCpusetWriteThem() throws {
        XCTAssertEqual(try CPUList(parsing: "0,2-3", online: [0, 1, 2, 3]).cpus, [0, 2, 3])
        XCTAssertEqual(try CPUList(parsing: "1", online: [0, 1]).cpus, [1])
        XCTAssertEqual(try CPUList(parsing: "3-3,1,1", online: [0, 1, 2, 3]).cpus, [1, 3])
        XCTAssertEqual(try CPUList(parsing: " 0-1 ", online: [0, 1]).cpus, [0, 1])
    }

    func testBadCPUListsAreRefusedWithWhatToGive() {
        func refusal(_ text: String, online: [Int] = [0, 1]) -> String {
            do {
                _ = try CPUList(parsing: text, online: online)
                return "accepted"
            } catch { return "\(error)" }
        }
        for text in ["", "x", "0-", "-1", "2-1", "0,,1", "1.5", "0x1"] {
            XCTAssertEqual(refusal(text), "'\(text)' is not a CPU list: write it as perf -C and cpuset.cpus do, e.g. 0,2-3", text)
        }
        XCTAssertEqual(refusal("2"), "CPU 2 is not online on this machine: give CPUs from 0-1")
        XCTAssertEqual(refusal("1-3", online: [0, 1, 4, 5, 6]), "CPUs 2,3 are not online on this machine: give CPUs from 0-1,4-6")
    }

    func testCPUListsAreDescribedAsRanges() {
        XCTAssertEqual(CPUList.describe([0, 1, 2, 5, 7, 8]), "0-2,5,7-8")
        XCTAssertEqual(CPUList.describe([3]), "3")
        XCTAssertEqual(CPUList.describe([]), "")
    }

    // MARK: Callstack filter (record --callstack-filter)

    func testCallstackFilterMatchesAFrameContainingAName() throws {
        let filter = try CallstackFilter(parsing: "do_move_mount,path_umount")
        XCTAssertEqual(filter.names, ["do_move_mount", "path_umount"])
        XCTAssertTrue(filter.matches(["_raw_spin_lock", "do_lock_mount.part.0", "do_move_mount.isra.0"]))
        XCTAssertTrue(filter.matches(["down_write", "path_umount"]))
        XCTAssertFalse(filter.matches(["down_read", "clone_private_mount"]))
        XCTAssertFalse(filter.matches([]))
        for bad in ["", ",", "a,,b", "a, "] {
            XCTAssertThrowsError(try CallstackFilter(parsing: bad), bad)
        }
    }

    /// Waits are kept by their stack: a matching stack's waits all, a stack without a match none, and
    /// waits without a stack are dropped and counted (callstack_filter_no_stack).
    func testStackSelectorKeepsMatchingStacksAndCountsWaitsWithoutOne() {
        let symbols = Kallsyms(parsing: AggregatorTests.kallsymsText)
        var looked: [Int32] = []
        let selector = StackSelector(filter: CallstackFilter(names: ["path_umount"]), stackAddresses: { id in
            looked.append(id)
            return AggregatorTests.stacks[id]
        }, symbols: symbols, maxDepth: StackDepth.maximum)
        var aggregator = Aggregator(topology: nil)
        aggregator.stackSelector = selector
        for stack: Int32 in [1, 1, 2, 3, -1, 1] {
            aggregator.record(WaitEvent(flags: Self.write, waitNs: 1_000, lockAddress: AggregatorTests.sem, stackID: stack))
        }
        var drops = Drops()
        drops.callstackFilterNoStack = selector.noStack
        let profile = aggregator.profile(AggregatorTests.inputs(drops: drops))
        XCTAssertEqual(profile.events, 3)
        XCTAssertEqual(profile.locks.map(\.stats.contentions), [3])
        XCTAssertEqual(profile.locks[0].stacks.map(\.frames), [["rwsem_down_write_slowpath", "down_write", "path_umount",
                                                                 "__x64_sys_umount", "do_syscall_64"]])
        XCTAssertEqual(selector.noStack, 1)
        XCTAssertEqual(selector.leftOut, 2)
        XCTAssertEqual(profile.drops.callstackFilterNoStack, 1)
        XCTAssertEqual(profile.dropped, 1)
        // Each stack id is read and symbolized once, whatever its number of waits.
        XCTAssertEqual(looked.sorted(), [1, 2, 3])
    }

    // MARK: --max-stack

    /// Frames are cut after the tracing glue: the kept frames start at the lock's slow path.
    func testMaxStackCutsAfterTheTracingFrames() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.write, waitNs: 1_000, lockAddress: AggregatorTests.sem, stackID: 1))
        var inputs = AggregatorTests.inputs()
        inputs.maxStackDepth = 2
        let profile = aggregator.profile(inputs)
        XCTAssertEqual(profile.locks[0].stacks.map(\.frames), [["rwsem_down_write_slowpath", "down_write"]])
        XCTAssertEqual(StackDepth.kernelFrames(keeping: 3), 11)
        XCTAssertEqual(StackDepth.kernelFrames(keeping: 48), 48)
    }

    // MARK: Per-thread table (report --by thread)

    func testThreadsAreSummedAcrossLocksWithTheirProcessAndName() {
        var aggregator = Aggregator(topology: nil)
        let waits: [(tid: UInt32, pid: UInt32, comm: Comm, lock: UInt64, ns: UInt64)] = [
            (101, 100, "containerd", AggregatorTests.sem, 5_000),
            (101, 100, "containerd", AggregatorTests.mountLock, 700),
            (102, 100, "containerd", AggregatorTests.sem, 9_000),
            (201, 200, "runc", AggregatorTests.mountLock, 300),
            (201, 200, "runc", AggregatorTests.mountLock, 100),
        ]
        for wait in waits {
            aggregator.record(WaitEvent(flags: wait.lock == AggregatorTests.sem ? Self.write : Self.spin, waitNs: wait.ns,
                                        lockAddress: wait.lock, pid: wait.pid, tid: wait.tid, stackID: 2, comm: wait.comm))
        }
        let profile = aggregator.profile(AggregatorTests.inputs())
        XCTAssertEqual(profile.threads, [
            ThreadStats(tid: 102, pid: 100, comm: "containerd", contentions: 1, totalWaitNs: 9_000, maxWaitNs: 9_000),
            ThreadStats(tid: 101, pid: 100, comm: "containerd", contentions: 2, totalWaitNs: 5_700, maxWaitNs: 5_000),
            ThreadStats(tid: 201, pid: 200, comm: "runc", contentions: 2, totalWaitNs: 400, maxWaitNs: 300),
        ])
    }

    /// Past `maxThreadsPerLock` threads on a lock, the others are summed into `[other threads]`: memory
    /// stays bounded, and the rows still add up to the lock's waits.
    func testThreadsPastTheCapAreOneOverflowRow() throws {
        var aggregator = Aggregator(topology: nil)
        let threads = Aggregator.maxThreadsPerLock + 10
        for tid in 1...threads {
            aggregator.record(WaitEvent(flags: Self.spin, waitNs: UInt64(tid), lockAddress: AggregatorTests.mountLock,
                                        pid: 7, tid: UInt32(tid), stackID: 3, comm: "worker"))
        }
        let rows = try XCTUnwrap(aggregator.profile(AggregatorTests.inputs()).threads)
        XCTAssertEqual(rows.count, Aggregator.maxThreadsPerLock + 1)
        let other = try XCTUnwrap(rows.last)
        XCTAssertEqual(other.tid, nil)
        XCTAssertEqual(other.comm, ThreadStats.otherThreads)
        XCTAssertEqual(other.contentions, 10)
        XCTAssertEqual(other.totalWaitNs, (Aggregator.maxThreadsPerLock + 1...threads).reduce(0) { $0 + UInt64($1) })
        XCTAssertEqual(rows.map(\.contentions).reduce(0, +), UInt64(threads))
        XCTAssertEqual(rows.first?.tid, Int32(Aggregator.maxThreadsPerLock))
    }

    /// Only the locks a profile keeps count: a wait on a lock `--locks` leaves out is in no thread's row.
    func testThreadTotalsFollowTheLockSelection() {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.write, waitNs: 4_000, lockAddress: AggregatorTests.sem, tid: 5, stackID: 2))
        aggregator.record(WaitEvent(flags: Self.spin, waitNs: 50, lockAddress: AggregatorTests.mountLock, tid: 5, stackID: 3))
        let profile = aggregator.profile(AggregatorTests.inputs(selection: .names(["mount_lock"])))
        XCTAssertEqual(profile.locks.map(\.name), ["mount_lock"])
        XCTAssertEqual(profile.threads?.map(\.totalWaitNs), [50])
    }

    // MARK: Per-address table (report --instances)

    /// Per-object locks named after one caller are one lock; each address keeps its own row.
    func testEachAddressUnderANameKeepsItsOwnRow() throws {
        var aggregator = Aggregator(topology: nil)
        let addresses: [UInt64] = [0xffff_8881_0000_1000, 0xffff_8881_0000_2000, 0xffff_8881_0000_3000]
        for (index, address) in addresses.enumerated() {
            for wait in 0...index {
                aggregator.record(WaitEvent(flags: Self.spin, waitNs: UInt64(100 * (wait + 1)), lockAddress: address, stackID: 5))
            }
        }
        let profile = aggregator.profile(AggregatorTests.inputs())
        let lock = try XCTUnwrap(profile.locks.first)
        XCTAssertEqual(lock.instances, 3)
        XCTAssertEqual(lock.stats.contentions, 6)
        XCTAssertEqual(lock.byAddress, [
            InstanceStats(address: "0xffff888100003000", contentions: 3, totalWaitNs: 600, maxWaitNs: 300),
            InstanceStats(address: "0xffff888100002000", contentions: 2, totalWaitNs: 300, maxWaitNs: 200),
            InstanceStats(address: "0xffff888100001000", contentions: 1, totalWaitNs: 100, maxWaitNs: 100),
        ])
        XCTAssertEqual(lock.address, "0xffff888100003000", "the hottest address is the lock's")
    }

    func testAddressesPastTheCapAreOneOverflowRow() {
        let rows = (1...70).map { InstanceStats(address: "0x\($0)", contentions: 1, totalWaitNs: UInt64($0), maxWaitNs: UInt64($0)) }
        let capped = ProfileBuilder.cappedInstances(rows)
        XCTAssertEqual(capped.count, ProfileBuilder.maxAddressesPerLock)
        XCTAssertEqual(capped.first?.address, "0x70")
        XCTAssertEqual(capped.last, InstanceStats(address: InstanceStats.otherAddresses, addresses: 7, contentions: 7,
                                                  totalWaitNs: (1...7).reduce(0, +), maxWaitNs: 7))
    }

    /// A data symbol covering the address names the instance (where kallsyms has data symbols).
    func testAnInstanceIsNamedByItsDataSymbol() throws {
        let symbols = Kallsyms(parsing: AggregatorTests.kallsymsText + "\nffffffff83001000 d namespace_sem\nffffffff83001040 d next_object\n")
        var inputs = AggregatorTests.inputs()
        inputs.symbols = symbols
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.write, waitNs: 10, lockAddress: AggregatorTests.sem, stackID: 2))
        aggregator.record(WaitEvent(flags: Self.write, waitNs: 10, lockAddress: AggregatorTests.sem + 0x14, stackID: 2))
        let profile = aggregator.profile(inputs)
        let symbolsByAddress = Dictionary(uniqueKeysWithValues: profile.locks.flatMap { $0.byAddress ?? [] }.map { ($0.address, $0.symbol) })
        XCTAssertEqual(symbolsByAddress["0xffffffff83001000"], "namespace_sem")
        XCTAssertEqual(symbolsByAddress["0xffffffff83001014"], "namespace_sem+0x14")
    }

    // MARK: Profiles

    /// Old profiles (without the tables) still read; new ones carry them through a write and a read.
    func testThreadsAndAddressesRoundTripAndAreOptional() throws {
        var aggregator = Aggregator(topology: nil)
        aggregator.record(WaitEvent(flags: Self.write, waitNs: 10, lockAddress: AggregatorTests.sem, pid: 3, tid: 4,
                                    stackID: 2, comm: "mount"))
        let profile = aggregator.profile(AggregatorTests.inputs())
        let data = try Profile.makeEncoder().encode(profile)
        let text = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(text.contains("\"threads\""))
        XCTAssertTrue(text.contains("\"by_address\""))
        XCTAssertEqual(try Profile.decode(data), profile)

        var old = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        old["threads"] = nil
        old["locks"] = (old["locks"] as? [[String: Any]])?.map { lock in lock.filter { $0.key != "by_address" } }
        let read = try Profile.decode(try JSONSerialization.data(withJSONObject: old))
        XCTAssertNil(read.threads)
        XCTAssertNil(read.locks[0].byAddress)
        XCTAssertEqual(read.locks[0].stats, profile.locks[0].stats)
    }
}
