import CPrefetch

/// Raw memory for the elements of one of the aggregator's per-event tables, read and written with no
/// index or copy-on-write check per access.
///
/// Swift's arrays check on every write that their buffer is not shared (a runtime call), and check
/// every index. An event writes a dozen table entries; taking those checks out removed about a
/// quarter of the collector's instructions (docs/performance.md). The tables built on this
/// (`FlatTable`, `TableArray`) are noncopyable, so nothing can share their buffer: there is nothing
/// to check.
///
/// Elements are laid out so that none straddles two cache lines more than it must: the buffer starts
/// on a line, and each element takes the next power of two of its size up to a line (64 bytes), or a
/// whole number of lines beyond. A 48-byte table slot then sits in one line instead of spanning two
/// half the time, so the one line a lookup requests ahead (`lockscope_prefetch`) is all it touches.
/// Elements must be plain values (no references), which are copied as bytes.
final class PaddedBuffer<Element> {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    /// Elements initialized, from `base`.
    private(set) var count: Int

    static var lineBytes: Int { 64 }

    /// Bytes from one element to the next.
    @inline(__always)
    static var stride: Int {
        let size = MemoryLayout<Element>.stride
        return size <= lineBytes ? 1 << (Int.bitWidth - (size - 1).leadingZeroBitCount)
            : (size + lineBytes - 1) / lineBytes * lineBytes
    }

    /// Room for `capacity` elements, none there yet.
    init(capacity: Int) {
        precondition(_isPOD(Element.self), "a PaddedBuffer holds plain values only")
        base = .allocate(byteCount: Swift.max(capacity, 1) * Self.stride, alignment: Self.lineBytes)
        self.capacity = capacity
        count = 0
    }

    /// `capacity` elements, all `element`.
    convenience init(capacity: Int, repeating element: Element) {
        self.init(capacity: capacity)
        for _ in 0..<capacity { append(element) }
    }

    deinit { base.deallocate() }

    /// The element at `index` of a buffer starting at `base`: for tables that keep `base` at hand.
    @inline(__always)
    static func element(_ index: Int, from base: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Element> {
        (base + index &* stride).assumingMemoryBound(to: Element.self)
    }

    /// The element at `index`.
    @inline(__always)
    func pointer(_ index: Int) -> UnsafeMutablePointer<Element> { Self.element(index, from: base) }

    /// A buffer of `capacity` (at least this one's count) holding this one's elements.
    func copy(capacity: Int? = nil) -> PaddedBuffer {
        let copy = PaddedBuffer(capacity: capacity ?? self.capacity)
        for index in 0..<count { copy.append(pointer(index).pointee) }
        return copy
    }

    /// Adds `element` after the last one (there must be room).
    @inline(__always)
    func append(_ element: Element) {
        precondition(count < capacity)
        (base + count * Self.stride).initializeMemory(as: Element.self, to: element)
        count += 1
    }
}

/// A growable array of the aggregator's per-event data (lock histograms and activity, waits in flight)
/// in a `PaddedBuffer`: indexing checks nothing.
struct TableArray<Element>: ~Copyable {
    private var buffer: PaddedBuffer<Element>
    /// `buffer.base`, kept here so an access is one load.
    private var base: UnsafeMutableRawPointer

    init() {
        buffer = PaddedBuffer(capacity: 0)
        base = buffer.base
    }

    private init(buffer: PaddedBuffer<Element>) {
        self.buffer = buffer
        base = buffer.base
    }

    @inline(__always)
    private func pointer(_ index: Int) -> UnsafeMutablePointer<Element> { PaddedBuffer.element(index, from: base) }

    /// Elements this array has room for (for the benchmarks' table sizes).
    var capacity: Int { buffer.capacity }

    @inline(__always)
    subscript(index: Int) -> Element {
        get { pointer(index).pointee }
        _modify { yield &pointer(index).pointee }
    }

    /// Adds `element` (appending is rare enough to check for room).
    mutating func append(_ element: Element) {
        if buffer.count == buffer.capacity {
            buffer = buffer.copy(capacity: Swift.max(16, buffer.capacity * 2))
            base = buffer.base
        }
        buffer.append(element)
    }

    /// An array of its own with the same elements.
    func copy() -> TableArray { TableArray(buffer: buffer.copy()) }

    /// Starts loading the cache line of the element at `index`, without waiting for it.
    @inline(__always)
    func prefetch(_ index: Int) { lockscope_prefetch(pointer(index)) }
}
