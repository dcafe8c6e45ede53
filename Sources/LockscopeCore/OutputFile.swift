import Foundation
import Glibc

/// Writes files so that readers never see a half-written one, and so that nobody else can make the
/// write land anywhere but the destination.
///
/// The data goes into an unnamed file (`O_TMPFILE`) in the destination's directory, is flushed, and
/// only then gets a name: a random one that must not exist yet (`linkat` never follows or replaces),
/// which is renamed onto the destination. A symlink planted at any name, predictable or not, is never
/// opened or written through; a destination that is a symlink is replaced, not followed. Until the
/// `linkat`, a process killed even by SIGKILL leaves nothing behind; the `linkat`-to-`rename` window
/// runs with every catchable signal blocked. On filesystems without `O_TMPFILE` the temporary file
/// is a random name opened with `O_CREAT | O_EXCL | O_NOFOLLOW` and removed if the write fails.
///
/// Files are created with mode 0600 (profiles hold kernel addresses, host and container names)
/// unless the caller asks for another, which is set exactly (the umask does not apply).
public enum AtomicFile {
    /// The mode of files written when the caller does not choose one.
    public static let defaultMode: mode_t = 0o600

    public static func write(_ data: Data, to path: String, mode: mode_t = defaultMode) throws {
        try write(to: path, mode: mode) { write in try write(data) }
    }

    /// The same, for a file written in pieces: `body` gets a function that appends bytes to the
    /// temporary file. If `body` throws, the destination is left as it was and nothing is left behind.
    public static func write(to path: String, mode: mode_t = defaultMode,
                             _ body: ((Data) throws -> Void) throws -> Void) throws {
        func failure(_ code: Int32) -> UserError {
            let advice = switch code {
            case ENOSPC, EDQUOT: "free some space or choose another path"
            case EROFS: "the filesystem is read-only; choose another path"
            default: "choose a writable path"
            }
            return UserError("cannot write \(path): \(String(cString: strerror(code))); \(advice)")
        }
        guard !path.isEmpty else { throw UserError("cannot write an empty path: give a file name") }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try refuseForeignSymlinks(in: directory, writing: path)
        let file = try TemporaryFile(directory: directory, mode: mode, failure: failure)
        do {
            try body { data in
                let code = file.append(data)
                if code != 0 { throw failure(code) }
            }
            try file.commit(to: path, failure: failure)
        } catch {
            file.discard()
            throw error
        }
    }

    /// Checks, before any work is done, that `path` can be written later (directory exists and is writable).
    public static func checkWritable(_ path: String) throws {
        guard !path.isEmpty else { throw UserError("cannot write an empty path: give a file name") }
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

    /// Refuses a destination directory reached through a symlink that another user owns (root's
    /// links are trusted): whoever owns such a link chooses where the file lands.
    static func refuseForeignSymlinks(in directory: String, writing path: String) throws {
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        var prefix = ""
        for component in absolute.split(separator: "/") {
            prefix += "/" + component
            var info = stat()
            guard lstat(prefix, &info) == 0, info.st_mode & S_IFMT == S_IFLNK else { continue }
            if info.st_uid != 0, info.st_uid != geteuid() {
                throw UserError("cannot write \(path): \(prefix) is a symlink owned by user \(info.st_uid), who could redirect the file; give the real directory")
            }
        }
    }

    /// Parses a `--mode` value: octal permission bits, like 0644 or 600.
    public static func parseMode(_ text: String) -> mode_t? {
        guard !text.isEmpty, text.count <= 4, let bits = mode_t(text, radix: 8), bits <= 0o777 else { return nil }
        return bits
    }
}

/// A file being written: unnamed (`O_TMPFILE`) where the filesystem allows, otherwise under a random
/// name created exclusively.
private final class TemporaryFile {
    private let fd: Int32
    private let directory: String
    /// The name it was created under, when it had to have one from the start.
    private var createdName: String?
    private var discarded = false
    /// Linux's O_TMPFILE (__O_TMPFILE | O_DIRECTORY), which Glibc's Swift overlay does not export.
    static let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY

    init(directory: String, mode: mode_t, failure: (Int32) -> UserError) throws {
        self.directory = directory
        var fd = open(directory, TemporaryFile.oTmpfile | O_WRONLY | O_CLOEXEC, mode)
        if fd < 0, errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL {
            // No O_TMPFILE here (some network and FUSE filesystems): a fresh random name instead.
            for _ in 0..<16 where fd < 0 {
                let name = TemporaryFile.randomName(in: directory)
                fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
                if fd >= 0 { createdName = name } else if errno != EEXIST { break }
            }
        }
        guard fd >= 0 else { throw failure(errno) }
        self.fd = fd
        // Exactly the mode asked for: O_TMPFILE and open apply the umask.
        guard fchmod(fd, mode) == 0 else {
            let code = errno
            discard()
            throw failure(code)
        }
    }

    /// Appends `data`; returns 0 or the errno of the failed write.
    func append(_ data: Data) -> Int32 {
        data.withUnsafeBytes { buffer -> Int32 in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 { if errno == EINTR { continue }; return errno }
                offset += n
            }
            return 0
        }
    }

    /// Flushes the file and gives it the destination's name, replacing what was there.
    func commit(to path: String, failure: (Int32) -> UserError) throws {
        guard fsync(fd) == 0 else { throw failure(errno) }
        // No catchable signal between giving the file a name and renaming it: the name never stays.
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let name: String
        if let createdName {
            name = createdName
        } else {
            var linked: String?
            for _ in 0..<16 where linked == nil {
                let candidate = TemporaryFile.randomName(in: directory)
                if linkat(AT_FDCWD, "/proc/self/fd/\(fd)", AT_FDCWD, candidate, AT_SYMLINK_FOLLOW) == 0 {
                    linked = candidate
                } else if errno != EEXIST {
                    throw failure(errno)
                }
            }
            guard let linked else { throw failure(EEXIST) }
            createdName = linked
            name = linked
        }
        guard rename(name, path) == 0 else {
            let code = errno
            unlink(name)
            createdName = nil
            throw failure(code)
        }
        createdName = nil
        close(fd)
        discarded = true
    }

    /// Closes the file and removes any name it has (the unnamed file goes with its descriptor).
    func discard() {
        guard !discarded else { return }
        discarded = true
        if let createdName { unlink(createdName) }
        close(fd)
    }

    deinit { discard() }

    /// `DIR/.lockscope-<16 random hex digits>.tmp`: unpredictable, so nobody can plant a link there first.
    private static func randomName(in directory: String) -> String {
        var generator = SystemRandomNumberGenerator()
        return "\(directory)/.lockscope-\(String(generator.next() as UInt64, radix: 16)).tmp"
    }
}
