import Foundation
import LockscopeCore
import LockscopeTestSupport
import XCTest

/// User stacks on a real kernel: `record` around programs that issue mount storms shows the issuers'
/// own functions below the kernel's mount path, for waits on namespace_sem.
final class UserStackEndToEndTests: XCTestCase {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "lockscope-ustack-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Compiles the C helper with frame pointers into `directory`; with `stripped`, also strips it.
    private func buildHelper(in directory: String, stripped: Bool = false) throws -> String {
        guard ExternalTool.shouldRun("cc"), !stripped || ExternalTool.shouldRun("strip") else {
            throw XCTSkip("cc or strip is not installed (apt-get install gcc binutils)")
        }
        try IdmapHelper.source.write(toFile: "\(directory)/idmap_helper.c", atomically: true, encoding: .utf8)
        let binary = "\(directory)/idmap_helper"
        _ = try ExternalTool.check("cc", ["-O1", "-fno-omit-frame-pointer", "-o", binary, "\(directory)/idmap_helper.c"],
                                   install: "apt-get install gcc")
        if stripped { _ = try ExternalTool.check("strip", [binary], install: "apt-get install binutils") }
        return binary
    }

    /// Records `command` (retrying: 2 CPUs collide on namespace_sem by chance) until the folded stacks have
    /// a namespace_sem line that `matches`; returns the folded lines of the last recording.
    private func recordUntil(_ command: [String], in directory: String,
                             matches: (String) -> Bool) throws -> (folded: [String], profile: Profile) {
        var folded: [String] = []
        var profile: Profile?
        for _ in 0..<4 {
            let run = try LockscopeRun.run(["record", "-o", "\(directory)/p.json", "--folded", "\(directory)/p.folded",
                                            "--quiet", "--no-report", "--spin-hz", "0", "--ringbuf-size", "64M", "--"] + command)
            XCTAssertEqual(run.status, 0, run.stderr)
            folded = try String(contentsOfFile: "\(directory)/p.folded", encoding: .utf8).split(separator: "\n").map(String.init)
            profile = try Profile.load(path: "\(directory)/p.json")
            if folded.contains(where: { $0.hasPrefix("[lock] namespace_sem;") && matches($0) }) { break }
        }
        return (folded, profile!)
    }

    /// The kernel's mount-path frames that follow the user frames in a folded line: the syscall entry,
    /// then the mount syscall's own function.
    static let mountSyscallEntry = ["__x64_sys_open_tree", "__x64_sys_move_mount", "__x64_sys_mount_setattr",
                                    "__x64_sys_umount", "__x64_sys_mount", "__x64_sys_unshare", "__do_sys_move_mount",
                                    "__do_sys_open_tree"]

    func testCHelpersFunctionsAppearBelowTheKernelMountPathOnNamespaceSem() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let helper = try buildHelper(in: directory)
        try FileManager.default.createDirectory(atPath: "\(directory)/run", withIntermediateDirectories: true)
        let callers = "main;run_worker;prepare_idmapped_overlay;do_prepare_idmapped_overlay;issue_syscall;"
        let (folded, profile) = try recordUntil([helper, "\(directory)/run", "16", "30", "20"], in: directory) {
            $0.contains(callers)
        }
        let lines = folded.filter { $0.hasPrefix("[lock] namespace_sem;") && $0.contains(callers) }
        XCTAssertFalse(lines.isEmpty, "no namespace_sem stack with the helper's call path:\n" + folded.joined(separator: "\n"))
        for line in lines {
            // Root first: the user frames, then the kernel's syscall entry and the mount path, the lock last.
            let frames = line.split(separator: " ").dropLast().joined(separator: " ").split(separator: ";").map(String.init)
            let issue = frames.firstIndex(of: "issue_syscall")!
            XCTAssertEqual(frames[issue + 1], "entry_SYSCALL_64_after_hwframe", line)
            XCTAssertTrue(frames[(issue + 1)...].contains { Self.mountSyscallEntry.contains($0) }, line)
            XCTAssertTrue(frames.last!.contains("slowpath") || frames.last!.hasPrefix("rwsem"), line)
        }
        // Every stack of a wait inside the helper's mount syscalls has the user part (mount is the default).
        let namespaceSem = try XCTUnwrap(profile.locks.first { $0.name == "namespace_sem" })
        XCTAssertTrue(namespaceSem.stacks.contains { $0.userFrames?.contains("prepare_idmapped_overlay") == true })
        XCTAssertEqual(profile.recording.userStacks, "mount")
    }

    func testStrippedHelpersFramesAreMarkedNotDropped() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let helper = try buildHelper(in: directory, stripped: true)
        try FileManager.default.createDirectory(atPath: "\(directory)/run", withIntermediateDirectories: true)
        // The helper's own syscall function is the innermost user frame: the syscall instruction is in it.
        let fromHelper = { (line: String) in line.range(of: #";idmap_helper\+0x[0-9a-f]+;entry_SYSCALL_64_after_hwframe;"#, options: .regularExpression) != nil }
        let (folded, _) = try recordUntil([helper, "\(directory)/run", "16", "30", "20"], in: directory, matches: fromHelper)
        XCTAssertFalse(folded.contains { $0.contains("prepare_idmapped_overlay") || $0.contains("issue_syscall") },
                       "a stripped binary has no names")
        let marked = folded.filter { $0.hasPrefix("[lock] namespace_sem;") && fromHelper($0) }
        XCTAssertFalse(marked.isEmpty, folded.joined(separator: "\n"))
        for line in marked {
            // main -> run_worker -> (prepare_idmapped_overlay -> do_prepare_idmapped_overlay | release_overlay |
            // mount_overlay_root | enter_new_mount_namespace) -> issue_syscall: at least four helper frames, as
            // file offsets, none dropped.
            let helperFrames = line.split(separator: ";").filter { $0.hasPrefix("idmap_helper+0x") }
            XCTAssertGreaterThanOrEqual(helperFrames.count, 4, line)
        }
    }

    /// `lockscope stress --runtime containerd` (Swift): its shims' Swift functions appear, demangled, below
    /// the kernel's mount path.
    func testStressSwiftFramesAppear() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let binary = try LockscopeBinary.path()
        let (folded, profile) = try recordUntil([binary, "stress", "--runtime", "containerd", "--containers", "64",
                                                 "--layers", "20", "--parallel", "8", "--containers-per-pod", "8"],
                                                in: directory) { $0.contains("LockscopeStress.") }
        let swiftLines = folded.filter { $0.contains(";LockscopeStress.") && $0.contains(";entry_SYSCALL_64_after_hwframe;") }
        XCTAssertFalse(swiftLines.isEmpty, folded.joined(separator: "\n"))
        XCTAssertTrue(swiftLines.contains { $0.contains("LockscopeStress.MountCounter.") }, swiftLines.joined(separator: "\n"))
        for line in swiftLines {
            let entry = line.range(of: ";entry_SYSCALL_64_after_hwframe;")!
            XCTAssertFalse(line[entry.upperBound...].contains("LockscopeStress."), "user frames only below the kernel's: \(line)")
        }
        XCTAssertTrue(profile.locks.flatMap(\.stacks).contains { $0.userFrames != nil })
    }

    func testUserStacksNoneRecordsKernelFramesOnly() throws {
        try requireBPF()
        let directory = try temporaryDirectory()
        let helper = try buildHelper(in: directory)
        try FileManager.default.createDirectory(atPath: "\(directory)/run", withIntermediateDirectories: true)
        let run = try LockscopeRun.run(["record", "-o", "\(directory)/p.json", "--quiet", "--no-report", "--spin-hz", "0",
                                        "--user-stacks", "none", "--", helper, "\(directory)/run", "8", "10", "10"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let profile = try Profile.load(path: "\(directory)/p.json")
        XCTAssertFalse(profile.locks.isEmpty)
        XCTAssertTrue(profile.locks.flatMap(\.stacks).allSatisfy { $0.userFrames == nil })
        XCTAssertEqual(profile.recording.userStacks, "none")
    }

    func testBadUserStacksValueIsRefused() throws {
        let run = try LockscopeRun.run(["record", "--user-stacks", "some"])
        XCTAssertEqual(run.status, 2, run.stderr)
        XCTAssertTrue(run.stderr.contains("give mount (waits inside mount syscalls), all, or none"), run.stderr)
    }
}
