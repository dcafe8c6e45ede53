import CLibbpf
import CLockscopeBPF
import Glibc
import LockscopeCore

/// The on-CPU sampler (`record --spin-hz`): loads bpf/lockscope_spin.bpf.c through its skeleton, opens a
/// cpu-clock perf event on every online CPU and attaches `spin_sample` to each. The kernel counts samples in a map;
/// `read()` takes them, with the stacks and counters, once the sampler is detached.
public final class SpinSampler {
    /// The default rate: a prime, so that sampling does not run in step with the scheduler tick
    /// (100/250/1000 Hz) or other periodic work. Its cost is in docs/performance.md.
    public static let defaultHz = 997
    /// Rates above this would make sampling a load of its own (each sample walks a stack: 1.4–2 µs of BPF
    /// time measured here, docs/performance.md; 10 kHz on every CPU would be 1.4–2% of each CPU).
    public static let maxHz = 10_000

    public let hz: Int
    /// CPU-clock nanoseconds between two samples of one CPU.
    public let periodNs: UInt64
    /// The CPUs sampled.
    public private(set) var cpus: [Int] = []
    /// The skeleton's programs and maps, typed by their names in bpf/lockscope_spin.bpf.c; nil after `close()`.
    private var skeleton: UnsafeMutablePointer<lockscope_spin_bpf>?
    private var links: [OpaquePointer] = []

    /// Opens and loads the sampler's object (needs CAP_BPF and CAP_PERFMON); nothing is attached yet.
    /// It reads the open waits of `waits` (the same `open_waits` map) to flag the samples of a task inside a
    /// traced wait. With `pids` or `cgroupIDs`, only tasks of those processes (tgids) and cgroups are kept,
    /// as record's --pid and --container keep waits.
    public init(hz: Int, waits: BPFProgram, pids: [UInt32] = [], cgroupIDs: [UInt64] = []) throws {
        precondition(hz > 0 && hz <= Self.maxHz, "the command line validates --spin-hz")
        self.hz = hz
        periodNs = UInt64(1_000_000_000 / hz)
        LibbpfLog.install()
        var openOptions = bpf_object_open_opts()
        openOptions.sz = MemoryLayout<bpf_object_open_opts>.size
        guard let skeleton = lockscope_spin_bpf__open_opts(&openOptions) else { throw BPFError.open(errno: errno) }
        self.skeleton = skeleton
        // The wait object's maps, not ones of its own: libbpf takes their sizes from the maps it reuses.
        for (map, fd, name) in [(skeleton.pointee.maps.open_waits, waits.openWaitsFD, "open_waits"),
                                (skeleton.pointee.maps.open_syscalls, waits.openSyscallsFD, "open_syscalls")] {
            let reused = bpf_map__reuse_fd(map, fd)
            if reused != 0 {
                close()
                throw BPFError.setup("share \(name) with the sampler", errno: -reused)
            }
        }
        let loaded = lockscope_spin_bpf__load(skeleton)
        if loaded != 0 {
            close()
            throw BPFError.load(errno: -loaded, log: LibbpfLog.lastLines())
        }
        do {
            try setFilters(pids: pids, cgroupIDs: cgroupIDs)
        } catch {
            close()
            throw error
        }
    }

    private func setFilters(pids: [UInt32], cgroupIDs: [UInt64]) throws {
        var present: UInt8 = 1
        for pid in pids {
            var key = pid
            try check(bpf_map_update_elem(mapFD(\.spin_pid_filter), &key, &present, UInt64(BPF_ANY)), "fill spin_pid_filter")
        }
        for cgroup in cgroupIDs {
            var key = cgroup
            try check(bpf_map_update_elem(mapFD(\.spin_cgroup_filter), &key, &present, UInt64(BPF_ANY)),
                      "fill spin_cgroup_filter")
        }
        var filters: UInt32 = 0
        if !pids.isEmpty { filters |= UInt32(LOCKSCOPE_FILTER_PIDS.rawValue) }
        if !cgroupIDs.isEmpty { filters |= UInt32(LOCKSCOPE_FILTER_CGROUPS.rawValue) }
        var zero: UInt32 = 0
        try check(bpf_map_update_elem(mapFD(\.spin_settings), &zero, &filters, UInt64(BPF_ANY)), "set spin_settings")
    }

    private func check(_ result: Int32, _ what: String) throws {
        if result != 0 { throw BPFError.setup(what, errno: result < 0 ? -result : errno) }
    }

    deinit { close() }

    /// Opens the perf events and attaches the program to each; on failure nothing stays attached.
    public func attach() throws {
        guard let program = skeleton?.pointee.progs.spin_sample else { preconditionFailure("SpinSampler attached after close()") }
        let online = Self.onlineCPUs()
        do {
            for cpu in online {
                let fd = lockscope_open_cpu_clock(Int32(cpu), periodNs)
                if fd < 0 {
                    if errno == ENODEV { continue }  // went offline since the list was read
                    throw BPFError.setup("open a cpu-clock perf event on CPU \(cpu) to sample (--spin-hz 0 records without)", errno: errno)
                }
                guard let link = bpf_program__attach_perf_event(program, fd) else {
                    let code = errno
                    Glibc.close(fd)
                    throw BPFError.attach(program: "spin_sample (CPU \(cpu))", errno: code)
                }
                links.append(link)  // destroying the link disables and closes the perf event
                cpus.append(cpu)
            }
        } catch {
            detach()
            throw error
        }
    }

    /// Stops sampling (idempotent); the map, stacks and counters stay readable until `close()`.
    public func detach() {
        for link in links { bpf_link__destroy(link) }
        links.removeAll()
    }

    /// Detaches and frees the object (idempotent).
    public func close() {
        detach()
        if let skeleton { lockscope_spin_bpf__destroy(skeleton) }
        skeleton = nil
    }

    /// What was sampled: every key of the sample map, and the counters. Each distinct kernel stack gets
    /// an id here (the kernel keeps stacks in the keys themselves).
    public func read() -> RecordedSamples {
        var samples: [RecordedSample] = []
        var stacks: [Int32: [UInt64]] = [:]
        var stackIDs: [[UInt64]: Int32] = [:]
        let fd = mapFD(\.spin_samples)
        var key = lockscope_spin_key()
        var next = lockscope_spin_key()
        var value = lockscope_spin_value()
        var status = bpf_map_get_next_key(fd, nil, &next)
        while status == 0 {
            key = next
            if bpf_map_lookup_elem(fd, &key, &value) == 0 {
                let comm = withUnsafeBytes(of: &key.comm) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                let frames = min(Int(key.frames), Int(LOCKSCOPE_MAX_STACK_DEPTH))
                let stack = withUnsafeBytes(of: &key.stack) { Array($0.bindMemory(to: UInt64.self).prefix(frames)) }
                var stackID: Int32 = -1
                if !stack.isEmpty {
                    if let known = stackIDs[stack] {
                        stackID = known
                    } else {
                        stackID = Int32(stackIDs.count)
                        stackIDs[stack] = stackID
                        stacks[stackID] = stack
                    }
                }
                samples.append(RecordedSample(
                    stackID: stackID, cpu: key.cpu, cgroupID: key.cgroup_id, pid: key.tgid, comm: comm,
                    user: key.flags & UInt32(LOCKSCOPE_SPIN_F_USER.rawValue) != 0,
                    pause: key.flags & UInt32(LOCKSCOPE_SPIN_F_PAUSE.rawValue) != 0,
                    inWait: key.flags & UInt32(LOCKSCOPE_SPIN_F_IN_WAIT.rawValue) != 0,
                    mountSyscall: key.syscall_tid == 0 ? nil : SyscallID(tid: key.syscall_tid, beginNs: key.syscall_begin_ns),
                    count: value.count))
            }
            status = bpf_map_get_next_key(fd, &key, &next)
        }
        return RecordedSamples(hz: hz, periodNs: periodNs, samples: samples, counters: counters(), stacks: stacks)
    }

    /// The sampler's per-CPU counters, summed.
    public func counters() -> SampleCounters {
        let cpuCount = Int(max(libbpf_num_possible_cpus(), 1))
        let fd = mapFD(\.spin_counters)
        func counter(_ index: lockscope_spin_counter) -> UInt64 {
            var key = UInt32(index.rawValue)
            var values = [UInt64](repeating: 0, count: cpuCount)
            guard bpf_map_lookup_elem(fd, &key, &values) == 0 else { return 0 }
            return values.reduce(0, &+)
        }
        var counters = SampleCounters()
        counters.samples = counter(LOCKSCOPE_SPIN_CTR_SAMPLES)
        counters.idle = counter(LOCKSCOPE_SPIN_CTR_IDLE)
        counters.user = counter(LOCKSCOPE_SPIN_CTR_USER)
        counters.kernel = counter(LOCKSCOPE_SPIN_CTR_KERNEL)
        counters.pause = counter(LOCKSCOPE_SPIN_CTR_PAUSE)
        counters.textUnreadable = counter(LOCKSCOPE_SPIN_CTR_TEXT_UNREADABLE)
        counters.stackFailed = counter(LOCKSCOPE_SPIN_CTR_STACK_FAILED)
        counters.mapFull = counter(LOCKSCOPE_SPIN_CTR_MAP_FULL)
        counters.filtered = counter(LOCKSCOPE_SPIN_CTR_FILTERED)
        counters.inWait = counter(LOCKSCOPE_SPIN_CTR_IN_WAIT)
        counters.syscallUnlinked = counter(LOCKSCOPE_SPIN_CTR_SYSCALL_UNLINKED)
        return counters
    }

    /// The program's id, for reading its run time from the kernel's BPF statistics (benchmarks).
    public var programID: UInt32? {
        guard let program = skeleton?.pointee.progs.spin_sample else { return nil }
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        guard bpf_obj_get_info_by_fd(bpf_program__fd(program), &info, &length) == 0 else { return nil }
        return info.id
    }

    /// A map's file descriptor, -1 after `close()` (lookups then find nothing).
    private func mapFD(_ map: KeyPath<lockscope_spin_bpf.__Unnamed_struct_maps, OpaquePointer?>) -> Int32 {
        guard let skeleton, let pointer = skeleton.pointee.maps[keyPath: map] else { return -1 }
        return bpf_map__fd(pointer)
    }

    /// /sys/devices/system/cpu/online as CPU numbers ("0-3,6" is 0, 1, 2, 3, 6); every possible CPU
    /// when it cannot be read.
    static func onlineCPUs(path: String = "/sys/devices/system/cpu/online") -> [Int] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            return Array(0..<Int(max(libbpf_num_possible_cpus(), 1)))
        }
        return parseCPUList(text)
    }

    /// A kernel CPU list ("0-3,6").
    static func parseCPUList(_ text: String) -> [Int] {
        text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").flatMap { part -> [Int] in
            let bounds = part.split(separator: "-").compactMap { Int($0) }
            switch bounds.count {
            case 1: return [bounds[0]]
            case 2 where bounds[0] <= bounds[1]: return Array(bounds[0]...bounds[1])
            default: return []
            }
        }
    }
}
