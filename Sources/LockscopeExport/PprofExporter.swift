import Foundation
import LockscopeCore
import SwiftProtobuf

/// pprof: a gzip-compressed `perftools.profiles.Profile`, for `go tool pprof`, Pyroscope and other pprof readers.
///
/// Sample types are `contentions/count` then `delay/nanoseconds`, as in Go's block and mutex profiles, so
/// that pprof's `-sample_index=delay`, `-total_delay` and `-mean_delay` work (`weight` picks the default).
/// Every frame is a function with one location in a single symbolized `[kernel.kallsyms]` mapping (no
/// addresses), the grouping's synthetic frames at the root. Samples carry, for `-tagfocus`, `-tagignore`,
/// `-tagroot` and `-tagleaf`, string labels `lock`, `lock_kind`, and when known `container` with its
/// `runtime`, `pod` (sandbox id) and `pod_uid`; and numeric labels `cpu` and `socket`, which carry a unit
/// (`cpu`, `socket`) because pprof readers drop a numeric label that is 0 and has none.
public enum PprofExporter {
    public static func render(_ profile: Profile, weight: ExportWeight = .wait, grouping: StackGrouping = .lock,
                              samples: SampleType = .wait) throws -> Data {
        try Gzip.compress(try message(for: profile, weight: weight, grouping: grouping, samples: samples).serializedBytes())
    }

    /// The wait time's sample type: Go's runtime/pprof calls it `delay` in its block and mutex profiles.
    static let delaySampleType = "delay"

    /// The one mapping every location belongs to: the kernel, already symbolized.
    static let kernelMappingID: UInt64 = 1

    static func message(for profile: Profile, weight: ExportWeight, grouping: StackGrouping,
                        samples sampleType: SampleType = .wait) throws -> Perftools_Profiles_Profile {
        var strings = StringTable()
        var message = Perftools_Profiles_Profile()
        func valueType(_ type: String, _ unit: String) -> Perftools_Profiles_ValueType {
            .with { $0.type = strings.index(type); $0.unit = strings.index(unit) }
        }
        // Lock waits are contentions/count and delay/nanoseconds, as Go's block and mutex profiles name them;
        // on-CPU samples (`--samples cpu|spin`, a view from SampleProfiles) are samples/count and cpu or spin/nanoseconds.
        let names = sampleType == .wait ? (count: "contentions", time: delaySampleType) : sampleType.valueNames
        message.sampleType = [valueType(names.count, "count"), valueType(names.time, "nanoseconds")]
        message.periodType = valueType(names.count, "count")
        message.period = 1
        message.defaultSampleType = strings.index(weight == .wait ? names.time : names.count)
        message.timeNanos = startNanoseconds(profile.startedAt)
        message.durationNanos = Int64(clamping: profile.durationNs)
        message.comment = [strings.index("lockscope profile of \(profile.hostname), kernel \(profile.kernel)")]
        message.mapping = [.with { $0.id = kernelMappingID; $0.filename = strings.index("[kernel.kallsyms]"); $0.hasFunctions_p = true }]

        var locationIDs: [String: UInt64] = [:]
        var functions: [Perftools_Profiles_Function] = []
        var locations: [Perftools_Profiles_Location] = []
        func locationID(_ name: String) -> UInt64 {
            if let id = locationIDs[name] { return id }
            let id = UInt64(locationIDs.count + 1)
            let nameIndex = strings.index(name)
            locationIDs[name] = id
            functions.append(.with { $0.id = id; $0.name = nameIndex; $0.systemName = nameIndex })
            locations.append(.with { $0.id = id; $0.mappingID = kernelMappingID; $0.line = [.with { $0.functionID = id }] })
            return id
        }
        func label(_ key: String, _ text: String) -> Perftools_Profiles_Label {
            .with { $0.key = strings.index(key); $0.str = strings.index(text) }
        }
        func label(_ key: String, number: Int, unit: String) -> Perftools_Profiles_Label {
            .with { $0.key = strings.index(key); $0.num = Int64(number); $0.numUnit = strings.index(unit) }
        }
        let containers = Dictionary(profile.containers.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let lockSamples = try LockSamples(profile, grouping: grouping)
        try lockSamples.checkSampleFrames()
        var leafFirstByPath: [LockSamples.PathKey: [UInt64]] = [:]
        for sample in lockSamples.samples {
            let lock = profile.locks[sample.lock]
            var labels = [label("lock", lock.name), label("lock_kind", lock.kind.rawValue)]
            if let id = sample.place.container {
                labels.append(label("container", id))
                if let container = containers[id] {
                    if !container.runtime.isEmpty { labels.append(label("runtime", container.runtime)) }
                    if let pod = container.pod, !pod.isEmpty { labels.append(label("pod", pod)) }
                    if let podUid = container.podUid, !podUid.isEmpty { labels.append(label("pod_uid", podUid)) }
                }
            }
            if let cpu = sample.place.cpu { labels.append(label("cpu", number: cpu, unit: "cpu")) }
            if let socket = lockSamples.socket(of: sample.place) { labels.append(label("socket", number: socket, unit: "socket")) }
            let path = lockSamples.pathKey(of: sample)
            let leafFirst = leafFirstByPath[path] ?? lockSamples.frames(of: path).reversed().map(locationID)
            leafFirstByPath[path] = leafFirst
            message.sample.append(.with {
                $0.locationID = leafFirst
                $0.value = [Int64(clamping: sample.amount.contentions), Int64(clamping: sample.amount.waitNs)]
                $0.label = labels
            })
        }
        message.function = functions
        message.location = locations
        message.stringTable = strings.strings
        return message
    }

    /// The recording's start (RFC 3339, any number of fraction digits) in nanoseconds since the epoch;
    /// 0 when it cannot be read.
    static func startNanoseconds(_ startedAt: String) -> Int64 {
        var whole = startedAt
        var fractionNs: Int64 = 0
        if let dot = startedAt.firstIndex(of: ".") {
            let digits = startedAt[startedAt.index(after: dot)...].prefix(while: \.isASCII).prefix(while: \.isNumber)
            fractionNs = Int64(digits.prefix(9).padding(toLength: 9, withPad: "0", startingAt: 0)) ?? 0
            whole.removeSubrange(dot..<digits.endIndex)
        }
        // Past 2262 nanoseconds since 1970 no longer fit 64 bits: such a time is unknown too.
        guard let date = ISO8601DateFormatter().date(from: whole), let seconds = Int64(exactly: date.timeIntervalSince1970.rounded(.down)),
              case let (nanoseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000), !overflow,
              case let (total, carry) = nanoseconds.addingReportingOverflow(fractionNs), !carry else { return 0 }
        return total
    }

    /// pprof's string table: every string once, `""` first.
    private struct StringTable {
        private(set) var strings = [""]
        private var indices = ["": Int64(0)]

        mutating func index(_ string: String) -> Int64 {
            if let index = indices[string] { return index }
            let index = Int64(strings.count)
            strings.append(string)
            indices[string] = index
            return index
        }
    }
}
