import Foundation

/// Reading a file a command was given (a profile, a budget) without hanging or running out of memory:
/// only regular files, opened without blocking (a FIFO with no writer would wait forever), and no
/// larger than a limit (`/dev/zero` never ends).
public enum InputFile {
    /// The largest input read unless `LOCKSCOPE_MAX_INPUT_SIZE` says otherwise: 1 GiB.
    public static let defaultMaxSize = 1 << 30
    /// The environment variable that raises (or lowers) the limit: `4G`, `512M`, a number of bytes.
    public static let maxSizeVariable = "LOCKSCOPE_MAX_INPUT_SIZE"

    /// The whole file at `path`. Messages say `cannot read <label> <path>`, call it a `kind` (`profile`,
    /// `budget`) when it is too large, and give `hint` for something that is not a regular file.
    public static func read(_ path: String, label: String = "", kind: String, hint: String,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Data {
        let maxSize = try maxSize(environment)
        let shown = (label.isEmpty ? "" : label + " ") + TerminalText.escaped(path)
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw openFailure(shown, errno: errno) }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw UserError("cannot read \(shown): \(String(cString: strerror(errno)))")
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            throw UserError("cannot read \(shown): it is \(fileType(status.st_mode)), not a regular file; \(hint)")
        }
        guard status.st_size <= maxSize else {
            throw tooLarge(shown, kind: kind, size: "\(status.st_size) bytes", maxSize: maxSize)
        }
        // Read what fstat said, and one byte more to notice a file that grew past the limit meanwhile.
        var data = Data(count: Int(status.st_size) + 1)
        var filled = 0
        while true {
            if filled == data.count {
                guard data.count <= maxSize else {
                    throw tooLarge(shown, kind: kind, size: "over \(maxSize) bytes (it grew while read)", maxSize: maxSize)
                }
                data.count = min(maxSize + 1, data.count * 2)
            }
            let count = data.withUnsafeMutableBytes { buffer in
                Glibc.read(descriptor, buffer.baseAddress! + filled, buffer.count - filled)
            }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw UserError("cannot read \(shown): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            filled += count
        }
        data.count = filled
        return data
    }

    /// The limit from `LOCKSCOPE_MAX_INPUT_SIZE`, or the default.
    static func maxSize(_ environment: [String: String]) throws -> Int {
        guard let text = environment[maxSizeVariable] else { return defaultMaxSize }
        guard let size = Units.parseSize(text), size > 0 else {
            throw UserError("\(maxSizeVariable)=\(TerminalText.escaped(text)) is not a size: write it like 4G, 512M or 1000000 (bytes)")
        }
        return size
    }

    private static func tooLarge(_ path: String, kind: String, size: String, maxSize: Int) -> UserError {
        UserError("cannot read \(path): it is \(size), more than the \(bytes(maxSize)) a \(kind) may have; if it is one, "
                  + "raise the limit with \(maxSizeVariable) (e.g. \(maxSizeVariable)=\(bytes(min(maxSize, Int.max / 4) * 4, compact: true))): "
                  + "reading a profile takes about twice its size in memory (docs/profile-format.md)")
    }

    private static func openFailure(_ shown: String, errno code: Int32) -> UserError {
        // Arguments reach lockscope as Strings: bytes that are not UTF-8 became U+FFFD, so such a name cannot be opened.
        if code == ENOENT && shown.unicodeScalars.contains("\u{FFFD}") {
            return UserError("cannot read \(shown): the file name is not valid UTF-8 (shown with \u{FFFD}), and lockscope can only open names that are; rename the file or give a symbolic link with a UTF-8 name")
        }
        let advice = switch code {
        case EACCES, EPERM: "check its permissions"
        default: "check the path"
        }
        return UserError("cannot read \(shown): \(String(cString: strerror(code))); \(advice)")
    }

    /// `1 GiB`, `512 MiB`, `100000 bytes`; compact, as `LOCKSCOPE_MAX_INPUT_SIZE` takes them: `1G`, `512M`, `100000`.
    static func bytes(_ count: Int, compact: Bool = false) -> String {
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] where count >= 1 << shift && count % (1 << shift) == 0 {
            return "\(count >> shift)" + (compact ? unit : " \(unit)iB")
        }
        return compact ? "\(count)" : "\(count) bytes"
    }

    private static func fileType(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        default: "not a plain file"
        }
    }
}
