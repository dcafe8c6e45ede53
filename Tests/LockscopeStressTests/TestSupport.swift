import Foundation
import LockscopeCore
import XCTest
@testable import LockscopeStress
import LockscopeTestSupport

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
}

/// Fails the test unless it runs as root with the lockscope binary built.
func requireRoot() throws {
    guard geteuid() == 0 else {
        throw TestSetupError(description: "these tests mount filesystems and create cgroups: run swift test as root")
    }
    _ = try LockscopeBinary.path()
}

/// The cgroup2 mount point of this machine.
func cgroupRoot() throws -> String {
    try XCTUnwrap(MountTable.current().cgroup2MountPoint, "no cgroup2 mount")
}

/// Checks that a run left nothing behind: no mount under its scratch directory, no scratch
/// directory, no cgroup directory.
func assertCleanedUp(_ result: StressResult, file: StaticString = #filePath, line: UInt = #line) throws {
    let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
    XCTAssertFalse(mountinfo.contains(result.scratchDirectory), "a mount is left under \(result.scratchDirectory)", file: file, line: line)
    XCTAssertFalse(FileManager.default.fileExists(atPath: result.scratchDirectory), "scratch directory left behind", file: file, line: line)
    if let parent = result.cgroupParent {
        let root = try cgroupRoot()
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + parent), "cgroup \(root + parent) left behind", file: file, line: line)
    }
}

extension String {
    func wholeMatch(_ pattern: String) -> Bool {
        range(of: "^\(pattern)$", options: .regularExpression) != nil
    }
}

/// A `--runtime containerd` run of `containers` containers in pods of `containersPerPod`, with kubepods
/// cgroups (the only style it takes) and `readers` mountinfo readers.
func containerdOptions(containers: Int, containersPerPod: Int, readers: Int) -> StressOptions {
    var options = StressOptions()
    options.runtime = .containerd
    options.cgroupStyle = .kubepods
    options.containers = containers
    options.containersPerPod = containersPerPod
    options.readers = readers
    return options
}
