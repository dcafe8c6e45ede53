import CLockscopeBPF

/// Waits the kernel kept only because their lock is in the kernel image's static data, while the
/// recorder was still learning which addresses the locks it selects by name are (`--locks mount`:
/// namespace_sem and mount_lock, recognised by their call paths). They are held by lock address until
/// the lock has a name, then recorded, or dropped when it is not one of the selected locks; so no wait
/// on namespace_sem or mount_lock is lost before they are recognised, outside mount syscalls included.
struct ProvisionalWaits {
    /// Most waits held at once; past it, new ones are lost and counted (`Drops.provisionalOverflow`).
    static let maxHeld = 1 << 18
    static let flag = UInt32(LOCKSCOPE_WAIT_PROVISIONAL)

    private(set) var byLock: [UInt64: [WaitEvent]] = [:]
    private(set) var held = 0
    /// Waits lost because too many were held.
    private(set) var overflow: UInt64 = 0

    mutating func hold(_ event: WaitEvent) {
        guard held < Self.maxHeld else {
            overflow += 1
            return
        }
        var event = event
        event.flags &= ~Self.flag
        byLock[event.lockAddress, default: []].append(event)
        held += 1
    }

    /// Takes the waits held for the locks `decide` has an answer for: those to record (true), leaving
    /// out those to drop (false); the locks it has no answer for yet (nil) stay held.
    mutating func settle(_ decide: (UInt64) -> Bool?) -> [WaitEvent] {
        var kept: [WaitEvent] = []
        for (address, events) in byLock {
            guard let keep = decide(address) else { continue }
            if keep { kept += events }
            byLock[address] = nil
            held -= events.count
        }
        return kept.sorted { $0.endNs < $1.endNs }
    }

    /// What naming a held lock reads (its call paths), as for a recorded one.
    func summaries() -> [Aggregator.LockSummary] {
        byLock.map { address, events in
            var stacks: [Int32: Aggregator.Tally] = [:]
            for event in events { stacks[event.stackID, default: .init()].add(event.waitNs) }
            return Aggregator.LockSummary(address: address, kind: events[0].kind, contentions: UInt64(events.count),
                                          stacks: stacks, outerLocks: [:])
        }
    }
}
