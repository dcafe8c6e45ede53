import Foundation

extension Profile {
    /// The JSON encoder every writer of profiles uses: snake_case keys, stable key order.
    public static func makeEncoder(pretty: Bool = true) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            : [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    /// Decodes a profile, refusing anything that is not a `lockscope.profile/1` document with one line
    /// that names what is wrong and where (`p.json: locks[3].contentions is -1: ...`). `source` names
    /// the input in error messages.
    public static func decode(_ data: Data, source: String = "profile") throws -> Profile {
        let source = TerminalText.escaped(source)
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            throw UserError("\(source) is empty: record a profile with `lockscope record -o \(source)`")
        }
        struct Header: Decodable { var schema: String? }
        do {
            let profile = try ProfileJSON.withRoot(of: data) { root in
                let header: Header
                do {
                    header = try Header(from: root)
                } catch let problem as JSONProblem {
                    throw UserError(headerMessage(problem, source: source))
                }
                try checkSchema(header.schema, source: source)
                return try Profile(from: root)
            }
            try profile.checkHistograms(source: source)
            return profile
        } catch let problem as JSONProblem {
            throw UserError(message(problem, source: source))
        } catch let error as DecodingError {
            throw UserError(message(error, source: source))
        }
    }

    private static func checkSchema(_ schema: String?, source: String) throws {
        guard let schema else {
            throw UserError("\(source) is not a lockscope profile (no \"schema\" field)")
        }
        let shown = TerminalText.escaped(schema)
        guard schema.hasPrefix("lockscope.profile/") else {
            throw UserError("\(source) is not a lockscope profile (schema \"\(shown)\")")
        }
        let major = schema.dropFirst("lockscope.profile/".count).split(separator: ".").first.map(String.init) ?? ""
        guard major == "1" else {
            throw UserError("\(source) uses schema \(shown); this lockscope reads \(currentSchema): use a lockscope that matches the profile")
        }
    }

    /// Reads and decodes a profile file: a regular file of at most `InputFile`'s limit.
    public static func load(path: String) throws -> Profile {
        let data = try InputFile.read(path, kind: "profile", hint: "give a profile written by `lockscope record -o FILE`")
        return try decode(data, source: path)
    }

    public func encoded(pretty: Bool = true) throws -> Data {
        var data = try Profile.makeEncoder(pretty: pretty).encode(self)
        data.append(0x0a)
        return data
    }

    /// Writes the profile atomically (a reader sees the old file or the complete new one, never half),
    /// as one line of JSON, exactly `encoded(pretty: false)`. Locks are encoded one at a time:
    /// encoding thousands in one piece held several times the file's size in memory.
    public func write(to path: String, mode: mode_t = AtomicFile.defaultMode) throws {
        var shell = self
        shell.locks = []
        try AtomicFile.write(to: path, mode: mode) { append in
            try Profile.encode(shell, with: locks, inPlaceOf: "locks", encoder: Profile.makeEncoder(pretty: false), append)
            try append(Data("\n".utf8))
        }
    }

    /// `shell` encoded with `elements` in place of its empty array field `key` (as the encoder's key strategy
    /// writes it), each element encoded on its own and passed to `append` in turn: a large array encoded in
    /// one piece holds several times its size in memory. The encoder must not pretty-print.
    public static func encode<Shell: Encodable, Element: Encodable>(
        _ shell: Shell, with elements: [Element], inPlaceOf key: String, encoder: JSONEncoder,
        _ append: (Data) throws -> Void
    ) throws {
        let head = try encoder.encode(shell)
        // Strings escape their quotes, so this only matches the key itself.
        guard let empty = head.range(of: Data("\"\(key)\":[]".utf8)) else {
            throw UserError("cannot encode \(key): no empty \(key) field; this is a bug, please report it")
        }
        try append(head[..<empty.lowerBound] + Data("\"\(key)\":[".utf8))
        for (index, element) in elements.enumerated() {
            if index > 0 { try append(Data(",".utf8)) }
            try append(try encoder.encode(element))
        }
        try append(Data("]".utf8) + head[empty.upperBound...])
    }

    /// One line for what is wrong with a document whose top level or `schema` is not a profile's.
    private static func headerMessage(_ problem: JSONProblem, source: String) -> String {
        switch problem.kind {
        case .wrongType(let found, _) where problem.path.isEmpty:
            return "\(source): the top level is \(found), not a lockscope profile object"
        case .wrongType(let found, _):
            return "\(source): schema is \(found), not a string like \"\(currentSchema)\": this is not a lockscope profile"
        default:
            return message(problem, source: source)
        }
    }

    /// One line for a JSON problem, naming the JSON path where it is.
    static func message(_ problem: JSONProblem, source: String) -> String {
        let path = JSONPathComponent.render(problem.path)
        switch problem.kind {
        case .syntax(let what, let offset):
            return "\(source) is not valid JSON (truncated or corrupted?): \(what) at byte \(offset)"
        case .wrongType(let found, let expected):
            return "\(source): \(path.isEmpty ? "the top level" : path) is \(found), not \(expected)"
        case .badNumber(let text, let requirement):
            return "\(source): \(path) is \(text): \(requirement)"
        case .missingField(let field):
            return "\(source) is not a valid \(currentSchema) profile: missing field \"\(field)\"\(path.isEmpty ? "" : " at \(path)")"
        }
    }

    /// One line for an error a profile type threw itself (an unknown lock kind, a CPU id out of range).
    private static func message(_ error: DecodingError, source: String) -> String {
        let context: DecodingError.Context
        switch error {
        case .dataCorrupted(let c), .keyNotFound(_, let c), .typeMismatch(_, let c), .valueNotFound(_, let c): context = c
        @unknown default: return "\(source) is not a valid \(currentSchema) profile: \(error)"
        }
        let path = JSONPathComponent.render(JSONPathComponent.from(context.codingPath))
        return "\(source) is not a valid \(currentSchema) profile: \(path.isEmpty ? "" : "\(path): ")"
            + TerminalText.escaped(context.debugDescription)
    }

    /// Every histogram bucket must have `lower_ns <= upper_ns`: percentiles interpolate between them.
    private func checkHistograms(source: String) throws {
        func check(_ stats: WaitStats, _ path: @autoclosure () -> String) throws {
            guard let index = stats.histogram.firstIndex(where: { $0.lowerNs > $0.upperNs }) else { return }
            let bucket = stats.histogram[index]
            throw UserError("\(source): \(path())histogram[\(index)] has lower_ns \(bucket.lowerNs) above upper_ns \(bucket.upperNs): "
                            + "a bucket's lower bound cannot be above its upper bound")
        }
        for (l, lock) in locks.enumerated() {
            let at = "locks[\(l)]."
            try check(lock.stats, at)
            try check(lock.read, at + "read.")
            try check(lock.write, at + "write.")
            for (name, slices) in [("by_cpu", lock.byCpu), ("by_socket", lock.bySocket), ("by_node", lock.byNode),
                                   ("by_llc", lock.byLlc), ("by_container", lock.byContainer), ("by_process", lock.byProcess),
                                   ("by_host", lock.byHost ?? [])] {
                for (index, slice) in slices.enumerated() { try check(slice.stats, at + "\(name)[\(index)].") }
            }
            for (index, handoff) in lock.handoffs.enumerated() { try check(handoff.stats, at + "handoffs[\(index)].") }
        }
        for (index, call) in (mounts?.bySyscall ?? []).enumerated() { try check(call.stats, "mounts.by_syscall[\(index)].") }
        for (c, container) in (mounts?.byContainer ?? []).enumerated() {
            for (index, call) in container.bySyscall.enumerated() {
                try check(call.stats, "mounts.by_container[\(c)].by_syscall[\(index)].")
            }
        }
    }
}
