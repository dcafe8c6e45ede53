import CPrefetch

/// Raw memory for the elements of one of the aggregator's per-event tables, shared by copies of the
/// table until one of them is written.
///
/// Swift's arrays check on every write that their buffer is not shared (a runtime call), and check
/// every index. An event writes a dozen table entries; taking those checks out removed about a
/// quarter of the collector's instructions (docs/performance.md). The tables built on this (`FlatTable`, `TableArray`, `CountsPool`)
/// instead read and write through `base` with no check per access, and keep value semantics one level
/// up: whoever writes a table calls its `makeUnique()` first. The aggregator does that once per event
/// for all its tables, behind a single check of its own (`Aggregator.makeTablesUnique`).
final class SharedBuffer<Element> {
    let base: UnsafeMutablePointer<Element>
    let capacity: Int
    /// Elements initialized, from `base`.
    private(set) var count: Int

    /// Room for `capacity` elements, none there yet.
    init(capacity: Int) {
        base = .allocate(capacity: capacity)
        self.capacity = capacity
        count = 0
    }

    /// `capacity` elements, all `element`.
    convenience init(capacity: Int, repeating element: Element) {
        self.init(capacity: capacity)
        base.initialize(repeating: element, count: capacity)
        count = capacity
    }

    deinit {
        base.deinitialize(count: count)
        base.deallocate()
    }

    /// A buffer of `capacity` (at least this one's count) holding this one's elements.
    func copy(capacity: Int? = nil) -> SharedBuffer {
        let copy = SharedBuffer(capacity: capacity ?? self.capacity)
        copy.base.initialize(from: base, count: count)
        copy.count = count
        return copy
    }

    /// Adds `element` after the last one (there must be room).
    @inline(__always)
    func append(_ element: Element) {
        precondition(count < capacity)
        (base + count).initialize(to: element)
        count += 1
    }

    /// The elements, for reading (the buffer must outlive the result's use).
    var elements: UnsafeBufferPointer<Element> { UnsafeBufferPointer(start: base, count: count) }
}

/// A growable array of the aggregator's per-event data (lock histograms, lock state) in a
/// `SharedBuffer`: indexing checks nothing, and writes must follow `makeUnique()` on a copy.
struct TableArray<Element> {
    private var buffer: SharedBuffer<Element>
    /// `buffer.base`, kept here so an access is one load.
    private var base: UnsafeMutablePointer<Element>

    init() {
        buffer = SharedBuffer(capacity: 0)
        base = buffer.base
    }

    /// Elements this array has room for (for the benchmarks' table sizes).
    var capacity: Int { buffer.capacity }

    @inline(__always)
    subscript(index: Int) -> Element {
        get { base[index] }
        _modify { yield &base[index] }
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
    func prefetch(_ index: Int) { lockscope_prefetch(base + index) }

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
