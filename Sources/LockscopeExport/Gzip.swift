import CZlib
import Foundation
import LockscopeCore

/// gzip compression through the system zlib, as pprof files need.
enum Gzip {
    /// zlib counts bytes in 32 bits: output is taken in pieces of this size, and input fed in pieces of `inputPiece`.
    static let outputPiece = 1 << 20

    /// A gzip member holding `data`: no file name and a zero timestamp, so equal inputs give equal outputs.
    static func compress(_ data: Data, inputPiece: Int = 1 << 30) throws -> Data {
        var stream = z_stream()
        let windowBitsWithGzipHeader: Int32 = 15 + 16
        var status = deflateInit2_(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, windowBitsWithGzipHeader, 8,
                                   Z_DEFAULT_STRATEGY, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw UserError("cannot start gzip compression (zlib error \(status))") }
        defer { deflateEnd(&stream) }
        var output = Data()
        var piece = [UInt8](repeating: 0, count: outputPiece)
        try data.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            var offset = 0
            repeat {
                let count = min(input.count - offset, inputPiece)
                stream.next_in = input.baseAddress.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self) + offset) }
                stream.avail_in = uInt(count)
                offset += count
                let flush = offset == input.count ? Z_FINISH : Z_NO_FLUSH
                // Until zlib has taken all of this piece (and, at the end, written the trailer).
                repeat {
                    status = piece.withUnsafeMutableBufferPointer { buffer in
                        stream.next_out = buffer.baseAddress
                        stream.avail_out = uInt(buffer.count)
                        return deflate(&stream, flush)
                    }
                    guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                        throw UserError("gzip compression failed (zlib error \(status))")
                    }
                    output.append(contentsOf: piece[..<(piece.count - Int(stream.avail_out))])
                } while stream.avail_out == 0 || (flush == Z_FINISH && status != Z_STREAM_END)
            } while offset < input.count
        }
        guard status == Z_STREAM_END else { throw UserError("gzip compression failed (zlib error \(status))") }
        return output
    }
}
