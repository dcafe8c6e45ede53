import CPrefetch

/// A key for `FlatTable`: plain words, hashed with one multiply per word, with one value that no real
/// key takes to mark an empty slot.
protocol FlatTableKey: Equatable {
    static var unused: Self { get }
    var hashWord: UInt64 { get }
}

extension FlatTableKey {
    /// A multiply-xorshift mix of `hashWord`: enough for ids and addresses, far cheaper than SipHash.
    @inline(__always)
    var slotHash: Int {
        var x = hashWord &* 0x9e37_79b9_7f4a_7c15
        x ^= x >> 29
        return Int(truncatingIfNeeded: (x &* 0xbf58_476d_1ce4_e5b9) >> 32)
    }
}

/// An open-addressing hash table (linear probing, at most 70% full) whose keys and values sit side by
/// side in one buffer: a lookup usually touches a single cache line, where `Dictionary` touches three
/// (its bitmap, keys and values arrays). The aggregator does several lookups per event over tables
/// too large for the cache, so this is most of its speed. No removal: tables only grow, and are
/// emptied whole.
///
/// The slots live in a `PaddedBuffer`, read and written with no check (`table[index]`); the table is
/// noncopyable, so no other table shares them.
struct FlatTable<Key: FlatTableKey, Value>: ~Copyable {
    struct Slot {
        var key: Key
        var value: Value
    }

    private var buffer: PaddedBuffer<Slot>
    /// `buffer.base` and `buffer.capacity - 1`, kept here so a probe is a load, a mask and a compare.
    private var slots: UnsafeMutableRawPointer
    private var mask: Int
    private(set) var count = 0
    private let empty: Value

    /// `empty` fills unused slots; it is never returned.
    init(empty: Value) {
        self.empty = empty
        buffer = PaddedBuffer(capacity: 16, repeating: Slot(key: .unused, value: empty))
        slots = buffer.base
        mask = buffer.capacity - 1
    }

    /// Slots, used or not.
    var capacity: Int { buffer.capacity }

    /// Bytes a slot takes (`PaddedBuffer` pads it to a power of two, up to a cache line).
    static var slotBytes: Int { PaddedBuffer<Slot>.stride }

    @inline(__always)
    private func slot(_ index: Int) -> UnsafeMutablePointer<Slot> { PaddedBuffer.element(index, from: slots) }

    /// The slot of `key`, if present (`key` must not be `.unused`, which every empty slot holds).
    @inline(__always)
    func index(of key: Key) -> Int? {
        var index = key.slotHash & mask
        while true {
            let slotKey = slot(index).pointee.key
            if slotKey == key { return index }
            if slotKey == .unused { return nil }
            index = (index &+ 1) & mask
        }
    }

    /// Starts loading the cache line where a lookup of `key` begins, without waiting for it.
    @inline(__always)
    func prefetch(_ key: Key) {
        lockscope_prefetch(slot(key.slotHash & mask))
    }

    /// Adds `key` (which must not be present) with `value`; returns its slot.
    @discardableResult
    mutating func insert(_ key: Key, _ value: Value) -> Int {
        precondition(key != .unused, "the unused key marks empty slots")
        if (count + 1) * 10 > buffer.capacity * 7 {
            rehash(capacity: buffer.capacity * 2)
        }
        count += 1
        return place(Slot(key: key, value: value))
    }

    /// The slot of `key`, added with `value` if it was missing.
    @inline(__always)
    mutating func index(of key: Key, adding value: @autoclosure () -> Value) -> Int {
        index(of: key) ?? insert(key, value())
    }

    @inline(__always)
    subscript(index: Int) -> Value {
        get { slot(index).pointee.value }
        _modify { yield &slot(index).pointee.value }
    }

    /// Empties the table, releasing its slots.
    mutating func removeAll() {
        buffer = PaddedBuffer(capacity: 16, repeating: Slot(key: .unused, value: empty))
        slots = buffer.base
        mask = buffer.capacity - 1
        count = 0
    }

    /// Every key and value, in no particular order.
    func forEachEntry(_ body: (Slot) -> Void) {
        withExtendedLifetime(buffer) {
            for index in 0..<buffer.capacity where slot(index).pointee.key != .unused { body(slot(index).pointee) }
        }
    }

    private mutating func place(_ entry: Slot) -> Int {
        var index = entry.key.slotHash & mask
        while slot(index).pointee.key != .unused { index = (index + 1) & mask }
        slot(index).pointee = entry
        return index
    }

    private mutating func rehash(capacity: Int) {
        let old = buffer
        buffer = PaddedBuffer(capacity: capacity, repeating: Slot(key: .unused, value: empty))
        slots = buffer.base
        mask = capacity - 1
        for index in 0..<old.capacity {
            let entry = old.pointer(index).pointee
            if entry.key != .unused { _ = place(entry) }
        }
    }
}
