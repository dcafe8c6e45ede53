import Foundation
import LockscopeCore
import LockscopeTestSupport
import XCTest

/// `lockscope sweep` on this machine: parallelism 1-16 in the placements "all" and "one CPU", the
/// confinement checked from what was recorded, not assumed.
final class SweepEndToEndTests: XCTestCase {
    func testASweepRunsEveryPointAndItsWaitsStayOnThePlacementsCPUs() throws {
        try requireBPF()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-sweep-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let json = directory.appendingPathComponent("sweep.json").path
        let svg = directory.appendingPathComponent("sweep.svg").path
        let run = try LockscopeRun.run(["sweep", "--parallel", "1,2,4,8,16", "--cpus", "0", "--runs", "1",
                                        "--containers", "16", "--layers", "4", "-o", json, "--svg", svg])
        XCTAssertEqual(run.status, 0, run.stderr)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let sweep = try decoder.decode(Sweep.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        XCTAssertEqual(sweep.confinement, "affinity")
        XCTAssertEqual(sweep.placements.map(\.name), ["all", "cpus:0"])
        XCTAssertEqual(sweep.points.map(\.parallel), [1, 2, 4, 8, 16, 1, 2, 4, 8, 16])
        XCTAssertTrue(sweep.points.allSatisfy { $0.runs.count == 1 && $0.runs[0].failures == 0 })
        // Confined to CPU 0: every wait of the storm's containers was taken on CPU 0...
        let oneCPU = sweep.points(of: "cpus:0")
        XCTAssertTrue(oneCPU.allSatisfy(\.confined), "\(oneCPU.map(\.runs))")
        XCTAssertEqual(Set(oneCPU.flatMap { $0.runs.flatMap(\.cpusSeen) }), [0], "no waits recorded on CPU 0")
        // ...while unconfined, the same storms waited on both CPUs: the confinement did something.
        XCTAssertEqual(Set(sweep.points(of: "all").flatMap { $0.runs.flatMap(\.cpusSeen) }), [0, 1])
        XCTAssertTrue(run.stdout.split(separator: "\n").contains { $0.hasPrefix("  cpus:0 ") && $0.split(separator: " ")[1] == "16" },
                      run.stdout)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("data-series=\"cpus:0\""))

        let compared = try LockscopeRun.run(["sweep", "--compare", json, json])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        // The same sweep against itself: every point, both metrics, unchanged.
        XCTAssertEqual(compared.stdout.components(separatedBy: "×1.00").count - 1, 2 * sweep.points.count, compared.stdout)
    }

    /// Bad input is one line and exit 2, before anything is recorded.
    func testBadSweepInputIsOneLine() throws {
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-not-a-sweep-\(getpid()).json")
        try Data("{\"schema\": \"lockscope.profile/1\"}".utf8).write(to: profile)
        defer { try? FileManager.default.removeItem(at: profile) }
        for (arguments, message) in [(["--cpus", "7-9"], "is not online"), (["--placements", "numa"], "unknown placement 'numa'"),
                                     (["--parallel", "0,2"], "positive numbers"), (["--compare", profile.path], "two sweep files"),
                                     (["--compare", profile.path, profile.path], "not a sweep")] {
            let bad = try LockscopeRun.run(["sweep"] + arguments)
            XCTAssertEqual(bad.status, 2, "\(arguments)")
            XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
            XCTAssertTrue(bad.stderr.contains(message), "\(arguments): \(bad.stderr)")
        }
    }
}
