import Foundation
import LockscopeCore
import XCTest

@testable import LockscopeExport

/// The on-CPU and spin flame graphs and exports (`--samples cpu|spin`) draw the recorded samples.
final class SampleProfilesTests: XCTestCase {
    private func profile() -> Profile {
        let period: UInt64 = 1_003_009
        var namespaceSem = LockProfile(name: "namespace_sem", identity: .inferred, kind: .rwsem, address: "0x0", instances: 0,
                                       stats: .empty)
        let spinStack = SampledStack(frames: ["rwsem_spin_on_owner", "rwsem_down_write_slowpath", "down_write", "path_umount"],
                                     samples: 4, sampleClass: .spinFunction)
        namespaceSem.spin = SpinProfile(periodNs: period, time: SampledTime(samples: 4, periodNs: period),
                                        spinFunctionSamples: 4, pauseSamples: 0, insideWaitSamples: 1, byCpu: [], bySocket: [], byContainer: [],
                                        byProcess: [], stacks: [spinStack])
        var profile = Profile(hostname: "h", kernel: "k", startedAt: "t", durationNs: 1, events: 0, drops: Drops(),
                              recording: Recording(), topology: nil, containers: [], mounts: nil, locks: [namespaceSem])
        profile.cpuSamples = CPUSampleProfile(
            hz: 997, periodNs: period, counters: SampleCounters(), byClass: [], unattributedSpin: 0,
            stacks: [SampledStack(frames: spinStack.frames, samples: 4, sampleClass: .spinFunction, process: "umount"),
                     SampledStack(frames: ["ksys_read", "do_syscall_64"], samples: 10, sampleClass: .kernel, process: "cat"),
                     SampledStack(frames: ["[user]"], samples: 7, sampleClass: .user, process: "cat")])
        return profile
    }

    func testCPUSamplesAreOneRootPerThreadNameWeighingSamplesTimesPeriod() throws {
        let folded = try FoldedExporter.render(try SampleProfiles.view(profile(), type: .cpu), weight: .count)
        XCTAssertEqual(folded.split(separator: "\n").sorted(), [
            "[lock] cat;[user] 7",
            "[lock] cat;do_syscall_64;ksys_read 10",
            "[lock] umount;path_umount;down_write;rwsem_down_write_slowpath;rwsem_spin_on_owner 4",
        ])
        let time = try FoldedExporter.render(try SampleProfiles.view(profile(), type: .cpu), weight: .wait)
        XCTAssertTrue(time.contains("ksys_read \(10 * 1_003_009)\n"), time)
    }

    func testSpinSamplesAreOneRootPerLock() throws {
        let folded = try FoldedExporter.render(try SampleProfiles.view(profile(), type: .spin), weight: .count)
        XCTAssertEqual(folded, "[lock] namespace_sem;path_umount;down_write;rwsem_down_write_slowpath;rwsem_spin_on_owner 4\n")
        let svg = try FlameGraphSVG.render(try SampleProfiles.view(profile(), type: .spin),
                                           options: FlameGraphSVG.Options(samples: .spin))
        XCTAssertTrue(svg.contains("Spinning on locks, on CPU (sampled)"))
        XCTAssertTrue(svg.contains("4 samples (100.00%)"), "tooltips count samples")
        let tooltips = svg.components(separatedBy: "<title>").dropFirst().map { $0.components(separatedBy: "</title>")[0] }
        XCTAssertFalse(tooltips.isEmpty)
        XCTAssertFalse(tooltips.contains { $0.contains("contention") || $0.contains("wait ") }, "\(tooltips)")
    }

    func testAProfileWithoutSamplesIsRefusedWithOneLine() {
        var old = profile()
        old.cpuSamples = nil
        XCTAssertThrowsError(try SampleProfiles.view(old, type: .cpu)) { error in
            XCTAssertTrue("\(error)".hasPrefix("the profile has no on-CPU samples"), "\(error)")
            XCTAssertFalse("\(error)".contains("\n"))
        }
        XCTAssertNoThrow(try SampleProfiles.view(old, type: .wait))
    }

    /// pprof and speedscope name the values after what they are: samples and CPU (or spin) time.
    func testPprofAndSpeedscopeNameSampleTypes() throws {
        let view = try SampleProfiles.view(profile(), type: .cpu)
        let message = try PprofExporter.message(for: view, weight: .wait, grouping: .lock, samples: .cpu)
        let names = message.sampleType.map { "\(message.stringTable[Int($0.type)])/\(message.stringTable[Int($0.unit)])" }
        XCTAssertEqual(names, ["samples/count", "cpu/nanoseconds"])
        XCTAssertEqual(message.stringTable[Int(message.defaultSampleType)], "cpu")
        XCTAssertEqual(message.sample.map { $0.value[0] }.reduce(0, +), 21)
        let speedscope = try SpeedscopeExporter.render(try SampleProfiles.view(profile(), type: .spin), samples: .spin)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: speedscope) as? [String: Any])
        let profiles = try XCTUnwrap(object["profiles"] as? [[String: Any]])
        XCTAssertEqual(profiles.map { $0["name"] as? String }, ["spin", "samples"])
        XCTAssertEqual(profiles[1]["endValue"] as? Int, 4)
    }
}
