import CPrefetch

/// Raw memory for the elements of one of the aggregator's per-event tables, shared by copies of the
/// table until one of them is written.
///
/// Swift's arrays check on every write that their buffer is not shared (a runtime call), and check
/// every index. An event writes a dozen table entries; taking those checks out removed about a
/// quarter of the collector's instructions (docs/performance.md). The tables built on this
/// (`FlatTable`, `TableArray`) instead read and write through `base` with no check per access, and keep
/// value semantics one level up: whoever writes a table calls its `makeUnique()` first (`CountsPool`
/// keeps its chunks the same way). The aggregator does that once per event
/// for all its tables, behind a single check of its own (`Aggregator.makeTablesUnique`).
///
/// Elements are laid out so that none straddles two cache lines more than it must: the buffer starts
/// on a line, and each element takes the next power of two of its size up to a line (64 bytes), or a
/// whole number of lines beyond. A 48-byte table slot then sits in one line instead of spanning two
/// half the time, so the one line a lookup requests ahead (`lockscope_prefetch`) is all it touches.
/// Elements must be plain values (no references), which are copied as bytes.
final class SharedBuffer<Element> {
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
        precondition(_isPOD(Element.self), "a SharedBuffer holds plain values only")
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
    func copy(capacity: Int? = nil) -> SharedBuffer {
        let copy = SharedBuffer(capacity: capacity ?? self.capacity)
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

/// A growable array of the aggregator's per-event data (lock histograms and activity, waits in flight) in a
/// `SharedBuffer`: indexing checks nothing, and writes must follow `makeUnique()` on a copy.
struct TableArray<Element> {
    private var buffer: SharedBuffer<Element>
    /// `buffer.base`, kept here so an access is one load.
    private var base: UnsafeMutableRawPointer

    init() {
        buffer = SharedBuffer(capacity: 0)
        base = buffer.base
    }

    @inline(__always)
    private func pointer(_ index: Int) -> UnsafeMutablePointer<Element> { SharedBuffer.element(index, from: base) }

    /// Elements this array has room for (for the benchmarks' table sizes).
    var capacity: Int { buffer.capacity }

    @inline(__always)
    subscript(index: Int) -> Element {
        get { pointer(index).pointee }
        _modify { yield &pointer(index).pointee }
    }

    /// Adds `element`, in a buffer of this array's own (appending is rare enough to check).
    mutating func append(_ element: Element) {
        if buffer.count == buffer.capacity {
            replaceBuffer(capacity: Swift.max(16, buffer.capacity * 2))
        } else {
            makeUnique()
        }
        buffer.append(element)
    }

    /// Starts loading the cache line of the element at `index`, without waiting for it.
    @inline(__always)
    func prefetch(_ index: Int) { lockscope_prefetch(pointer(index)) }

    /// Gives this array a buffer of its own if it shares one with a copy.
    @inline(__always)
    mutating func makeUnique() {
        if _slowPath(!isKnownUniquelyReferenced(&buffer)) { replaceBuffer(capacity: buffer.capacity) }
    }

    private mutating func replaceBuffer(capacity: Int) {
        buffer = buffer.copy(capacity: capacity)
        base = buffer.base
    }
}
