import CPrefetch
import LockscopeKernel

/// What this machine charges for one cache line of a working set at random: the floor under the
/// aggregator's cost per event, which touches several such lines (table slots and bucket counts)
/// spread over tens of megabytes with the default key space.
///
/// Each access reads and writes one 64-byte line at a random place, independent of the others, as an
/// event's lines are. Without prefetching, the out-of-order core overlaps what it can see ahead; with
/// it, each line is requested `prefetchDistance` accesses ahead, as the aggregator does: the best that
/// software can get from the memory system on one core.
struct LineCost: Codable {
    var workingSetBytes: Int
    var ns: Double
    var prefetchedNs: Double

    static let prefetchDistance = 16
    private static let lineWords = 8

    /// A working set that stays in a core's own cache, and one the size of the aggregator's tables.
    static let workingSets = [1 << 20, 32 << 20]

    /// Every working set, measured on the consumer's CPU (0), where the ingest benchmark aggregates.
    static func measureOnConsumerCPU() -> [LineCost] {
        pinCurrentThread(to: 0)
        return workingSets.map { measure(workingSetBytes: $0) }
    }

    static func measure(workingSetBytes: Int, accesses: Int = 1 << 22) -> LineCost {
        let lines = workingSetBytes / 64
        let words = UnsafeMutablePointer<UInt64>.allocate(capacity: lines * lineWords)
        defer { words.deallocate() }
        words.initialize(repeating: 1, count: lines * lineWords)
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        let targets = (0..<accesses).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return Int(state % UInt64(lines)) * lineWords
        }
        func timeNs(prefetch distance: Int) -> Double {
            var sum: UInt64 = 0
            let start = monotonicNs()
            for index in targets.indices {
                if distance > 0, index + distance < targets.count { lockscope_prefetch(words + targets[index + distance]) }
                sum &+= words[targets[index]]
                words[targets[index]] = sum
            }
            let ns = Double(monotonicNs() - start) / Double(targets.count)
            words[0] = sum  // keeps the loop's work observable
            return ns
        }
        _ = timeNs(prefetch: 0)  // every page touched once, the caches in a steady state
        return LineCost(workingSetBytes: workingSetBytes, ns: timeNs(prefetch: 0),
                        prefetchedNs: timeNs(prefetch: prefetchDistance))
    }
}
