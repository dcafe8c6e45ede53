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

extension Array {
    /// Starts loading the cache line of the element at `index`, without waiting for it.
    @inline(__always)
    func prefetch(_ index: Int) {
        withUnsafeBufferPointer { lockscope_prefetch($0.baseAddress! + index) }
    }
}

/// An open-addressing hash table (linear probing, at most 70% full) whose keys and values sit side by
/// side in one array: a lookup usually touches a single cache line, where `Dictionary` touches three
/// (its bitmap, keys and values arrays). The aggregator does several lookups per event over tables
/// too large for the cache, so this is most of its speed. No removal: tables only grow, and are
/// emptied whole.
struct FlatTable<Key: FlatTableKey, Value> {
    struct Slot {
        var key: Key
        var value: Value
    }

    private(set) var slots: [Slot]
    private(set) var count = 0
    private let empty: Value

    /// `empty` fills unused slots; it is never returned.
    init(empty: Value) {
        self.empty = empty
        slots = Array(repeating: Slot(key: .unused, value: empty), count: 16)
    }

    /// The slot of `key`, if present (`key` must not be `.unused`, which every empty slot holds).
    @inline(__always)
    func index(of key: Key) -> Int? {
        let mask = slots.count - 1
        var index = key.slotHash & mask
        while true {
            let slotKey = slots[index].key
            if slotKey == key { return index }
            if slotKey == .unused { return nil }
            index = (index + 1) & mask
        }
    }

    /// Starts loading the cache line where a lookup of `key` begins, without waiting for it.
    @inline(__always)
    func prefetch(_ key: Key) {
        slots.withUnsafeBufferPointer { lockscope_prefetch($0.baseAddress! + (key.slotHash & ($0.count - 1))) }
    }

    /// Adds `key` (which must not be present) with `value`; returns its slot.
    @discardableResult
    mutating func insert(_ key: Key, _ value: Value) -> Int {
        precondition(key != .unused, "the unused key marks empty slots")
        if (count + 1) * 10 > slots.count * 7 { rehash(capacity: slots.count * 2) }
        count += 1
        return place(Slot(key: key, value: value))
    }

    /// The slot of `key`, added with `value` if it was missing.
    mutating func index(of key: Key, adding value: @autoclosure () -> Value) -> Int {
        index(of: key) ?? insert(key, value())
    }

    subscript(index: Int) -> Value {
        get { slots[index].value }
        _modify { yield &slots[index].value }
    }

    /// Every key and value, in no particular order.
    var entries: some Sequence<Slot> { slots.lazy.filter { $0.key != .unused } }

    private mutating func place(_ slot: Slot) -> Int {
        let mask = slots.count - 1
        var index = slot.key.slotHash & mask
        while slots[index].key != .unused { index = (index + 1) & mask }
        slots[index] = slot
        return index
    }

    private mutating func rehash(capacity: Int) {
        let old = slots
        slots = Array(repeating: Slot(key: .unused, value: empty), count: capacity)
        for slot in old where slot.key != .unused { _ = place(slot) }
    }
}
