import CLibbpf
import CLockscopeBPF
import CPrefetch
import Glibc
import LockscopeCore

/// Reads records from the BPF ring buffer and hands each, decoded, to an `Aggregator` (the collector's
/// path) or to a handler (tests that look at the events themselves).
///
/// The BPF side submits with BPF_RB_NO_WAKEUP until a quarter of the buffer is full, so the reader
/// is not woken per event: `poll` waits up to its timeout (or an early wake-up), then drains everything.
///
/// The per-record path is the collector's hottest after aggregation, so libbpf's callback reaches the
/// aggregator through a plain pointer, set for the duration of each `poll(timeoutMs:into:)`: no
/// reference counting, closure context or exclusivity check per record.
public final class RingBufferReader {
    private var ring: OpaquePointer?
    /// How far ahead of the record being read its successors are requested: eight wait records.
    /// (libbpf maps the data area twice, so this never runs off its end.)
    static let prefetchAhead = 8 * (MemoryLayout<lockscope_wait_event>.size + 8)
    /// What libbpf's callback sees. Raw memory, allocated once, so that it has a fixed address.
    private let target: UnsafeMutablePointer<Target>

    private struct Target {
        /// Where records go during `poll(timeoutMs:into:)` and `drain(into:)`; nil otherwise.
        var aggregator: UnsafeMutablePointer<Aggregator>?
        /// Where records go otherwise.
        var handler: ((KernelEvent) -> Void)?
        var undecodable: UInt64 = 0
        /// Where waits' user stacks are kept; nil leaves them out.
        var userStacks: UserStackTable?
    }

    /// Records that were not a known event type (a mismatch between the object and this build).
    public var undecodable: UInt64 { target.pointee.undecodable }

    /// A reader for `poll(timeoutMs:into:)`, or one that gives every record to `handler`; waits' user
    /// stacks go into `userStacks`.
    public init(mapFD: Int32, handler: ((KernelEvent) -> Void)? = nil, userStacks: UserStackTable? = nil) throws {
        target = .allocate(capacity: 1)
        target.initialize(to: Target(handler: handler, userStacks: userStacks))
        ring = ring_buffer__new(mapFD, { context, data, size in
            let target = context!.assumingMemoryBound(to: Target.self)
            if let data {  // the records a few ahead: the producer's CPU has them, each a miss here
                lockscope_prefetch_read(data + RingBufferReader.prefetchAhead)
                lockscope_prefetch_read(data + RingBufferReader.prefetchAhead + 64)
            }
            guard let event = KernelEvent.decode(UnsafeRawBufferPointer(start: data, count: size),
                                                 userStacks: target.pointee.userStacks) else {
                target.pointee.undecodable += 1
                return 0
            }
            if let aggregator = target.pointee.aggregator {
                aggregator.pointee.record(event)
            } else {
                target.pointee.handler?(event)
            }
            return 0
        }, UnsafeMutableRawPointer(target), nil)
        // Every stored property is set by now, so throwing runs `deinit`, which frees `target`.
        guard ring != nil else { throw BPFError.setup("open the ring buffer", errno: errno) }
    }

    deinit {
        if let ring { ring_buffer__free(ring) }
        target.deinitialize(count: 1)
        target.deallocate()
    }

    /// Waits up to `timeoutMs` for a wake-up, then records every record available into `aggregator`.
    /// Returns the count.
    @discardableResult
    public func poll(timeoutMs: Int32, into aggregator: inout Aggregator) -> Int {
        withAggregator(&aggregator) { poll(timeoutMs: timeoutMs) }
    }

    /// Records every record available into `aggregator` without waiting. Returns the count.
    @discardableResult
    public func drain(into aggregator: inout Aggregator) -> Int {
        withAggregator(&aggregator) { drain() }
    }

    /// Waits up to `timeoutMs` for a wake-up, then gives every record available to the handler.
    @discardableResult
    public func poll(timeoutMs: Int32) -> Int {
        let woken = ring_buffer__poll(ring, timeoutMs)
        let drained = ring_buffer__consume(ring)
        return Int(max(woken, 0)) + Int(max(drained, 0))
    }

    /// Gives every record available to the handler without waiting.
    @discardableResult
    public func drain() -> Int {
        Int(max(ring_buffer__consume(ring), 0))
    }

    private func withAggregator(_ aggregator: inout Aggregator, _ body: () -> Int) -> Int {
        withUnsafeMutablePointer(to: &aggregator) { pointer in
            target.pointee.aggregator = pointer
            defer { target.pointee.aggregator = nil }
            return body()
        }
    }
}
