import LockscopeCore
import Testing
@testable import LockscopeExport

/// `export`/`flamegraph --callstack-filter` over a recorded profile: only the stacks with a matching
/// frame, each where its own contexts put it; waits without a stack left out.
@Suite struct CallstackFilterExportTests {
    @Test func foldedKeepsOnlyMatchingStacks() throws {
        let (view, kept, all) = SampleProfiles.matching(try Fixtures.profile(), filter: CallstackFilter(names: ["path_umount"]))
        #expect(try FoldedExporter.render(view) == """
            [lock] mount_lock;entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_umount;path_umount;do_umount;umount_tree;_raw_spin_lock;queued_spin_lock_slowpath 20000
            [lock] namespace_sem;entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_umount;path_umount;down_write 250000

            """)
        #expect(try FoldedExporter.render(view, grouping: StackGrouping([.container, .lock])) == """
            [container] 9b1e44c0d2f3;[lock] mount_lock;entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_umount;path_umount;do_umount;umount_tree;_raw_spin_lock;queued_spin_lock_slowpath 20000
            [container] 9b1e44c0d2f3;[lock] namespace_sem;entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_umount;path_umount;down_write 150000
            [container] host;[lock] namespace_sem;entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_umount;path_umount;down_write 100000

            """)
        #expect(kept.ns == 270_000)
        #expect(all.ns == 1_090_000)
        #expect(all.count == Fixtures.totals(try Fixtures.profile()).contentions)
    }

    /// A name in no stack leaves nothing; a name in every stack leaves every stack but not `[no stack]`.
    @Test func nothingMatchedAndEverythingMatched() throws {
        let profile = try Fixtures.profile()
        let none = SampleProfiles.matching(profile, filter: CallstackFilter(names: ["no_such_function"]))
        #expect(none.view.locks.isEmpty)
        #expect(try FoldedExporter.render(none.view) == "")
        let every = SampleProfiles.matching(profile, filter: CallstackFilter(names: ["do_syscall_64"]))
        let lines = FoldedExporterTests.parse(try FoldedExporter.render(every.view))
        #expect(lines.count == 5)
        #expect(!lines.contains { $0.frames.contains("[no stack]") })
        #expect(every.kept.ns == 1_090_000 - 100_000, "all but namespace_sem's 100 us without a stack")
    }

    /// Matching is on the frames as recorded: a substring of a function name (`do_move_mount` in
    /// `do_move_mount.isra.0`) matches, as perf's -S does.
    @Test func aNameMatchesInsideAFrame() throws {
        let view = SampleProfiles.matching(try Fixtures.profile(), filter: CallstackFilter(names: ["move_mo"])).view
        #expect(try FoldedExporter.render(view, grouping: .none)
            == "entry_SYSCALL_64_after_hwframe;do_syscall_64;__do_sys_move_mount;do_move_mount;down_write 50000\n")
    }
}
