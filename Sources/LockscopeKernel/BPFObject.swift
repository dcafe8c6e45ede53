import CLibbpf
import CLockscopeBPF
import Foundation

/// A bpftool skeleton of one of the embedded objects (`make bpf` writes them into CLockscopeBPF).
/// Both have `config` in .rodata, an `events` ring buffer and the `counters` map, so one loader
/// (`BPFObject`) opens, configures and loads either; everything else is the skeleton's typed fields.
public protocol BPFSkeleton {
    static func open(_ options: UnsafePointer<bpf_object_open_opts>) -> UnsafeMutablePointer<Self>?
    /// 0, or a negative errno.
    static func load(_ skeleton: UnsafeMutablePointer<Self>) -> Int32
    static func destroy(_ skeleton: UnsafeMutablePointer<Self>)
    /// `config` in .rodata: written between open and load, frozen by load.
    var config: lockscope_config { get nonmutating set }
    var events: OpaquePointer { get }
    var counters: OpaquePointer { get }
}

/// bpf/lockscope.bpf.c, the programs `lockscope record` attaches.
extension lockscope_bpf: BPFSkeleton {
    public static func open(_ options: UnsafePointer<bpf_object_open_opts>) -> UnsafeMutablePointer<Self>? {
        lockscope_bpf__open_opts(options)
    }
    public static func load(_ skeleton: UnsafeMutablePointer<Self>) -> Int32 { lockscope_bpf__load(skeleton) }
    public static func destroy(_ skeleton: UnsafeMutablePointer<Self>) { lockscope_bpf__destroy(skeleton) }
    public var config: lockscope_config {
        get { rodata.pointee.config }
        nonmutating set { rodata.pointee.config = newValue }
    }
    public var events: OpaquePointer { maps.events }
    public var counters: OpaquePointer { maps.counters }
}

/// bpf/lockscope_bench.bpf.c, lockscope-bench's synthetic event source.
extension lockscope_bench_bpf: BPFSkeleton {
    public static func open(_ options: UnsafePointer<bpf_object_open_opts>) -> UnsafeMutablePointer<Self>? {
        lockscope_bench_bpf__open_opts(options)
    }
    public static func load(_ skeleton: UnsafeMutablePointer<Self>) -> Int32 { lockscope_bench_bpf__load(skeleton) }
    public static func destroy(_ skeleton: UnsafeMutablePointer<Self>) { lockscope_bench_bpf__destroy(skeleton) }
    public var config: lockscope_config {
        get { rodata.pointee.config }
        nonmutating set { rodata.pointee.config = newValue }
    }
    public var events: OpaquePointer { maps.events }
    public var counters: OpaquePointer { maps.counters }
}

/// One embedded object, opened from its skeleton with `config` and the ring buffer set from
/// `BPFOptions`, and loaded into the kernel (needs CAP_BPF and CAP_PERFMON). The skeleton's typed
/// fields reach its programs and maps. Destroyed on deinit: libbpf closes them and any links kept
/// in the skeleton (BPFProgram keeps its own and destroys them first).
public final class BPFObject<Skeleton: BPFSkeleton> {
    public let skeleton: UnsafeMutablePointer<Skeleton>

    /// Opens, configures and loads the object; `prepare` sets what only this object has (such as
    /// the sizes of its other maps) between open and load.
    public init(options: BPFOptions, prepare: (UnsafeMutablePointer<Skeleton>) throws -> Void = { _ in }) throws {
        LibbpfLog.install()
        var openOptions = bpf_object_open_opts()
        openOptions.sz = MemoryLayout<bpf_object_open_opts>.size
        guard let skeleton = Skeleton.open(&openOptions) else { throw BPFError.open(errno: errno) }
        self.skeleton = skeleton
        do {
            skeleton.pointee.config = options.config
            try check(bpf_map__set_max_entries(skeleton.pointee.events, UInt32(options.ringBufferBytes)),
                      "size the ring buffer")
            try prepare(skeleton)
            let loaded = Skeleton.load(skeleton)
            if loaded != 0 { throw BPFError.load(errno: -loaded, log: LibbpfLog.lastLines()) }
        } catch {
            Skeleton.destroy(skeleton)
            throw error
        }
    }

    deinit { Skeleton.destroy(skeleton) }

    /// The ring buffer's file descriptor.
    public var eventsFD: Int32 { bpf_map__fd(skeleton.pointee.events) }

    /// The per-CPU counters summed over CPUs, indexed by `lockscope_counter`.
    public func counters() -> [UInt64] {
        let cpus = Int(max(libbpf_num_possible_cpus(), 1))
        let fd = bpf_map__fd(skeleton.pointee.counters)
        return (0..<Int(LOCKSCOPE_CTR_COUNT.rawValue)).map { index in
            var key = UInt32(index)
            var values = [UInt64](repeating: 0, count: cpus)
            guard bpf_map_lookup_elem(fd, &key, &values) == 0 else { return 0 }
            return values.reduce(0, &+)
        }
    }
}

/// A loaded raw_tp program run with BPF_PROG_TEST_RUN: deterministic input for tests and benchmarks.
/// Only a descriptor and a name, so any thread may run it (on its own CPU, in its own context).
public struct TestRunProgram: Sendable {
    public let fd: Int32
    public let name: String

    /// `program`: one of a loaded skeleton's `progs`.
    public init(_ program: OpaquePointer) {
        fd = bpf_program__fd(program)
        name = String(cString: bpf_program__name(program))
    }

    /// Runs the program once with `arguments` as its tracepoint arguments; returns what it returned.
    @discardableResult
    public func run(_ arguments: [UInt64]) throws -> UInt32 {
        var context = arguments
        var runOptions = bpf_test_run_opts()
        runOptions.sz = MemoryLayout<bpf_test_run_opts>.size
        let result = context.withUnsafeMutableBytes { bytes in
            runOptions.ctx_in = UnsafeRawPointer(bytes.baseAddress)
            runOptions.ctx_size_in = UInt32(bytes.count)
            return bpf_prog_test_run_opts(fd, &runOptions)
        }
        if result != 0 { throw BPFError.setup("test-run \(name)", errno: -result) }
        return runOptions.retval
    }
}

func check(_ result: Int32, _ what: String) throws {
    if result != 0 { throw BPFError.setup(what, errno: result < 0 ? -result : errno) }
}
