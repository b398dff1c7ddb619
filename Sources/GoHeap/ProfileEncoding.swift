// The bytes of a heap profile file: protocol buffers written by hand, and
// the gzip wrapper pprof expects.
//
// Why by hand: the core library depends on nothing beyond the toolchain, and
// a profile needs only three wire types (varint, length-delimited, packed
// varints). Field numbers are those of pprof's profile.proto
// (github.com/google/pprof, proto/profile.proto); ProfileWriter.swift says
// which message each one belongs to.
//
// Why gzip: `go tool pprof` reads both, but every Go tool writes gzip, and so
// does this. The deflate stream comes from zlib when libz.so.1 can be loaded
// (dlopen, so no link dependency); without it the stream is made of stored
// (uncompressed) deflate blocks, which every gzip reader accepts. Either way
// the CRC-32 and length trailer are computed here.

import CShims

/// Appends protocol-buffer fields to a byte array.
struct ProtoWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// A varint field (wire type 0). Zero is the default and is left out.
    mutating func int(_ field: Int, _ v: Int64) {
        if v == 0 { return }
        varint(UInt64(field) << 3)
        varint(UInt64(bitPattern: v))
    }

    mutating func uint(_ field: Int, _ v: UInt64) { int(field, Int64(bitPattern: v)) }

    mutating func bool(_ field: Int, _ v: Bool) { int(field, v ? 1 : 0) }

    /// A length-delimited field (wire type 2).
    mutating func bytesField(_ field: Int, _ b: [UInt8]) {
        varint(UInt64(field) << 3 | 2)
        varint(UInt64(b.count))
        bytes.append(contentsOf: b)
    }

    mutating func string(_ field: Int, _ s: String) { bytesField(field, Array(s.utf8)) }

    /// A nested message.
    mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var w = ProtoWriter()
        build(&w)
        bytesField(field, w.bytes)
    }

    /// Repeated integers, packed (one length-delimited field of varints).
    mutating func packed(_ field: Int, _ values: [UInt64]) {
        if values.isEmpty { return }
        var w = ProtoWriter()
        for v in values { w.varint(v) }
        bytesField(field, w.bytes)
    }
}

enum Gzip {
    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// CRC-32 (ISO-HDLC, the one gzip uses).
    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in data { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }

    /// A deflate stream of stored blocks (RFC 1951, BTYPE 00).
    static func storedDeflate(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + data.count / 65535 * 5 + 5)
        var i = 0
        repeat {
            let n = min(65535, data.count - i)
            let last = i + n == data.count
            out.append(last ? 1 : 0)
            out.append(UInt8(n & 0xFF)); out.append(UInt8(n >> 8))
            out.append(UInt8(~n & 0xFF)); out.append(UInt8((~n >> 8) & 0xFF))
            out.append(contentsOf: data[i..<(i + n)])
            i += n
        } while i < data.count
        return out
    }

    /// A gzip file (RFC 1952) holding `data`; `compress` false forces stored blocks.
    static func wrap(_ data: [UInt8], compress: Bool = true) -> [UInt8] {
        var body: [UInt8]?
        if compress {
            let cap = data.count + data.count / 1000 + 64
            var out = [UInt8](repeating: 0, count: cap)
            let n = data.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    goheap_zlib_deflate_raw(src.baseAddress, src.count, dst.baseAddress, dst.count)
                }
            }
            if n >= 0 { body = Array(out[0..<n]) }
        }
        // Header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
        var g: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 255]
        g.append(contentsOf: body ?? storedDeflate(data))
        let crc = crc32(data)
        let size = UInt32(truncatingIfNeeded: data.count)
        for k in 0..<4 { g.append(UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k)))) }
        for k in 0..<4 { g.append(UInt8(truncatingIfNeeded: size >> (8 * UInt32(k)))) }
        return g
    }
}
