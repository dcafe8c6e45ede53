import CLockscopeBPF
import Foundation
import LockscopeCore
import LockscopeKernel
import Synchronization

/// How widely the synthetic events spread their keys: the aggregator keeps state per lock, and per lock
/// per CPU, container, process and stack, so these (not the event count) decide its memory.
struct KeySpace: Codable, Sendable {
    var locks = 1024
    var cpus = 64
    var containers = 128
    var seed: UInt64 = 0x6c6f_636b_7363_6f70

    var hotLocks: Int { Int(LOCKSCOPE_BENCH_HOT_LOCKS) }
    var processes: Int { containers * Int(LOCKSCOPE_BENCH_PIDS_PER_CONTAINER) }
    var containersText: String { Units.count(containers, "container") }

    enum CodingKeys: String, CodingKey {
        case locks, cpus, containers, seed
    }
}

/// bpf/lockscope_bench.bpf.c through its skeleton, loaded by the production loader (`BPFObject`): the
/// same config, ring buffer sizing, batched wake-ups and loss counters as `lockscope record`, fed by
/// BPF_PROG_TEST_RUN instead of locks.
final class SyntheticSource {
    let object: BPFObject<lockscope_bench_bpf>

    init(ringBufferBytes: Int) throws {
        var options = BPFOptions()
        options.ringBufferBytes = ringBufferBytes
        options.readOwners = false
        options.mountSyscalls = false
        object = try BPFObject(options: options)
    }

    var eventsFD: Int32 { object.eventsFD }

    func emitter(keys: KeySpace) -> Emitter {
        Emitter(program: TestRunProgram(object.skeleton.pointee.progs.emit_events), keys: keys)
    }

    /// Events produced and lost to a full ring buffer so far; every produced event is delivered or lost.
    func counts() -> (produced: UInt64, lost: UInt64) {
        let counters = object.counters()
        return (counters[Int(LOCKSCOPE_CTR_WAITS_COMPLETED.rawValue)], counters[Int(LOCKSCOPE_CTR_RINGBUF_FULL.rawValue)])
    }
}

/// Runs `emit_events` on the calling thread (and so on its CPU). Only a descriptor and numbers: any thread may use it.
struct Emitter: Sendable {
    let program: TestRunProgram
    let keys: KeySpace

    /// Emits `count` events whose sequence numbers start at `first`.
    func emit(count: Int, first: UInt64) throws {
        var arguments = [UInt64](repeating: 0, count: Int(LOCKSCOPE_BENCH_ARG_COUNT.rawValue))
        arguments[Int(LOCKSCOPE_BENCH_ARG_EVENTS.rawValue)] = UInt64(count)
        arguments[Int(LOCKSCOPE_BENCH_ARG_FIRST.rawValue)] = first
        arguments[Int(LOCKSCOPE_BENCH_ARG_SEED.rawValue)] = keys.seed
        arguments[Int(LOCKSCOPE_BENCH_ARG_LOCKS.rawValue)] = UInt64(keys.locks)
        arguments[Int(LOCKSCOPE_BENCH_ARG_CPUS.rawValue)] = UInt64(keys.cpus)
        arguments[Int(LOCKSCOPE_BENCH_ARG_CONTAINERS.rawValue)] = UInt64(keys.containers)
        if try program.run(arguments) != 0 { throw BenchError("emit_events refused its arguments (key space \(keys))") }
    }
}

/// One producer run: a thread pinned to `cpu` emits batches at `rate` events/s (flat out when nil)
/// for `durationNs`, then sets `isFinished`.
final class ProducerRun: Sendable {
    /// Events per BPF_PROG_TEST_RUN call: large enough that the syscall is not the limit, small
    /// enough (34 KiB) that pacing stays smooth against an 8 MiB ring buffer.
    static let batch = 256

    let rate: Double?
    let durationNs: UInt64
    private let finished = Atomic<Bool>(false)
    private let outcome = Mutex<(emitted: UInt64, elapsedNs: UInt64, error: String?)>((0, 0, nil))

    init(rate: Double?, durationNs: UInt64) {
        self.rate = rate
        self.durationNs = durationNs
    }

    var isFinished: Bool { finished.load(ordering: .acquiring) }
    var emitted: UInt64 { outcome.withLock { $0.emitted } }
    var elapsedNs: UInt64 { outcome.withLock { $0.elapsedNs } }
    var error: String? { outcome.withLock { $0.error } }

    /// Starts the producer thread; events are numbered from `firstSequence`.
    func start(emitter: Emitter, cpu: Int, firstSequence: UInt64) {
        let thread = Thread { [self] in
            pinCurrentThread(to: cpu)
            let batch = UInt64(Self.batch)
            var emitted: UInt64 = 0
            var failure: String?
            let start = monotonicNs()
            var now = start
            while now - start < durationNs {
                if let rate, emitted + batch > UInt64(Double(now - start) * rate / 1e9) {
                    now = monotonicNs()
                    continue
                }
                do {
                    try emitter.emit(count: Self.batch, first: firstSequence + emitted)
                } catch {
                    failure = "\(error)"
                    break
                }
                emitted += batch
                now = monotonicNs()
            }
            let elapsed = monotonicNs() - start
            outcome.withLock { $0 = (emitted, elapsed, failure) }
            finished.store(true, ordering: .releasing)
        }
        thread.name = "lockscope-bench producer"
        thread.start()
    }
}

/// Pins the calling thread to one CPU: sched_setaffinity(2) on thread id 0, the caller. Swift's Glibc
/// module leaves the GNU affinity calls out, so the function is looked up at run time.
func pinCurrentThread(to cpu: Int) {
    do { try CPUAffinity.confineCurrentThread(to: [cpu]) } catch { progress("warning: \(error)") }
}

/// CPU time the calling thread has used, in nanoseconds.
func threadCPUTimeNs() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// A benchmark that cannot run, with what to do about it.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
