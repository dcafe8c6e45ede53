import XCTest

@testable import LockscopeCore

final class KallsymsTests: XCTestCase {
    /// A production-style kernel with CONFIG_KALLSYMS_ALL: data symbols present.
    static let withData = """
        ffffffff8170f1d0 T path_umount
        ffffffff8226b450 T down_write
        ffffffff83001000 d namespace_sem
        ffffffff83001040 d mount_lock
        ffffffff83001060 b some_table
        ffffffff83002000 D __start_once
        ffffffffc0001000 t nfs_lookup\t[nfs]
        ffffffffc0001100 t nfs_create\t[nfs]
        0000000000000000 A fixed_percpu_data
        garbage line
        """

    func testParsesFunctionsModulesAndData() {
        let symbols = Kallsyms(parsing: Self.withData)
        XCTAssertEqual(symbols.functionCount, 4)
        XCTAssertTrue(symbols.hasDataSymbols)
        XCTAssertEqual(symbols.function(at: 0xffff_ffff_8170_f2d1),
                       Kallsyms.Symbol(name: "path_umount", offset: 0x101, module: nil))
        XCTAssertEqual(symbols.function(at: 0xffff_ffff_8170_f2d1)?.nameWithOffset, "path_umount+0x101")
        XCTAssertEqual(symbols.function(at: 0xffff_ffff_c000_1105),
                       Kallsyms.Symbol(name: "nfs_create", offset: 5, module: "nfs"))
        XCTAssertNil(symbols.function(at: 0xffff_ffff_8000_0000), "below every symbol")
        XCTAssertEqual(symbols.dataObject(at: 0xffff_ffff_8300_1044)?.name, "mount_lock")
        XCTAssertEqual(symbols.dataObject(at: 0xffff_ffff_8300_1044)?.offset, 4)
        XCTAssertNotEqual(symbols.dataObject(at: 0xffff_ffff_8300_2008)?.name, "__start_once",
                          "section markers are not objects")
        XCTAssertTrue(symbols.hasSymbol(named: "namespace_sem"))
    }

    func testFunctionOnlyKernelHasNoDataSymbols() {
        let symbols = Kallsyms(parsing: AggregatorTests.kallsymsText + "\nffffffff83002000 D __start_rodata\n")
        XCTAssertFalse(symbols.hasDataSymbols)
        XCTAssertTrue(symbols.isLockText(0xffff_ffff_8226_e910), "_raw_spin_lock is in lock text")
        XCTAssertTrue(symbols.isLockText(0xffff_ffff_8226_b460), "down_write is in sched text")
        XCTAssertFalse(symbols.isLockText(0xffff_ffff_8170_f2d1))
    }

    func testHiddenAddressesAreAClearError() throws {
        let path = NSTemporaryDirectory() + "kallsyms-\(getpid())"
        try "0000000000000000 T path_umount\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        XCTAssertThrowsError(try Kallsyms.load(path: path)) { error in
            XCTAssertTrue("\(error)".contains("kptr_restrict"), "\(error)")
        }
        XCTAssertThrowsError(try Kallsyms.load(path: "/nonexistent/kallsyms"))
    }

    /// With data symbols, locks are named by symbol: the seqlock's spinlock as the seqlock, an rwsem's
    /// wait_lock as `<rwsem>.wait_lock`, anything else inside an object as `symbol+0xoff`.
    func testNamesBySymbolOnKernelsWithDataSymbols() {
        let namer = LockNamer(symbols: Kallsyms(parsing: Self.withData),
                              layout: KernelLockLayout(rwsemWaitLockOffset: 0x14, seqlockLockOffset: 4))
        let candidates = [
            LockCandidate(address: 0xffff_ffff_8300_1000, kind: .rwsem, contentions: 5, stacks: [], topCaller: nil),
            LockCandidate(address: 0xffff_ffff_8300_1014, kind: .spinlock, contentions: 2, stacks: [], topCaller: nil),
            LockCandidate(address: 0xffff_ffff_8300_1044, kind: .spinlock, contentions: 9, stacks: [], topCaller: nil),
            LockCandidate(address: 0xffff_ffff_8300_1068, kind: .spinlock, contentions: 1, stacks: [], topCaller: nil),
            LockCandidate(address: 0xffff_8880_0000_0000, kind: .spinlock, contentions: 1, stacks: [],
                          topCaller: "alloc_vfsmnt+0x3e"),
        ]
        let names = namer.names(for: candidates)
        XCTAssertEqual(names[0xffff_ffff_8300_1000], LockName("namespace_sem", .symbol))
        XCTAssertEqual(names[0xffff_ffff_8300_1014], LockName("namespace_sem.wait_lock", .symbol))
        XCTAssertEqual(names[0xffff_ffff_8300_1044], LockName("mount_lock", .symbol))
        XCTAssertEqual(names[0xffff_ffff_8300_1068], LockName("some_table+0x8", .symbol))
        XCTAssertEqual(names[0xffff_8880_0000_0000], LockName("alloc_vfsmnt+0x3e", .caller))
    }

    /// Without data symbols, an rwsem's wait_lock is recognised by the BTF offset and named after it.
    func testWaitLockAttributedToItsInferredRwsem() {
        let namer = LockNamer(symbols: Kallsyms(parsing: AggregatorTests.kallsymsText),
                              layout: KernelLockLayout(rwsemWaitLockOffset: 0x14))
        let sem: UInt64 = 0xffff_ffff_8300_1000
        let candidates = [
            LockCandidate(address: sem, kind: .rwsem, contentions: 10,
                          stacks: [(["down_write", "path_umount"], 6), (["down_read", "clone_private_mount"], 4)],
                          topCaller: "path_umount+0x101"),
            LockCandidate(address: sem + 0x14, kind: .spinlock, contentions: 3,
                          stacks: [(["_raw_spin_lock_irq", "rwsem_down_write_slowpath", "down_write"], 3)],
                          topCaller: "rwsem_down_write_slowpath+0x30", outerLocks: [sem: 3]),
        ]
        let names = namer.names(for: candidates)
        XCTAssertEqual(names[sem], LockName("namespace_sem", .inferred))
        XCTAssertEqual(names[sem + 0x14], LockName("namespace_sem.wait_lock", .inferred))
    }

    func testCallerSkipsLockPrimitivesAndCompilerSuffixes() {
        XCTAssertEqual(LockNamer.caller(in: ["__pv_queued_spin_lock_slowpath", "_raw_spin_lock", "mntput_no_expire"]),
                       "mntput_no_expire")
        XCTAssertEqual(LockNamer.caller(in: ["__mutex_lock.constprop.0", "exp_funnel_lock"]), "exp_funnel_lock")
        XCTAssertEqual(LockNamer.baseName("do_lock_mount.part.0"), "do_lock_mount")
        XCTAssertEqual(LockNamer.baseName("path_umount"), "path_umount")
    }
}
