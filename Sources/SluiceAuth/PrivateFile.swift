import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file only its owner may read (mode 0600 from the moment it exists):
/// signing keys, and config files that hold tokens.
public enum PrivateFile {
    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes `data` to `path`, replacing it atomically: a new file made
    /// 0600 beside it, then renamed over it. With `exclusive`, fails if
    /// `path` exists.
    public static func write(_ data: Data, to path: String, exclusive: Bool = false) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        if exclusive && FileManager.default.fileExists(atPath: path) {
            throw WriteError(description: "\(path) exists already")
        }
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let descriptor = open(temporary, O_CREAT | O_EXCL | O_WRONLY, 0o600)
        guard descriptor >= 0 else {
            throw WriteError(description: "\(temporary): cannot be made (\(String(cString: strerror(errno))))")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        do {
            try handle.write(contentsOf: data)
            try handle.close()
        } catch {
            unlink(temporary)
            throw WriteError(description: "\(temporary): cannot be written (\(error))")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw WriteError(description: "\(path): cannot be written (\(String(cString: strerror(errno))))")
        }
    }
}
