import CLibbpf
import Glibc
import LockscopeCore
import LockscopeKernel

/// Something that drains the ring buffer the way `Recorder.run` does: wait up to a timeout for a
/// wake-up, then consume everything available. Both return the records consumed.
protocol RingConsumer: AnyObject {
    func poll(timeoutMs: Int32) -> Int
    func drain() -> Int
}

/// The collector's per-event path, exactly as `Recorder` wires it: `RingBufferReader` (which decodes
/// each record with `KernelEvent.decode`) → `Aggregator.record`.
final class CollectorConsumer: RingConsumer {
    private(set) var aggregator: Aggregator
    private let reader: RingBufferReader

    init(mapFD: Int32, topology: Topology?) throws {
        aggregator = Aggregator(topology: topology)
        reader = try RingBufferReader(mapFD: mapFD)
    }

    /// The profile, as `Recorder.finish()` builds it (releasing the aggregated state).
    func takeProfile(_ inputs: ProfileInputs) -> Profile { aggregator.takeProfile(inputs) }

    /// Records that were not a known event type; must stay 0.
    var undecodable: UInt64 { reader.undecodable }

    func poll(timeoutMs: Int32) -> Int { reader.poll(timeoutMs: timeoutMs, into: &aggregator) }
    func drain() -> Int { reader.drain(into: &aggregator) }
}

/// The ceiling: libbpf's ring buffer consumer with a callback that does nothing.
final class NullConsumer: RingConsumer {
    private let ring: OpaquePointer

    init(mapFD: Int32) throws {
        guard let ring = ring_buffer__new(mapFD, { _, _, _ in 0 }, nil, nil) else {
            throw BPFError.setup("open the ring buffer", errno: errno)
        }
        self.ring = ring
    }

    deinit { ring_buffer__free(ring) }

    func poll(timeoutMs: Int32) -> Int {
        Int(max(ring_buffer__poll(ring, timeoutMs), 0)) + drain()
    }

    func drain() -> Int { Int(max(ring_buffer__consume(ring), 0)) }
}
