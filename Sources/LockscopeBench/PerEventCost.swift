import CLockscopeBPF
import LockscopeCore
import LockscopeKernel

/// The collector's CPU time per event on one thread, without the cross-CPU cache traffic of a
/// producer writing the ring buffer while the consumer reads it: where the ingest rate goes.
struct PerEventCost: Codable {
    /// libbpf reading one record and `KernelEvent.decode` turning it into an event.
    var readAndDecodeNs: Double
    /// `Aggregator.record` of one decoded event, once every key has been seen (the steady state).
    var aggregateNs: Double
    /// The same with the smallest key space (17 locks, one CPU, one container): no cache misses to speak of.
    var aggregateFewKeysNs: Double

    static func measure(keys: KeySpace, events: Int = 1 << 18, passes: Int = 8) throws -> PerEventCost {
        let (readAndDecode, decoded) = try readAndDecodeNs(keys: keys, events: events)
        let few = try readAndDecodeNs(keys: KeySpace(locks: keys.hotLocks + 1, cpus: 1, containers: 1), events: events).events
        return PerEventCost(readAndDecodeNs: readAndDecode, aggregateNs: aggregateNs(decoded, passes: passes),
                            aggregateFewKeysNs: aggregateNs(few, passes: passes))
    }

    /// Fills a ring buffer with `events` records, then times draining it into an array of events.
    private static func readAndDecodeNs(keys: KeySpace, events: Int) throws -> (ns: Double, events: [KernelEvent]) {
        let bytes = events * (MemoryLayout<lockscope_wait_event>.size + 8) // each record has an 8-byte header
        let source = try SyntheticSource(ringBufferBytes: 1 << (Int.bitWidth - (bytes - 1).leadingZeroBitCount))
        var decoded: [KernelEvent] = []
        decoded.reserveCapacity(events)
        let reader = try RingBufferReader(mapFD: source.eventsFD) { decoded.append($0) }
        let emitter = source.emitter(keys: keys)
        for first in stride(from: 0, to: events, by: 4096) {
            try emitter.emit(count: min(4096, events - first), first: UInt64(first))
        }
        let start = monotonicNs()
        _ = reader.drain()
        let ns = Double(monotonicNs() - start)
        guard !decoded.isEmpty else { throw BenchError("no synthetic events arrived (\(source.counts()))") }
        return (ns / Double(decoded.count), decoded)
    }

    /// Records `events` once to create every key, then times `passes` more passes.
    private static func aggregateNs(_ events: [KernelEvent], passes: Int) -> Double {
        var aggregator = Aggregator(topology: try? Topology.read())
        for event in events { aggregator.record(event) }
        let start = monotonicNs()
        for _ in 0..<passes {
            for event in events { aggregator.record(event) }
        }
        return Double(monotonicNs() - start) / Double(events.count * passes)
    }
}
