import Foundation

/// Writes files so that readers never see a half-written one: write a temporary file next to the
/// destination, flush it, then rename it into place.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { write in try write(data) }
    }

    /// The same, for a file written in pieces: `body` gets a function that appends bytes to the
    /// temporary file. If `body` throws, the destination is left as it was.
    public static func write(to path: String, _ body: ((Data) throws -> Void) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = "\(directory)/.\(url.lastPathComponent).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw UserError("cannot write \(path): \(String(cString: strerror(errno))); choose a writable path") }
        var failure: Int32 = 0
        func append(_ data: Data) throws {
            data.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n < 0 { if errno == EINTR { continue }; failure = errno; return }
                    offset += n
                }
            }
            if failure != 0 {
                throw UserError("cannot write \(path): \(String(cString: strerror(failure))); choose a writable path")
            }
        }
        do {
            try body(append)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        if fsync(fd) != 0 { failure = errno }
        close(fd)
        if failure == 0 && rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw UserError("cannot write \(path): \(String(cString: strerror(failure))); choose a writable path")
        }
    }

    /// Checks, before any work is done, that `path` can be written later (directory exists and is writable).
    public static func checkWritable(_ path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw UserError("cannot write \(path): it is a directory; give a file name")
        }
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw UserError("cannot write \(path): directory \(directory) does not exist; create it or choose another path")
        }
        guard access(directory, W_OK) == 0 else {
            throw UserError("cannot write \(path): directory \(directory) is not writable; choose another path")
        }
    }
}
