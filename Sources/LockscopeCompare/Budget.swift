import Foundation
import LockscopeCore

/// Absolute limits a profile must stay within, without a baseline (`lockscope check --budget FILE`).
///
/// ```json
/// {"schema": "lockscope.budget/1",
///  "locks": {"namespace_sem": {"p99_wait_ns": 2000000}, "*": {"max_wait_ns": 50000000}},
///  "mounts": {"ops_per_container": 10}}
/// ```
/// Every limit is a maximum (a value equal to it passes). The `*` entry applies to every lock, metric
/// by metric, where the lock's own entry does not set that metric. The format is in docs/budgets.md.
public struct Budget: Sendable, Equatable {
    /// The schema this build reads.
    public static let currentSchema = "lockscope.budget/1"
    /// The lock entry that applies to every lock.
    public static let anyLock = "*"
    /// The keys of `mounts`.
    public static let opsPerContainerKey = "ops_per_container"

    /// Limits by lock name (or `*`), in each metric's unit: ns, ns per second, contentions per second.
    public var locks: [String: [Metric: Double]]
    /// The most mount-family syscalls any one container may make.
    public var mountOpsPerContainer: Double?

    public init(locks: [String: [Metric: Double]] = [:], mountOpsPerContainer: Double? = nil) {
        self.locks = locks
        self.mountOpsPerContainer = mountOpsPerContainer
    }

    /// The limits that apply to the lock `name`: its own, completed by the `*` entry's.
    public func limits(forLock label: String) -> [Metric: Double] {
        var limits = locks[Budget.anyLock] ?? [:]
        // A lock named without its kind covers each kind of that name (`name (mutex)`); the label wins.
        for (key, own) in locks where key != Budget.anyLock && key != label && LockLabels.label(label, isNamed: key) {
            limits.merge(own) { _, new in new }
        }
        return limits.merging(locks[label] ?? [:]) { _, own in own }
    }

    /// Reads and decodes a budget file; every problem is one `UserError` line naming the file.
    public static func load(path: String) throws -> Budget {
        let data = try InputFile.read(path, label: "budget", kind: "budget", hint: "give a budget file (docs/budgets.md)")
        return try decode(data, source: TerminalText.escaped(path))
    }

    /// Decodes a budget, refusing unknown keys and metrics with the valid ones listed.
    public static func decode(_ data: Data, source: String) throws -> Budget {
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            throw UserError("\(source) is empty: write a budget such as {\"schema\": \"\(currentSchema)\", \"locks\": {\"namespace_sem\": {\"p99_wait_ns\": 2000000}}} (docs/budgets.md)")
        }
        let root: JSONValue
        do {
            root = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw UserError("\(source) is not valid JSON: \(describe(error))")
        }
        guard case .object(let fields) = root else {
            throw UserError("\(source) is not a lockscope budget: expected a JSON object")
        }
        guard case .string(let schema)? = fields["schema"] else {
            throw UserError("\(source) is not a lockscope budget (no \"schema\" string): start it with \"schema\": \"\(currentSchema)\"")
        }
        guard schema.hasPrefix("lockscope.budget/") else {
            throw UserError("\(source) is not a lockscope budget (schema \"\(schema)\"): expected \"\(currentSchema)\"")
        }
        guard schema.dropFirst("lockscope.budget/".count).split(separator: ".").first == "1" else {
            throw UserError("\(source) uses schema \(schema); this lockscope reads \(currentSchema): use a lockscope that matches the budget")
        }
        try checkKeys(fields, valid: ["schema", "locks", "mounts"], at: nil, source: source)
        var budget = Budget()
        if let locks = fields["locks"] {
            for (name, entry) in try object(locks, at: "locks", source: source).sorted(by: { $0.key < $1.key }) {
                let path = "locks.\(name)"
                let limits = try object(entry, at: path, source: source)
                try checkKeys(limits, valid: Metric.allCases.map(\.budgetKey), at: path, source: source)
                guard !limits.isEmpty else {
                    throw UserError("\(source): \(path) sets no limit; give at least one of \(Metric.allCases.map(\.budgetKey).joined(separator: ", "))")
                }
                budget.locks[name] = try Dictionary(uniqueKeysWithValues: Metric.allCases.compactMap { metric in
                    try limits[metric.budgetKey].map { (metric, try limit($0, at: "\(path).\(metric.budgetKey)", source: source)) }
                })
            }
        }
        if let mounts = fields["mounts"] {
            let limits = try object(mounts, at: "mounts", source: source)
            try checkKeys(limits, valid: [opsPerContainerKey], at: "mounts", source: source)
            budget.mountOpsPerContainer = try limits[opsPerContainerKey].map {
                try limit($0, at: "mounts.\(opsPerContainerKey)", source: source)
            }
        }
        guard !budget.locks.isEmpty || budget.mountOpsPerContainer != nil else {
            throw UserError("\(source) sets no limits: add \"locks\" or \"mounts\" (docs/budgets.md)")
        }
        return budget
    }

    private static func checkKeys(_ fields: [String: JSONValue], valid: [String], at path: String?,
                                  source: String) throws {
        guard let unknown = fields.keys.sorted().first(where: { !valid.contains($0) }) else { return }
        let location = path.map { " in \($0)" } ?? ""
        throw UserError("\(source): unknown key \"\(unknown)\"\(location); valid keys: \(valid.joined(separator: ", "))")
    }

    private static func object(_ value: JSONValue, at path: String, source: String) throws -> [String: JSONValue] {
        guard case .object(let fields) = value else {
            throw UserError("\(source): \(path) must be an object, not \(value.summary)")
        }
        return fields
    }

    private static func limit(_ value: JSONValue, at path: String, source: String) throws -> Double {
        guard case .number(let number) = value, number >= 0 else {
            throw UserError("\(source): \(path) must be a number at least 0, not \(value.summary)")
        }
        return number
    }

    private static func describe(_ error: Error) -> String {
        guard case .dataCorrupted(let context)? = error as? DecodingError else { return "\(error)" }
        return (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            ?? context.debugDescription
    }
}

/// Any JSON value, so that a budget's keys and types can be checked one by one with precise errors.
private enum JSONValue: Decodable {
    case number(Double), string(String), bool(Bool), null
    case object([String: JSONValue]), array([JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// How error messages name the value: `-5`, `"2ms"`, `an object`.
    var summary: String {
        switch self {
        case .number(let number): number == number.rounded() ? String(format: "%.0f", number) : "\(number)"
        case .string(let string): "\"\(string)\""
        case .bool(let bool): "\(bool)"
        case .null: "null"
        case .object: "an object"
        case .array: "an array"
        }
    }
}
