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
        XCTAssertTrue(run.stdout.contains("cpus:0     16"), run.stdout)
        XCTAssertTrue(try String(contentsOfFile: svg, encoding: .utf8).contains("data-series=\"cpus:0\""))

        let compared = try LockscopeRun.run(["sweep", "--compare", json, json])
        XCTAssertEqual(compared.status, 0, compared.stderr)
        XCTAssertEqual(compared.stdout.components(separatedBy: "×1.00").count - 1 >= 10, true, compared.stdout)

        let bad = try LockscopeRun.run(["sweep", "--cpus", "7-9"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
    }
}
