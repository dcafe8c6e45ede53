import CLibbpf
import Glibc
import LockscopeCore

/// Reads records from the BPF ring buffer and hands each, decoded, to a handler.
///
/// The BPF side submits with BPF_RB_NO_WAKEUP until a quarter of the buffer is full, so the reader
/// is not woken per event: `poll` waits up to its timeout (or an early wake-up), then drains everything.
public final class RingBufferReader {
    private var ring: OpaquePointer?
    private let sink: Sink

    /// Holds the handler for the C callback.
    final class Sink {
        let handle: (KernelEvent) -> Void
        var undecodable: UInt64 = 0
        init(_ handle: @escaping (KernelEvent) -> Void) { self.handle = handle }
    }

    /// Records that were not a known event type (a mismatch between the object and this build).
    public var undecodable: UInt64 { sink.undecodable }

    public init(mapFD: Int32, handler: @escaping (KernelEvent) -> Void) throws {
        sink = Sink(handler)
        ring = ring_buffer__new(mapFD, { context, data, size in
            let sink = Unmanaged<Sink>.fromOpaque(context!).takeUnretainedValue()
            if let event = KernelEvent.decode(UnsafeRawBufferPointer(start: data, count: size)) {
                sink.handle(event)
            } else {
                sink.undecodable += 1
            }
            return 0
        }, Unmanaged.passUnretained(sink).toOpaque(), nil)
        guard ring != nil else { throw BPFError.setup("open the ring buffer", errno: errno) }
    }

    deinit {
        if let ring { ring_buffer__free(ring) }
    }

    /// Waits up to `timeoutMs` for a wake-up, then consumes every record available. Returns the count.
    @discardableResult
    public func poll(timeoutMs: Int32) -> Int {
        let woken = ring_buffer__poll(ring, timeoutMs)
        let drained = ring_buffer__consume(ring)
        return Int(max(woken, 0)) + Int(max(drained, 0))
    }

    /// Consumes every record available without waiting.
    @discardableResult
    public func drain() -> Int {
        Int(max(ring_buffer__consume(ring), 0))
    }
}
