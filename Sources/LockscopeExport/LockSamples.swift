import Foundation
import LockscopeCore

/// Contentions and wait time together: the two weights every sample carries.
struct WaitAmount: Equatable, Sendable {
    var contentions: UInt64
    var waitNs: UInt64

    static let zero = WaitAmount(contentions: 0, waitNs: 0)

    var isZero: Bool { contentions == 0 && waitNs == 0 }

    func value(_ weight: ExportWeight) -> UInt64 {
        switch weight {
        case .wait: return waitNs
        case .count: return contentions
        }
    }

    /// Whether both weights are at most `other`'s.
    func fits(in other: WaitAmount) -> Bool { contentions <= other.contentions && waitNs <= other.waitNs }

    /// Each weight less `other`'s, stopping at zero.
    func clampedSubtracting(_ other: WaitAmount) -> WaitAmount {
        WaitAmount(contentions: contentions - min(contentions, other.contentions),
                   waitNs: waitNs - min(waitNs, other.waitNs))
    }

    /// Both weights added, each stopping at `UInt64.max` (a crafted profile's waits need not add up in 64 bits).
    static func + (lhs: WaitAmount, rhs: WaitAmount) -> WaitAmount {
        WaitAmount(contentions: lhs.contentions.addingSaturated(rhs.contentions), waitNs: lhs.waitNs.addingSaturated(rhs.waitNs))
    }

    static func += (lhs: inout WaitAmount, rhs: WaitAmount) { lhs = lhs + rhs }
}

extension WaitAmount {
    init(_ stats: WaitStats) { self.init(contentions: stats.contentions, waitNs: stats.totalWaitNs) }
    init(_ stack: StackProfile) { self.init(contentions: stack.count, waitNs: stack.totalWaitNs) }
    init(_ context: StackContext) { self.init(contentions: context.count, waitNs: context.totalWaitNs) }
}

/// Where a sample's waits happened, as far as the profile knows.
struct WaitPlace: Hashable, Sendable {
    var cpu: Int?
    var container: String?

    static let unknown = WaitPlace(cpu: nil, container: nil)
}

/// The waits of one lock along one kernel stack, on one CPU and in one container when those are known.
struct LockSample: Sendable {
    /// Index of the lock in `Profile.locks`.
    var lock: Int
    /// Index of the kernel stack in `LockSamples.stacks`.
    var stack: Int
    var place: WaitPlace
    var amount: WaitAmount
}

/// A profile's waits as weighted call paths: what every stack-based exporter draws or writes.
///
/// Each stack is split by its contexts (CPU and container). Waits of a lock that were recorded without a
/// stack (the lock's totals minus its stacks') become a `[no stack]` frame, so that the samples of a
/// lock always add up to the lock's own totals. Those waits are split by container, or by CPU when the
/// grouping names cpu or socket first, from the lock's `by_container`/`by_cpu` minus what its stacks'
/// contexts already account for. Whatever a split cannot place goes to an unknown place.
///
/// What the exporters write or draw grows with the frames of the distinct call paths (grouping frames and
/// kernel stack), which a crafted profile can multiply: a stack thousands of frames deep split among
/// thousands of containers. Past `maxFrames` frames or `maxNameBytes` bytes of frame names in all, the
/// samples are refused with one line; pprof, which repeats a path for each sample, checks `maxSampleFrames`.
struct LockSamples: Sendable {
    static let noStackFrame = "[no stack]"
    static let maxFrames = 8_000_000
    static let maxNameBytes = 1 << 30
    static let maxSampleFrames = 64_000_000

    let profile: Profile
    let grouping: StackGrouping
    /// Stacks root-to-leaf (user frames, then kernel frames), sanitized; the first is `[no stack]`.
    private(set) var stacks: [[String]] = [[Self.noStackFrame]]
    private(set) var samples: [LockSample] = []
    /// The grouping's synthetic frames for each lock and place seen, computed once.
    private var groupFramesByKey: [GroupKey: [String]] = [:]

    private struct GroupKey: Hashable {
        var lock: Int
        var place: WaitPlace
    }

    init(_ profile: Profile, grouping: StackGrouping) throws {
        self.profile = profile
        self.grouping = grouping
        for (index, lock) in profile.locks.enumerated() {
            var stacksTotal = WaitAmount.zero
            var placedByStacks: [WaitPlace: WaitAmount] = [:]
            for stack in lock.stacks {
                let amount = WaitAmount(stack)
                stacksTotal += amount
                var stackIndex = 0
                // Kernel frames on top of the waiter's user frames: the root is the outermost user frame.
                let frames = stack.allFrames
                if !frames.isEmpty {
                    stackIndex = stacks.count
                    stacks.append(frames.reversed().map(Self.sanitize))
                }
                let contexts = stack.contexts.map { (WaitPlace(cpu: $0.cpu, container: $0.container), WaitAmount($0)) }
                for (place, part) in Self.divide(amount, among: contexts) {
                    if place != .unknown { placedByStacks[place, default: .zero] += part }
                    samples.append(LockSample(lock: index, stack: stackIndex, place: place, amount: part))
                }
            }
            let stackless = WaitAmount(lock.stats).clampedSubtracting(stacksTotal)
            if !stackless.isZero {
                let known = Self.stacklessParts(of: lock, byCPU: grouping.splitsStacklessWaitsByCPU,
                                                placedByStacks: placedByStacks)
                for (place, part) in Self.divide(stackless, among: known) {
                    samples.append(LockSample(lock: index, stack: 0, place: place, amount: part))
                }
            }
        }
        for sample in samples {
            let key = GroupKey(lock: sample.lock, place: sample.place)
            if groupFramesByKey[key] == nil { groupFramesByKey[key] = groupFrames(lock: sample.lock, place: sample.place) }
        }
        try checkSize()
    }

    /// Refuses distinct call paths whose frames add up to more than `maxFrames`, or their names to more than `maxNameBytes`.
    private func checkSize() throws {
        let stackBytes = stacks.map { $0.reduce(0) { $0 + $1.utf8.count + 1 } }
        var seen: Set<PathKey> = []
        var frames = 0, bytes = 0
        for sample in samples {
            let key = pathKey(of: sample)
            guard seen.insert(key).inserted else { continue }
            frames += key.group.count + stacks[key.stack].count
            bytes += key.group.reduce(0) { $0 + $1.utf8.count + 1 } + stackBytes[key.stack]
            guard frames <= Self.maxFrames && bytes <= Self.maxNameBytes else {
                throw tooLarge("\(Self.maxFrames) frames or \(Self.maxNameBytes >> 30) GiB of frame names",
                               "group by fewer dimensions, e.g. --group lock or none")
            }
        }
    }

    /// Refuses samples whose paths' frames, repeated for each sample, add up to more than `maxSampleFrames`.
    func checkSampleFrames() throws {
        var frames = 0
        for sample in samples {
            frames += groupFrames(of: sample).count + stacks[sample.stack].count
            guard frames <= Self.maxSampleFrames else {
                throw tooLarge("\(Self.maxSampleFrames) frames", "export folded stacks or speedscope, which merge a path's samples")
            }
        }
    }

    private func tooLarge(_ limit: String, _ advice: String) -> UserError {
        UserError("grouped by \(grouping), the profile's call paths hold over \(limit) in all (each stack once per CPU and "
                  + "container it is split by), more than lockscope writes: \(advice)")
    }

    /// The grouping's synthetic frames above a sample's stack, outermost first.
    private func groupFrames(of sample: LockSample) -> [String] {
        groupFramesByKey[GroupKey(lock: sample.lock, place: sample.place)]!
    }

    /// A sample's frames without building them: samples with equal keys have equal frames.
    struct PathKey: Hashable {
        var group: [String]
        var stack: Int
    }

    func pathKey(of sample: LockSample) -> PathKey { PathKey(group: groupFrames(of: sample), stack: sample.stack) }

    /// The frames, root-to-leaf, of the samples with this key: the grouping's synthetic frames, then the kernel stack.
    func frames(of key: PathKey) -> [String] { key.group + stacks[key.stack] }

    /// The samples merged by their frames, in the order of their folded lines (frames joined by `;`).
    func mergedPaths() -> [(frames: [String], amount: WaitAmount)] {
        var byKey: [PathKey: WaitAmount] = [:]
        for sample in samples {
            byKey[pathKey(of: sample), default: .zero] += sample.amount
        }
        var byFrames: [[String]: WaitAmount] = [:]
        for (key, amount) in byKey {
            byFrames[frames(of: key), default: .zero] += amount
        }
        return byFrames.map { (frames: $0.key, amount: $0.value, line: $0.key.joined(separator: ";")) }
            .sorted { $0.line < $1.line }
            .map { ($0.frames, $0.amount) }
    }

    /// The lock's per-container (or per-CPU) totals less what its stacks placed there: where its stackless
    /// waits happened. Empty when the two disagree (the stacks placed more somewhere than the lock has).
    private static func stacklessParts(of lock: LockProfile, byCPU: Bool,
                                       placedByStacks: [WaitPlace: WaitAmount]) -> [(WaitPlace, WaitAmount)] {
        var placedByKey: [WaitPlace: WaitAmount] = [:]
        for (place, amount) in placedByStacks {
            let key = byCPU ? WaitPlace(cpu: place.cpu, container: nil) : WaitPlace(cpu: nil, container: place.container)
            placedByKey[key, default: .zero] += amount
        }
        let keyed: [(WaitPlace, WaitAmount)] = byCPU
            ? lock.byCpu.map { (WaitPlace(cpu: Int($0.key), container: nil), WaitAmount($0.stats)) }
            : lock.byContainer.map { (WaitPlace(cpu: nil, container: $0.key), WaitAmount($0.stats)) }
        var parts: [(WaitPlace, WaitAmount)] = []
        for (place, amount) in keyed where place != .unknown {
            let placed = placedByKey[place] ?? .zero
            guard placed.fits(in: amount) else { return [] }
            parts.append((place, amount.clampedSubtracting(placed)))
        }
        return parts
    }

    /// `total` divided among `parts` when they fit within it, the rest at the unknown place; all of `total`
    /// at the unknown place when they do not fit (an inconsistent profile). Zero amounts are left out.
    static func divide(_ total: WaitAmount, among parts: [(WaitPlace, WaitAmount)]) -> [(WaitPlace, WaitAmount)] {
        let partsTotal = parts.reduce(WaitAmount.zero) { $0 + $1.1 }
        guard partsTotal.fits(in: total) else { return total.isZero ? [] : [(.unknown, total)] }
        let rest = total.clampedSubtracting(partsTotal)
        return (parts + [(.unknown, rest)]).filter { !$0.1.isZero }
    }

    private func groupFrames(lock: Int, place: WaitPlace) -> [String] {
        grouping.dimensions.map { dimension in
            switch dimension {
            case .lock:
                return "[lock] " + Self.sanitize(profile.locks[lock].name)
            case .container:
                return place.container.map { "[container] " + Self.sanitize(ContainerName.short($0)) } ?? "[container ?]"
            case .cpu:
                return place.cpu.map { "[cpu \($0)]" } ?? "[cpu ?]"
            case .socket:
                return socket(of: place).map { "[socket \($0)]" } ?? "[socket ?]"
            }
        }
    }

    /// The socket of the CPU a sample ran on, from the profile's topology.
    func socket(of place: WaitPlace) -> Int? {
        place.cpu.flatMap { profile.topology?.cpu($0)?.socket }
    }


    /// A frame name every folded-stack reader accepts: `;` becomes `:`, control characters and line breaks
    /// become spaces, surrounding spaces go, and an empty name becomes `[unknown]`.
    static func sanitize(_ name: String) -> String {
        let isPlainSymbol = !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: ";") }
        if isPlainSymbol { return name }
        var scalars = String.UnicodeScalarView()
        for scalar in name.unicodeScalars {
            if scalar == ";" {
                scalars.append(":")
            } else if scalar.properties.generalCategory == .control || (scalar.properties.isWhitespace && scalar != " ") {
                scalars.append(" ")
            } else {
                scalars.append(scalar)
            }
        }
        let trimmed = String(scalars).trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? "[unknown]" : trimmed
    }
}
