// Fatal errors and argument checks.
//
// Misuse of a heap (double free, foreign pointer, impossible size) must stop the
// program with a message that names what was wrong and where, never corrupt
// memory quietly. Messages start with "fatal error: goheap:" as Go's runtime
// throws do, go to stderr with a raw write (no buffering, no allocation through
// this heap), and the process then aborts. These paths are cold by construction.

import CShims
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Prints `fatal error: goheap: <message>` to stderr and aborts.
@usableFromInline @inline(never)
func heapFatal(_ message: String) -> Never {
    var text = "fatal error: goheap: " + message + "\n"
    text.withUTF8 { buf in
        var off = 0
        while off < buf.count {
            let n = write(2, buf.baseAddress! + off, buf.count - off)
            if n <= 0 { break }
            off += n
        }
    }
    abort()
}

/// Hex form of an address for messages.
@usableFromInline
func hex(_ v: UInt) -> String { "0x" + String(v, radix: 16) }

@usableFromInline
func hex(_ p: UnsafeRawPointer?) -> String { hex(UInt(bitPattern: p)) }

/// The largest byte count any heap will try to serve (2^47: the user half of the
/// x86-64 address space). Larger requests are reported as invalid sizes.
public let heapMaxAllocation = 1 << 47

@inline(__always)
func checkByteCount(_ n: Int, in function: StaticString) {
    if n < 0 || n > heapMaxAllocation { badByteCount(n, function) }
}

@inline(never)
func badByteCount(_ n: Int, _ function: StaticString) -> Never {
    if n < 0 { heapFatal("\(function): byteCount \(n) is negative") }
    heapFatal("\(function): byteCount \(n) exceeds the largest possible allocation (\(heapMaxAllocation) bytes)")
}

@inline(__always)
func checkAlignment(_ a: Int, in function: StaticString) {
    if a <= 0 || a & (a - 1) != 0 { badAlignment(a, function) }
}

@inline(never)
func badAlignment(_ a: Int, _ function: StaticString) -> Never {
    heapFatal("\(function): alignment \(a) is not a positive power of two")
}

/// Internal invariant check: compiled away in release builds.
@inline(__always)
func heapAssert(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    #if DEBUG
    if !condition() { heapFatal("internal invariant violated: " + message()) }
    #endif
}
