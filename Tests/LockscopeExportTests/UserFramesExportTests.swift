import Foundation
import LockscopeCore
import Testing
@testable import LockscopeExport

/// Stacks with user frames (`record --user-stacks`): every exporter draws the kernel frames on top of the
/// waiter's user frames, the outermost user frame at the root, and stacks that differ only in their user
/// frames stay apart.
@Suite struct UserFramesExportTests {
    static let kernel = ["rwsem_down_write_slowpath", "down_write", "path_umount", "__x64_sys_umount"]

    static func profile() -> Profile {
        let context = { (count: UInt64, ns: UInt64) in [StackContext(cpu: 0, container: "host", count: count, totalWaitNs: ns)] }
        let stacks = [
            StackProfile(frames: kernel, userFrames: ["issue_syscall", "release_overlay", "run_worker", "main"],
                         count: 3, totalWaitNs: 3_000, maxWaitNs: 1_500, contexts: context(3, 3_000)),
            StackProfile(frames: kernel, userFrames: ["issue_syscall", "prepare_idmapped_overlay", "main"],
                         count: 2, totalWaitNs: 2_000, maxWaitNs: 1_000, contexts: context(2, 2_000)),
            StackProfile(frames: kernel, count: 1, totalWaitNs: 500, maxWaitNs: 500, contexts: context(1, 500)),
        ]
        return makeProfile(locks: [LockProfile(name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0x1",
                                               stats: makeStats(6, 5_500), stacks: stacks)])
    }

    @Test func foldedPutsKernelFramesOnTopOfUserFrames() throws {
        let lines = Set(try FoldedExporter.render(Self.profile(), grouping: .none).split(separator: "\n").map(String.init))
        let kernel = Self.kernel.reversed().joined(separator: ";")
        #expect(lines == [
            "main;run_worker;release_overlay;issue_syscall;\(kernel) 3000",
            "main;prepare_idmapped_overlay;issue_syscall;\(kernel) 2000",
            "\(kernel) 500",
        ])
    }

    @Test func pprofHasOneLocationListPerSampleLeafFirst() throws {
        let decoded = try PprofExporterTests.decode(try PprofExporter.render(Self.profile(), grouping: .none))
        let names = { (id: UInt64) -> String in
            let location = decoded.location.first { $0.id == id }!
            let function = decoded.function.first { $0.id == location.line[0].functionID }!
            return decoded.stringTable[Int(function.name)]
        }
        let samples = Set(decoded.sample.map { $0.locationID.map(names) })
        #expect(samples == [
            Self.kernel + ["issue_syscall", "release_overlay", "run_worker", "main"],
            Self.kernel + ["issue_syscall", "prepare_idmapped_overlay", "main"],
            Self.kernel,
        ])
    }

    @Test func speedscopeStacksStartAtTheOutermostUserFrame() throws {
        let data = try SpeedscopeExporter.render(Self.profile(), grouping: .none)
        let json = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let frames = ((json["shared"] as! [String: Any])["frames"] as! [[String: Any]]).map { $0["name"] as! String }
        let profile = (json["profiles"] as! [[String: Any]])[0]
        let stacks = Set((profile["samples"] as! [[Int]]).map { $0.map { frames[$0] } })
        #expect(stacks == [
            ["main", "run_worker", "release_overlay", "issue_syscall"] + Self.kernel.reversed(),
            ["main", "prepare_idmapped_overlay", "issue_syscall"] + Self.kernel.reversed(),
            Array(Self.kernel.reversed()),
        ])
    }

    @Test func flameGraphDrawsUserFramesBelowTheKernelFrames() throws {
        let svg = try FlameGraphSVG.render(Self.profile(), options: .init(grouping: .none))
        for name in ["main", "run_worker", "prepare_idmapped_overlay", "issue_syscall", "path_umount"] {
            #expect(svg.contains(">\(name)<"), "\(name) is drawn")
        }
        // Each frame's depth (data-d of its group); a name can be drawn at several depths.
        var depths: [String: Set<Int>] = [:]
        for group in svg.split(separator: "<g class=\"f\"").dropFirst() {
            guard let d = group.range(of: "data-d=\""), let text = group.range(of: "\">", options: .backwards),
                  let end = group.range(of: "</text>") else { continue }
            depths[String(group[text.upperBound..<end.lowerBound]), default: []].insert(Int(group[d.upperBound...].prefix { $0.isNumber })!)
        }
        #expect(depths["main"] == [1], "under the root, all")
        #expect(depths["issue_syscall"] == [3, 4])
        #expect(depths["path_umount"] == [2, 5, 6], "the stack without user frames starts at the kernel's outermost frame")
    }
}
