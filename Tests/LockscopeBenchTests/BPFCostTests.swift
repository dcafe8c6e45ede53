import XCTest
@testable import LockscopeBench

/// scripts/bench.sh's BPF-cost lines as `lockscope-bench` reads them: exact values from fixture lines,
/// and one clear error for a bad line.
final class BPFCostTests: XCTestCase {
    /// One run of each kind: lockscope's lock and syscall programs (one never ran), and bpftrace's
    /// programs under the 15-byte names the kernel keeps.
    static let fixture = [
        "lockscope\tcontention_begin\t3000\t9000000\t550.500\t300.000\t500.000",
        "lockscope\tcontention_end\t2000\t1600000\t550.500\t300.000\t500.000",
        "lockscope\tenter_mount\t1000\t500000\t550.500\t300.000\t500.000",
        "lockscope\texit_mount\t1000\t1000000\t550.500\t300.000\t500.000",
        "lockscope\tenter_fsopen\t0\t0\t550.500\t300.000\t500.000",
        "bpftrace-minimal\tcontention_begi\t2500\t750000\t540.000\t310.000\t490.000",
        "bpftrace-minimal\tcontention_end\t2400\t960000\t540.000\t310.000\t490.000",
        "bpftrace-kstack\tcontention_begi\t2600\t11700000\t560.000\t305.000\t495.000",
        "bpftrace-kstack\tcontention_end\t2500\t1250000\t560.000\t305.000\t495.000",
    ]

    func testReadsEachRunWithItsProgramsAndDerivedCosts() throws {
        let cost = try BPFCost(lines: Self.fixture, source: "fixture")
        XCTAssertEqual(cost.runs.map(\.tool), ["lockscope", "bpftrace-minimal", "bpftrace-kstack"])

        let lockscope = try XCTUnwrap(cost["lockscope"])
        XCTAssertEqual(lockscope.workloadWallMs, 550.5)
        XCTAssertEqual(lockscope.workloadUserMs, 300)
        XCTAssertEqual(lockscope.workloadSysMs, 500)
        XCTAssertEqual(lockscope.workloadCPUMs, 800)
        XCTAssertEqual(lockscope.programs.map(\.name), ["contention_begin", "contention_end", "enter_mount", "exit_mount", "enter_fsopen"])
        XCTAssertEqual(lockscope.programs[0].runs, 3000)
        XCTAssertEqual(lockscope.programs[0].runNs, 9_000_000)
        XCTAssertEqual(lockscope.programs[0].nsPerRun, 3000)
        XCTAssertNil(lockscope.programs[4].nsPerRun)
        XCTAssertEqual(lockscope.bpfRunNs, 12_100_000)
        // 12.1 ms of BPF over 800 ms of the workload's user + sys.
        XCTAssertEqual(lockscope.cpuShareOfWorkload, 12.1 / 800, accuracy: 1e-12)
        // (9.0 + 1.6) ms over 2,000 contention_end runs, not the 3,000 begins.
        XCTAssertEqual(try XCTUnwrap(lockscope.nsPerWait), 5300, accuracy: 1e-9)
        // (0.5 + 1.0) ms over 1,000 enter runs.
        XCTAssertEqual(try XCTUnwrap(lockscope.nsPerSyscall), 1500, accuracy: 1e-9)

        let minimal = try XCTUnwrap(cost["bpftrace-minimal"])
        XCTAssertEqual(minimal.cpuShareOfWorkload, 1.71 / 800, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(minimal.nsPerWait), 1_710_000 / 2400, accuracy: 1e-9)
        XCTAssertNil(minimal.nsPerSyscall)
        XCTAssertEqual(try XCTUnwrap(cost["bpftrace-kstack"]?.beginProgram?.nsPerRun), 4500)
        // 4,500 ns per begin with kstack, 300 without.
        XCTAssertEqual(try XCTUnwrap(cost.stackWalkNsPerBegin), 4200, accuracy: 1e-9)
    }

    func testEncodesEachRunsCostsAndTheStackWalkInSnakeCase() throws {
        let cost = try BPFCost(lines: Self.fixture, source: "fixture")
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: encoder.encode(cost)) as? [String: Any])
        let runs = try XCTUnwrap(json["runs"] as? [[String: Any]])
        XCTAssertEqual(try XCTUnwrap(runs[0]["cpu_share_of_workload"] as? Double), 12.1 / 800, accuracy: 1e-12)
        XCTAssertEqual(runs[0]["workload_cpu_ms"] as? Double, 800)
        XCTAssertEqual(runs[0]["ns_per_wait"] as? Double, 5300)
        XCTAssertEqual(json["stack_walk_ns_per_begin"] as? Double, 4200)
    }

    func testABadLineIsOneClearError() {
        let bad = [
            "lockscope\tcontention_begin\t3000\t9000000\t550.500\t300.000",          // a field missing
            "lockscope\tcontention_begin\tmany\t9000000\t550.500\t300.000\t500.000",  // runs not a count
            "lockscope\tcontention_begin\t3000\t9000000\t550.500\t0\t0",              // no workload CPU time
            "\tcontention_begin\t3000\t9000000\t550.500\t300.000\t500.000",           // no tool
        ]
        for line in bad {
            XCTAssertThrowsError(try BPFCost(lines: [line], source: "bpf-cost.tsv")) { error in
                XCTAssertEqual("\(error)", "bpf-cost.tsv: bad line '\(line)': want \(BPFCost.format) "
                    + "(counts as integers, times in ms, the workload's CPU time above 0)")
            }
        }
        XCTAssertThrowsError(try BPFCost(lines: [], source: "bpf-cost.tsv")) { error in
            XCTAssertEqual("\(error)", "bpf-cost.tsv: no lines: want \(BPFCost.format)")
        }
        let inconsistent = [Self.fixture[0], "lockscope\tcontention_end\t2000\t1600000\t551.000\t300.000\t500.000"]
        XCTAssertThrowsError(try BPFCost(lines: inconsistent, source: "bpf-cost.tsv")) { error in
            XCTAssertEqual("\(error)", "bpf-cost.tsv: bad line '\(inconsistent[1])': its workload times differ "
                + "from the earlier lines of lockscope")
        }
    }
}
