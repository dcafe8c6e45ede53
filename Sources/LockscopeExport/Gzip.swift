import CZlib
import Foundation
import LockscopeCore

/// gzip compression through the system zlib, as pprof files need.
enum Gzip {
    /// A gzip member holding `data`: no file name and a zero timestamp, so equal inputs give equal outputs.
    static func compress(_ data: Data) throws -> Data {
        var stream = z_stream()
        let windowBitsWithGzipHeader: Int32 = 15 + 16
        var status = deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, windowBitsWithGzipHeader, 8,
                                   Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw UserError("cannot start gzip compression (zlib error \(status))") }
        defer { deflateEnd(&stream) }
        var input = [UInt8](data)
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))))
        let outputCount = output.count
        status = input.withUnsafeMutableBufferPointer { inputBuffer in
            output.withUnsafeMutableBufferPointer { outputBuffer in
                stream.next_in = inputBuffer.baseAddress
                stream.avail_in = uInt(inputBuffer.count)
                stream.next_out = outputBuffer.baseAddress
                stream.avail_out = uInt(outputCount)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else { throw UserError("gzip compression failed (zlib error \(status))") }
        return Data(output.prefix(Int(stream.total_out)))
    }
}
