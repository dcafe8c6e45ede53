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

    /// Decodes a profile, refusing anything that is not a `lockscope.profile/1` document.
    /// `source` names the input in error messages.
    public static func decode(_ data: Data, source: String = "profile") throws -> Profile {
        if data.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            throw UserError("\(source) is empty: record a profile with `lockscope record -o \(source)`")
        }
        struct Header: Decodable { var schema: String? }
        let header: Header
        do {
            header = try makeDecoder().decode(Header.self, from: data)
        } catch {
            throw UserError("\(source) is not valid JSON (truncated or corrupted?): \(describe(error))")
        }
        guard let schema = header.schema else {
            throw UserError("\(source) is not a lockscope profile (no \"schema\" field)")
        }
        guard schema.hasPrefix("lockscope.profile/") else {
            throw UserError("\(source) is not a lockscope profile (schema \"\(schema)\")")
        }
        let major = schema.dropFirst("lockscope.profile/".count).split(separator: ".").first.map(String.init) ?? ""
        guard major == "1" else {
            throw UserError("\(source) uses schema \(schema); this lockscope reads \(currentSchema): use a lockscope that matches the profile")
        }
        do {
            return try makeDecoder().decode(Profile.self, from: data)
        } catch {
            throw UserError("\(source) is not a valid \(currentSchema) profile: \(describe(error))")
        }
    }

    /// Reads and decodes a profile file.
    public static func load(path: String) throws -> Profile {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw UserError("cannot read \(path): \(String(cString: strerror(errno))); check the path")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()  // nil means an empty file
        } catch {
            throw UserError("cannot read \(path): \(String(cString: strerror(errno))); check the path")
        }
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
        let encoder = Profile.makeEncoder(pretty: false)
        var shell = self
        shell.locks = []
        let head = try encoder.encode(shell)
        // Keys are sorted and strings escape their quotes, so this only matches the `locks` key.
        guard let empty = head.range(of: Data(#""locks":[]"#.utf8)) else {
            throw UserError("cannot encode the profile for \(path): no locks field; this is a bug, please report it")
        }
        try AtomicFile.write(to: path, mode: mode) { append in
            try append(head[..<empty.lowerBound] + Data(#""locks":["#.utf8))
            for (index, lock) in locks.enumerated() {
                if index > 0 { try append(Data(",".utf8)) }
                try append(try encoder.encode(lock))
            }
            try append(Data("]".utf8) + head[empty.upperBound...] + Data("\n".utf8))
        }
    }

    /// One line for a decoding error, naming the JSON path where it went wrong.
    private static func describe(_ error: Error) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return keys.isEmpty ? "" : " at \(keys)"
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?: return "missing field \"\(key.stringValue)\"\(path(context))"
        case .typeMismatch(_, let context)?: return "wrong type\(path(context))"
        case .valueNotFound(_, let context)?: return "missing value\(path(context))"
        case .dataCorrupted(let context)?:
            let underlying = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return (underlying ?? context.debugDescription) + path(context)
        default: return "\(error)"
        }
    }
}
