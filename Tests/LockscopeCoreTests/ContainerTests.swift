import Foundation
import XCTest
@testable import LockscopeCore

final class ContainerTests: XCTestCase {
    private let id1 = "3f1c9a0e5b7d2c4e8f6a1b3d5c7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e"
    private let id2 = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
    private let podUID = "0f9e8d7c-6b5a-4321-9fed-cba987654321"
    private var systemdPodUID: String { podUID.replacingOccurrences(of: "-", with: "_") }

    private func parse(_ path: String) -> Container {
        ContainerIdentity.parse(cgroupPath: path)
    }

    // MARK: parse(cgroupPath:)

    func testRootIsTheHost() {
        XCTAssertEqual(parse("/"), Container(id: "host", runtime: "host", cgroup: "/"))
        XCTAssertEqual(parse(""), Container(id: "host", runtime: "host", cgroup: "/"))
    }

    func testDockerBothDrivers() {
        XCTAssertEqual(parse("/system.slice/docker-\(id1).scope"),
                       Container(id: id1, runtime: "docker", cgroup: "/system.slice/docker-\(id1).scope"))
        XCTAssertEqual(parse("/docker/\(id1)"), Container(id: id1, runtime: "docker", cgroup: "/docker/\(id1)"))
    }

    func testContainerdUnderKubepodsSystemdDriver() {
        for qos in ["burstable", "besteffort"] {
            let pod = "/kubepods.slice/kubepods-\(qos).slice/kubepods-\(qos)-pod\(systemdPodUID).slice"
            XCTAssertEqual(parse("\(pod)/cri-containerd-\(id1).scope"),
                           Container(id: id1, runtime: "containerd", podUid: podUID, cgroup: "\(pod)/cri-containerd-\(id1).scope"))
        }
        let guaranteed = "/kubepods.slice/kubepods-pod\(systemdPodUID).slice/cri-containerd-\(id2).scope"
        XCTAssertEqual(parse(guaranteed), Container(id: id2, runtime: "containerd", podUid: podUID, cgroup: guaranteed))
    }

    /// kubepods need not be at the cgroup root (kubelet under a parent slice, or a test harness).
    func testKubepodsBelowAParentCgroup() {
        let pod = "/lockscope-stress-1/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(systemdPodUID).slice"
        XCTAssertEqual(parse("\(pod)/cri-containerd-\(id1).scope"),
                       Container(id: id1, runtime: "containerd", podUid: podUID, cgroup: "\(pod)/cri-containerd-\(id1).scope"))
        XCTAssertEqual(parse("/parent/kubepods/pod\(podUID)/\(id2)"),
                       Container(id: id2, runtime: "containerd", podUid: podUID, cgroup: "/parent/kubepods/pod\(podUID)/\(id2)"))
        XCTAssertEqual(parse("/parent/pod\(podUID)/\(id2)").runtime, "cgroup", "a pod-like name without kubepods")
    }

    func testContainerdUnderKubepodsCgroupfsDriver() {
        XCTAssertEqual(parse("/kubepods/burstable/pod\(podUID)/\(id1)"),
                       Container(id: id1, runtime: "containerd", podUid: podUID, cgroup: "/kubepods/burstable/pod\(podUID)/\(id1)"))
        XCTAssertEqual(parse("/kubepods/pod\(podUID)/\(id2)"),
                       Container(id: id2, runtime: "containerd", podUid: podUID, cgroup: "/kubepods/pod\(podUID)/\(id2)"))
    }

    func testCRIO() {
        let pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(systemdPodUID).slice"
        XCTAssertEqual(parse("\(pod)/crio-\(id1).scope"),
                       Container(id: id1, runtime: "cri-o", podUid: podUID, cgroup: "\(pod)/crio-\(id1).scope"))
        XCTAssertEqual(parse("/kubepods/besteffort/pod\(podUID)/crio-\(id2)"),
                       Container(id: id2, runtime: "cri-o", podUid: podUID, cgroup: "/kubepods/besteffort/pod\(podUID)/crio-\(id2)"))
        XCTAssertEqual(parse("\(pod)/crio-conmon-\(id1).scope").runtime, "cgroup")
    }

    func testPodman() {
        XCTAssertEqual(parse("/machine.slice/libpod-\(id1).scope"),
                       Container(id: id1, runtime: "podman", cgroup: "/machine.slice/libpod-\(id1).scope"))
        let rootless = "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(id2).scope"
        XCTAssertEqual(parse("\(rootless)/container"), Container(id: id2, runtime: "podman", cgroup: rootless))
        XCTAssertEqual(parse("/machine.slice/libpod-conmon-\(id1).scope"),
                       Container(id: "/machine.slice/libpod-conmon-\(id1).scope", runtime: "cgroup",
                                 cgroup: "/machine.slice/libpod-conmon-\(id1).scope"))
    }

    func testNspawnUnescapesTheMachineName() {
        XCTAssertEqual(parse(#"/machine.slice/machine-web\x2d01.scope"#),
                       Container(id: "web-01", runtime: "nspawn", cgroup: #"/machine.slice/machine-web\x2d01.scope"#))
        XCTAssertEqual(parse(#"/machine.slice/machine-build.scope/payload/system.slice/nginx.service"#),
                       Container(id: "build", runtime: "nspawn", cgroup: "/machine.slice/machine-build.scope"))
        XCTAssertEqual(ContainerIdentity.unescapeSystemdName(#"a\x2db\x2fc\x5c"#), #"a-b/c\"#)
        XCTAssertEqual(ContainerIdentity.unescapeSystemdName(#"bad\xzz\x2"#), #"bad\xzz\x2"#)
    }

    func testNestedSubCgroupsBelongToTheInnermostContainer() {
        XCTAssertEqual(parse("/system.slice/docker-\(id1).scope/init"),
                       Container(id: id1, runtime: "docker", cgroup: "/system.slice/docker-\(id1).scope"))
        let pod = "/kubepods.slice/kubepods-pod\(systemdPodUID).slice/cri-containerd-\(id1).scope"
        XCTAssertEqual(parse("\(pod)/app/worker"), Container(id: id1, runtime: "containerd", podUid: podUID, cgroup: pod))
        // Docker inside an nspawn machine: the inner container wins.
        XCTAssertEqual(parse("/machine.slice/machine-ci.scope/payload/system.slice/docker-\(id2).scope/init"),
                       Container(id: id2, runtime: "docker",
                                 cgroup: "/machine.slice/machine-ci.scope/payload/system.slice/docker-\(id2).scope"))
    }

    func testOtherCgroupsAreIdentifiedByPath() {
        for path in ["/system.slice/sshd.service", "/user.slice/user-1000.slice/session-3.scope",
                     "/kubepods.slice/kubepods-pod\(systemdPodUID).slice", "/system.slice/docker-abc123.scope",
                     "/system.slice/docker-\(id1.uppercased()).scope", "/\(id1)", "/machine.slice/machine-x.service"] {
            XCTAssertEqual(parse(path), Container(id: path, runtime: "cgroup", cgroup: path), path)
        }
        XCTAssertEqual(parse("/system.slice/sshd.service/"),
                       Container(id: "/system.slice/sshd.service", runtime: "cgroup", cgroup: "/system.slice/sshd.service"))
    }

    // MARK: mountinfo

    func testFindsTheCgroup2MountOnAPureV2Host() {
        let mountInfo = """
            22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
            23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
            29 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
            """
        XCTAssertEqual(CgroupResolver.cgroup2MountPoint(inMountInfo: mountInfo), "/sys/fs/cgroup")
    }

    func testFindsTheCgroup2MountOnAHybridHost() {
        let mountInfo = """
            31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
            32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
            40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
            """
        XCTAssertEqual(CgroupResolver.cgroup2MountPoint(inMountInfo: mountInfo), "/sys/fs/cgroup/unified")
    }

    func testPrefersTheHierarchyRootAndUnescapesTheMountPoint() {
        let mountInfo = """
            50 22 0:38 /docker/abc /mnt/inner rw - cgroup2 cgroup2 rw
            51 22 0:38 / /mnt/my\\040cgroups rw shared:9 master:2 - cgroup2 cgroup2 rw
            """
        XCTAssertEqual(CgroupResolver.cgroup2MountPoint(inMountInfo: mountInfo), "/mnt/my cgroups")
        XCTAssertEqual(CgroupResolver.cgroup2MountPoint(inMountInfo: "50 22 0:38 /docker/abc /mnt/inner rw - cgroup2 cgroup2 rw"),
                       "/mnt/inner")
    }

    func testNoCgroup2MountIsAClearError() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let mountInfo = "\(directory)/mountinfo"
        try "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n".write(toFile: mountInfo, atomically: false, encoding: .utf8)
        XCTAssertNil(CgroupResolver.cgroup2MountPoint(inMountInfo: try String(contentsOfFile: mountInfo, encoding: .utf8)))
        XCTAssertThrowsError(try CgroupResolver(mountInfoPath: mountInfo)) { error in
            XCTAssertEqual(error as? CgroupError, .noCgroup2Mount(mountInfoPath: mountInfo))
            XCTAssertEqual("\(error)", "no cgroup2 filesystem in \(mountInfo): container attribution needs cgroup v2; "
                + "mount it (mount -t cgroup2 none /sys/fs/cgroup/unified) or profile without container filtering")
        }
        XCTAssertThrowsError(try CgroupResolver(mountInfoPath: "\(directory)/absent")) { error in
            XCTAssertEqual("\(error)", "cannot read \(directory)/absent to find the cgroup2 mount: mount /proc, or pass the cgroup2 mount point")
        }
        XCTAssertThrowsError(try CgroupResolver(cgroupRoot: mountInfo)) { error in
            XCTAssertEqual("\(error)", "cgroup root \(mountInfo) is not a directory: pass the mount point of the cgroup2 filesystem")
        }
    }

    // MARK: CgroupResolver on a directory tree

    func testResolvesEveryDirectoryOfATreeWithOneScan() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let docker = "/system.slice/docker-\(id1).scope"
        let pod = "/kubepods/burstable/pod\(podUID)/\(id2)"
        for path in [docker + "/init", pod, "/system.slice/sshd.service"] {
            try FileManager.default.createDirectory(atPath: root + path, withIntermediateDirectories: true)
        }
        let resolver = try CgroupResolver(cgroupRoot: root, minimumRescanInterval: .zero)

        XCTAssertEqual(resolver.container(forCgroupID: try inode(root + docker + "/init")),
                       Container(id: id1, runtime: "docker", cgroup: docker))
        XCTAssertEqual(resolver.container(forCgroupID: try inode(root + pod)),
                       Container(id: id2, runtime: "containerd", podUid: podUID, cgroup: pod))
        XCTAssertEqual(resolver.container(forCgroupID: try inode(root + "/system.slice/sshd.service")).runtime, "cgroup")
        XCTAssertEqual(resolver.container(forCgroupID: try inode(root)), Container(id: "host", runtime: "host", cgroup: "/"))
        XCTAssertEqual(resolver.rescanCount, 1)

        XCTAssertEqual(resolver.cgroupIDs(matchingContainerPrefix: String(id1.prefix(12))),
                       try [inode(root + docker), inode(root + docker + "/init")].sorted())
        XCTAssertEqual(resolver.cgroupIDs(matchingContainerPrefix: "ffff"), [])
        XCTAssertEqual(resolver.rescanCount, 3)
    }

    func testUnknownIDIsRememberedAndNotRescannedAgain() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let resolver = try CgroupResolver(cgroupRoot: root, minimumRescanInterval: .zero)
        let unknown = Container(id: "cgroup:123456789", runtime: "unknown", cgroup: "")
        XCTAssertFalse(resolver.hasVanished(123_456_789))
        XCTAssertEqual(resolver.container(forCgroupID: 123_456_789), unknown)
        XCTAssertEqual(resolver.rescanCount, 1)
        XCTAssertTrue(resolver.hasVanished(123_456_789))
        XCTAssertEqual(resolver.container(forCgroupID: 123_456_789), unknown)
        XCTAssertEqual(resolver.rescanCount, 1)
    }

    /// `lockscope agent` runs for as long as containers come and go: past the limit, the remembered
    /// cgroups (found and vanished) are forgotten, and the next lookup rescans.
    func testRememberedCgroupsAreForgottenPastALimit() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let resolver = try CgroupResolver(cgroupRoot: root, minimumRescanInterval: .zero)
        XCTAssertEqual(resolver.container(forCgroupID: 111).runtime, "unknown")
        XCTAssertEqual(resolver.container(forCgroupID: 222).runtime, "unknown")
        XCTAssertEqual(resolver.rescanCount, 2)
        resolver.forget(beyond: 3)  // the root and two vanished ids: 3, kept
        XCTAssertTrue(resolver.hasVanished(111))
        resolver.forget(beyond: 2)
        XCTAssertFalse(resolver.hasVanished(111))
        XCTAssertEqual(resolver.container(forCgroupID: try inode(root)).runtime, "host")
        XCTAssertEqual(resolver.rescanCount, 3)
    }

    func testANewCgroupIsFoundAndAVanishedOneStaysKnown() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let resolver = try CgroupResolver(cgroupRoot: root, minimumRescanInterval: .zero)
        XCTAssertEqual(resolver.container(forCgroupID: try inode(root)).runtime, "host")

        let scope = "\(root)/docker-\(id1).scope"
        try FileManager.default.createDirectory(atPath: scope, withIntermediateDirectories: false)
        let scopeID = try inode(scope)
        XCTAssertEqual(resolver.container(forCgroupID: scopeID).id, id1)
        XCTAssertEqual(resolver.rescanCount, 2)

        try FileManager.default.removeItem(atPath: scope)
        XCTAssertEqual(resolver.container(forCgroupID: 987_654_321).runtime, "unknown")
        XCTAssertEqual(resolver.rescanCount, 3)
        XCTAssertEqual(resolver.container(forCgroupID: scopeID).id, id1)
        XCTAssertEqual(resolver.rescanCount, 3)
    }

    func testMissesWithinTheRescanIntervalDoNotRescan() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let resolver = try CgroupResolver(cgroupRoot: root, minimumRescanInterval: .seconds(3600))
        XCTAssertEqual(resolver.container(forCgroupID: 1_000_001).runtime, "unknown")
        XCTAssertEqual(resolver.container(forCgroupID: 1_000_002).runtime, "unknown")
        XCTAssertEqual(resolver.rescanCount, 1)
    }

    // MARK: CgroupResolver on the live cgroup2 hierarchy

    func testResolvesARealDockerCgroup() throws {
        guard getuid() == 0 else { throw XCTSkip("creating cgroups needs root") }
        let mountInfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        guard let mountPoint = CgroupResolver.cgroup2MountPoint(inMountInfo: mountInfo) else {
            throw XCTSkip("no cgroup2 mount on this host")
        }
        let parent = "\(mountPoint)/lockscope-test-\(UInt32.random(in: .min ... .max))"
        let scope = "\(parent)/docker-\(id1).scope"
        guard mkdir(parent, 0o755) == 0 else { throw XCTSkip("cannot create \(parent): errno \(errno)") }
        defer { rmdir(parent) }
        XCTAssertEqual(mkdir(scope, 0o755), 0, "mkdir \(scope): errno \(errno)")
        defer { rmdir(scope) }

        let resolver = try CgroupResolver()
        XCTAssertEqual(resolver.cgroupRoot, mountPoint)
        let relative = String(scope.dropFirst(mountPoint.count))
        XCTAssertEqual(resolver.container(forCgroupID: try inode(scope)),
                       Container(id: id1, runtime: "docker", cgroup: relative))
        XCTAssertEqual(resolver.container(forCgroupID: try inode(mountPoint)), Container(id: "host", runtime: "host", cgroup: "/"))
        XCTAssertEqual(resolver.cgroupIDs(matchingContainerPrefix: id1), [try inode(scope)])
    }

    // MARK: helpers

    private func inode(_ path: String) throws -> UInt64 {
        var status = stat()
        guard stat(path, &status) == 0 else { throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: path]) }
        return UInt64(status.st_ino)
    }

    private func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lockscope-cgroups-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
