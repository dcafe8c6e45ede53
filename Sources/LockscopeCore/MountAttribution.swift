/// Ties mount-family syscalls, and the lock waits inside them, to the container they are for.
///
/// On a Kubernetes node the mounts of a container's start are issued by its pod's containerd shim, in
/// containerd.service's cgroup: the waiter's cgroup names no container. The syscalls' paths do
/// (`MountPaths`, docs/where.md):
/// - the overlay is mounted on `…/io.containerd.runtime.v2.task/<namespace>/<id>/rootfs`, and that
///   path is unmounted when the container goes;
/// - its `lowerdir=` names the `ovl-idmappedXXXX` directory the layers were idmapped into, and
///   `move_mount` put each idmapped layer there;
/// - `move_mount` moved the mount that `open_tree` returned as an fd, which `mount_setattr` idmapped
///   (by fd, without a path).
/// So an `open_tree` is tied to its container only when, later, its fd is moved into a directory that,
/// later still, an overlay on a container's rootfs names. And the waits inside a syscall reach user
/// space before the syscall does (its event is sent when it returns).
///
/// Hence this stage *holds* waits inside mount syscalls, and syscalls whose container is not known
/// yet, and *releases* them to the aggregator once it is, with a container id (`containerID(_:)`) in
/// place of their cgroup id. What cannot be tied (no path names a container, or no link came within
/// `holdNs`) is released under its issuer's pod when a containerd shim issued it (`issuer`), else under
/// its own cgroup as before (`cgroup`).
///
/// It sees syscall events and the waits inside them, never the per-event path of other waits.
struct MountAttribution {
    /// How long a wait or syscall is held for a link that has not come (by the events' clock).
    static let holdNs: UInt64 = 10_000_000_000
    /// Most waits and syscalls held at once; past it everything held is released as it stands.
    static let maxHeld = 1 << 18
    /// Container ids handed out for attributed containers start here: far above any cgroup id (an
    /// inode number) and below `Aggregator.otherCgroups`.
    static let firstContainerID: UInt64 = 0xFFFF_FFFF_0000_0000

    static func isAttributed(_ cgroupID: UInt64) -> Bool {
        cgroupID >= firstContainerID && cgroupID != Aggregator.otherCgroups
    }

    /// A wait held until its syscall's container is known.
    struct HeldWait {
        var queued: Aggregator.QueuedWait
        var lockAddress: UInt64
        var tid: UInt32
        var endNs: UInt64
    }

    /// A container that waits were attributed to by path or issuer, and its start.
    struct AttributedContainer {
        var container: Container
        var firstBeginNs = UInt64.max
        /// When its rootfs was mounted (the overlay mount, or the move_mount of a new-API mount, returned 0).
        var rootfsMountedNs: UInt64?
        /// Time in its set-up's syscalls (those that ended by `rootfsMountedNs`).
        var inSyscallsNs: UInt64 = 0
        /// Lock wait inside its set-up's syscalls, by lock address.
        var waitByLock: [UInt64: Aggregator.Tally] = [:]
    }

    /// What the aggregator takes after each call: held items whose container is now known (their
    /// cgroup id replaced), and items released as they stand.
    private(set) var releasedWaits: [HeldWait] = []
    private(set) var releasedSyscalls: [SyscallEvent] = []

    private(set) var containers: [AttributedContainer] = []
    private var containerIndex: [String: Int] = [:]
    /// Processes that issued mount-family syscalls (everyone else who waited is a victim).
    private(set) var issuers: Set<UInt32> = []
    /// Waits and syscalls released without a link because `holdNs` passed or `maxHeld` was reached.
    private(set) var releasedUnlinked: UInt64 = 0

    /// The pod a process works for, from its command line (a containerd shim's `-id`); nil when it says none.
    private let issuerPod: (UInt32) -> (namespace: String?, pod: String)?
    private var podsByPid: [UInt32: (namespace: String?, pod: String)?] = [:]

    private struct SyscallKey: Hashable {
        var tid: UInt32
        var beginNs: UInt64
    }

    private struct FdKey: Hashable {
        var pid: UInt32
        var fd: Int32
    }

    /// Items waiting for the same link.
    private struct Group {
        var waits: [HeldWait] = []
        var syscalls: [SyscallEvent] = []
        var lastNs: UInt64 = 0
        var count: Int { waits.count + syscalls.count }
    }

    /// Waits whose syscall has not returned yet.
    private var waitsInSyscall: [SyscallKey: Group] = [:]
    /// Items whose container is not known yet, by group.
    private var groups: [Int: Group] = [:]
    private var nextGroup = 0
    /// The group of the mount behind each fd (open_tree's, fsopen's and fsmount's results).
    private var fdGroups: [FdKey: Int] = [:]
    /// The group of each idmap directory whose overlay has not been mounted yet, and the container of each that has.
    private var directoryGroups: [String: Int] = [:]
    private var directoryContainers: [String: Int] = [:]
    /// Most directories remembered after their overlay was mounted (for the unmounts that follow).
    static let maxDirectories = 1 << 16
    private var held = 0
    private var nextSweepNs: UInt64 = 0

    init(issuerPod: @escaping (UInt32) -> (namespace: String?, pod: String)? = { _ in nil }) {
        self.issuerPod = issuerPod
    }

    /// The cgroup id under which container `index` is aggregated.
    static func containerID(_ index: Int) -> UInt64 { firstContainerID + UInt64(index) }

    /// The container behind an id from `containerID(_:)`.
    func container(forID id: UInt64) -> Container? {
        guard Self.isAttributed(id), id - Self.firstContainerID < UInt64(containers.count) else { return nil }
        return containers[Int(id - Self.firstContainerID)].container
    }

    mutating func takeReleased() -> (waits: [HeldWait], syscalls: [SyscallEvent]) {
        defer { releasedWaits.removeAll(keepingCapacity: true); releasedSyscalls.removeAll(keepingCapacity: true) }
        return (releasedWaits, releasedSyscalls)
    }

    // MARK: - Events

    /// A wait inside a mount syscall (`syscallBeginNs != 0`): held until the syscall returns.
    mutating func hold(_ wait: HeldWait, syscallBeginNs: UInt64) {
        let key = SyscallKey(tid: wait.tid, beginNs: syscallBeginNs)
        waitsInSyscall[key, default: Group()].waits.append(wait)
        waitsInSyscall[key]!.lastNs = wait.endNs
        held += 1
        if held > Self.maxHeld { releaseEverything() }
    }

    /// A syscall returned: tie it, and the waits inside it, to what its paths say. Returns true when it
    /// mounted a container's root filesystem (the container started).
    @discardableResult
    mutating func syscall(_ event: SyscallEvent) -> Bool {
        issuers.insert(event.pid)
        var items = waitsInSyscall.removeValue(forKey: SyscallKey(tid: event.tid, beginNs: event.beginNs)) ?? Group()
        held -= items.waits.count
        items.syscalls.append(event)
        items.lastNs = event.endNs
        var started = false
        let fd = FdKey(pid: event.pid, fd: event.fd)

        switch event.syscall {
        case .mount, .umount2:
            if let rootfs = MountPaths.containerdRootfs(event.path) {
                let container = containerdContainer(rootfs, issuer: event.pid)
                if event.syscall == .mount {
                    for directory in MountPaths.idmapDirectories(inOverlayOptions: event.data,
                                                                 workingDirectory: event.workingDirectory) {
                        link(directory: known(directory), to: container)
                    }
                    started = event.ret == 0 && markStarted(container, at: event.endNs)
                }
                release(items, to: container)
            } else if let directory = MountPaths.idmapDirectory(event.path, workingDirectory: event.workingDirectory) {
                add(items, toDirectory: known(directory))
            } else {
                releaseUnattributed(items)
            }
        case .openTree, .fsopen:
            if event.ret >= 0 {
                let group = newGroup(lastNs: event.endNs)
                fdGroups[FdKey(pid: event.pid, fd: Int32(truncatingIfNeeded: event.ret))] = group
                add(items, toGroup: group)
            } else {
                releaseUnattributed(items)
            }
        case .mountSetattr, .fsconfig:
            if let group = fdGroups[fd] {
                if event.syscall == .fsconfig {  // an overlay's lowerdir+= naming an idmap directory
                    for directory in MountPaths.idmapDirectories(inOverlayOptions: "\(event.data)=\(event.path)",
                                                                 workingDirectory: event.workingDirectory) {
                        join(directory: known(directory), into: group)
                    }
                }
                add(items, toGroup: group)
            } else {
                releaseUnattributed(items)
            }
        case .fsmount:
            if let group = fdGroups[fd] {
                if event.ret >= 0 { fdGroups[FdKey(pid: event.pid, fd: Int32(truncatingIfNeeded: event.ret))] = group }
                add(items, toGroup: group)
            } else {
                releaseUnattributed(items)
            }
        case .moveMount:
            let moved = fdGroups.removeValue(forKey: fd)
            if let rootfs = MountPaths.containerdRootfs(event.path) {
                let container = containerdContainer(rootfs, issuer: event.pid)
                if let moved { resolve(group: moved, to: container) }
                started = event.ret == 0 && markStarted(container, at: event.endNs)
                release(items, to: container)
            } else if let named = MountPaths.idmapDirectory(event.path, workingDirectory: event.workingDirectory) {
                let directory = known(named)
                if let moved, let group = groups.removeValue(forKey: moved) {
                    held -= group.count  // `add` counts it again where it goes
                    add(group, toDirectory: directory)
                }
                add(items, toDirectory: directory)
            } else {
                if let moved, let group = groups.removeValue(forKey: moved) { releaseUnattributed(group, wasHeld: true) }
                releaseUnattributed(items)
            }
        case .fspick, .unshare, .clone, .clone3, .setns:
            releaseUnattributed(items)
        }
        sweep(now: event.endNs)
        return started
    }

    /// Releases what has been held longer than `holdNs` before `now` (the recorder calls this once a
    /// second, so that holds end even when no syscall comes).
    mutating func sweep(now: UInt64) {
        guard now >= nextSweepNs else { return }
        nextSweepNs = now + 1_000_000_000
        let deadline = now > Self.holdNs ? now - Self.holdNs : 0
        for (key, group) in waitsInSyscall where group.lastNs < deadline {
            waitsInSyscall[key] = nil
            releaseUnattributed(group, wasHeld: true)
            releasedUnlinked += UInt64(group.count)
        }
        for (id, group) in groups where group.lastNs < deadline {
            groups[id] = nil
            releaseUnattributed(group, wasHeld: true)
            releasedUnlinked += UInt64(group.count)
        }
        directoryGroups = directoryGroups.filter { groups[$0.value] != nil }
        fdGroups = fdGroups.filter { groups[$0.value] != nil }  // fds whose mounts were released: nothing to link any more
    }

    /// Releases everything held (at the end of a recording, or when too much is held).
    mutating func releaseEverything() {
        for group in waitsInSyscall.values { releaseUnattributed(group, wasHeld: true); releasedUnlinked += UInt64(group.count) }
        for group in groups.values { releaseUnattributed(group, wasHeld: true); releasedUnlinked += UInt64(group.count) }
        waitsInSyscall = [:]
        groups = [:]
        directoryGroups = [:]
        fdGroups = [:]
        held = 0
    }

    /// A new window of a continuous recording: the held waits and syscalls stay held; the per-window
    /// counts start again; only the containers that idmap directories still point to are kept (their
    /// later mounts and unmounts are theirs), renumbered, so the table stays within `maxDirectories`.
    /// Call only when nothing released is waiting to be taken.
    mutating func startWindow() {
        releasedUnlinked = 0
        issuers = []
        // A container's start is over within seconds: its directories are forgotten once neither this
        // window nor the last one used them.
        if windowed {
            directoryContainers = directoryContainers.filter { touched.contains($0.key) || touchedBefore.contains($0.key) }
        }
        windowed = true
        touchedBefore = touched
        touched = []
        if podsByPid.count > Self.maxPodsPerWindow { podsByPid = [:] }
        var renumbered: [Int: Int] = [:]
        var kept: [AttributedContainer] = []
        for index in Set(directoryContainers.values).sorted() {
            var container = containers[index]
            container.waitByLock = [:]
            container.inSyscallsNs = 0
            container.firstBeginNs = .max
            renumbered[index] = kept.count
            kept.append(container)
        }
        containers = kept
        directoryContainers = directoryContainers.compactMapValues { renumbered[$0] }
        containerIndex = containerIndex.compactMapValues { renumbered[$0] }
    }

    /// Windowed (`startWindow`): the directories linked or used in this window and in the last one.
    private var windowed = false
    private var touched = Set<String>()
    private var touchedBefore = Set<String>()
    /// Issuers' pods remembered from one window to the next, at most (re-read when needed).
    static let maxPodsPerWindow = 4096

    private mutating func touch(_ directory: String) {
        if windowed { touched.insert(directory) }
    }

    /// The stack ids of the waits held.
    var heldStackIDs: Set<Int32> {
        var ids = Set<Int32>()
        for group in waitsInSyscall.values { for wait in group.waits { ids.insert(wait.queued.stackID) } }
        for group in groups.values { for wait in group.waits { ids.insert(wait.queued.stackID) } }
        return ids
    }

    // MARK: - Linking

    /// The key of an idmap directory: its path; for one known only by its last names, the remembered
    /// directory whose path ends so (or the names, when none does yet).
    private func known(_ directory: IdmapDirectory) -> String {
        switch directory {
        case .path(let path):
            return path
        case .tail(let tail):
            return directoryGroups.keys.first { $0.hasSuffix(tail) } ?? directoryContainers.keys.first { $0.hasSuffix(tail) }
                ?? tail
        }
    }

    private mutating func newGroup(lastNs: UInt64) -> Int {
        nextGroup += 1
        groups[nextGroup] = Group(lastNs: lastNs)
        return nextGroup
    }

    private mutating func add(_ items: Group, toGroup id: Int) {
        guard groups[id] != nil else { return releaseUnattributed(items) }  // its group was released meanwhile
        groups[id]!.waits += items.waits
        groups[id]!.syscalls += items.syscalls
        groups[id]!.lastNs = max(groups[id]!.lastNs, items.lastNs)
        held += items.count
        if held > Self.maxHeld { releaseEverything() }
    }

    private mutating func add(_ items: Group, toDirectory directory: String) {
        if let container = directoryContainers[directory] {
            touch(directory)
            return release(items, to: container)
        }
        let id = directoryGroups[directory] ?? {
            let id = newGroup(lastNs: items.lastNs)
            directoryGroups[directory] = id
            return id
        }()
        add(items, toGroup: id)
    }

    /// An fs context's `lowerdir+=` names `directory`: what waits for the directory waits for the context.
    private mutating func join(directory: String, into id: Int) {
        if let container = directoryContainers[directory] {
            touch(directory)
            return resolve(group: id, to: container)
        }
        if let other = directoryGroups[directory], other != id, let group = groups.removeValue(forKey: other) {
            held -= group.count
            add(group, toGroup: id)
        }
        directoryGroups[directory] = id
    }

    private mutating func link(directory: String, to container: Int) {
        if directoryContainers.count >= Self.maxDirectories {
            directoryContainers = [:]
            touched = []
            touchedBefore = []
        }
        directoryContainers[directory] = container
        touch(directory)
        if let id = directoryGroups.removeValue(forKey: directory) { resolve(group: id, to: container) }
    }

    private mutating func resolve(group id: Int, to container: Int) {
        guard let group = groups.removeValue(forKey: id) else { return }
        held -= group.count
        release(group, to: container)
        for (directory, other) in directoryGroups where other == id {
            directoryGroups[directory] = nil
            directoryContainers[directory] = container
            touch(directory)
        }
    }

    // MARK: - Releasing

    /// Counts `items` under container `index`; those that ended by the time its rootfs was mounted are
    /// its set-up's (the unmounts after it are not).
    private mutating func release(_ items: Group, to index: Int) {
        let id = Self.containerID(index)
        let setupEnd = containers[index].rootfsMountedNs ?? .max
        for var wait in items.waits {
            wait.queued.cgroupID = id
            if wait.endNs <= setupEnd { containers[index].waitByLock[wait.lockAddress, default: .init()].add(wait.queued.waitNs) }
            releasedWaits.append(wait)
        }
        for var syscall in items.syscalls {
            syscall.cgroupID = id
            containers[index].firstBeginNs = min(containers[index].firstBeginNs, syscall.beginNs)
            if syscall.endNs <= setupEnd { containers[index].inSyscallsNs &+= syscall.latencyNs }
            releasedSyscalls.append(syscall)
        }
    }

    /// Items no path ties to a container: under the issuing shim's pod, else their own cgroup.
    private mutating func releaseUnattributed(_ items: Group, wasHeld: Bool = false) {
        if wasHeld { held -= items.count }
        for wait in items.waits {
            if let pod = podContainer(issuer: wait.queued.pid) {
                release(Group(waits: [wait]), to: pod)
            } else {
                releasedWaits.append(wait)
            }
        }
        for syscall in items.syscalls {
            if let pod = podContainer(issuer: syscall.pid) {
                release(Group(syscalls: [syscall]), to: pod)
            } else {
                releasedSyscalls.append(syscall)
            }
        }
    }

    private mutating func markStarted(_ index: Int, at ns: UInt64) -> Bool {
        guard containers[index].rootfsMountedNs == nil else { return false }
        containers[index].rootfsMountedNs = ns
        return true
    }

    // MARK: - Containers

    /// The pods of the issuers that named one.
    var issuerPods: [UInt32: String] { podsByPid.compactMapValues { $0?.pod } }

    private mutating func pod(of pid: UInt32) -> (namespace: String?, pod: String)? {
        if let known = podsByPid[pid] { return known }
        if podsByPid.count >= Self.maxDirectories { podsByPid = [:] }  // pids churn: read again when needed
        let pod = issuerPod(pid)
        podsByPid[pid] = pod
        return pod
    }

    private mutating func containerdContainer(_ rootfs: (namespace: String, id: String), issuer: UInt32) -> Int {
        let pod = pod(of: issuer)?.pod
        return containerIndex(key: rootfs.id) {
            Container(id: rootfs.id, runtime: "containerd", cgroup: "", pod: pod, attribution: .mountPath)
        }
    }

    private mutating func podContainer(issuer: UInt32) -> Int? {
        guard let pod = pod(of: issuer)?.pod else { return nil }
        return containerIndex(key: "pod:" + pod) {
            Container(id: "pod:" + pod, runtime: "containerd", cgroup: "", pod: pod, attribution: .issuer)
        }
    }

    private mutating func containerIndex(key: String, _ make: () -> Container) -> Int {
        if let index = containerIndex[key] { return index }
        containers.append(AttributedContainer(container: make()))
        containerIndex[key] = containers.count - 1
        return containers.count - 1
    }
}
