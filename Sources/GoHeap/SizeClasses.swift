// Size classes: the fixed menu of object sizes the small-object allocator serves.
//
// What this tier owns: Go's 67 small size classes (class 0 stands for "large
// object"), the number of 8 KiB pages in a span of each class, and the O(1)
// mapping from a byte count to its class. Go uses two lookup tables, one with
// 8-byte steps up to 1 KiB and one with 128-byte steps up to 32 KiB; so do we,
// in CShims.h, so that the lookup inlines into callers in other modules.
//
// Invariants: classes are strictly increasing; every class size is a multiple of
// 8; a request of n bytes maps to the smallest class whose size is >= n. Span
// classes double the class count: spanClass = class << 1 | noscan. GoHeap has no
// garbage collector, so the noscan bit only separates objects that hold no
// references (trivially destructible contents) from those that might, the way
// Go keeps them apart; both halves behave identically.
//
// Locking: none. Everything here is immutable.

import CShims

/// Go's size classes (go1.19), with the derived columns of its table.
public enum SizeClasses {
    /// Page size of the heap: 8 KiB, as in Go.
    public static let pageSize = 8192
    /// log2 of ``pageSize``.
    public static let pageShift = 13
    /// The largest small object; anything larger is a page run.
    public static let maxSmallSize = 32768
    /// Number of classes including class 0 (large objects).
    public static let count = 68
    /// Number of span classes: every class has a scan and a noscan half.
    public static let spanClassCount = 136

    /// One row of the size class table.
    public struct SizeClass: Sendable, Hashable, CustomStringConvertible {
        /// Class number, 1...67.
        public let index: Int
        /// Bytes per object.
        public let size: Int
        /// Bytes per span (whole pages).
        public let spanBytes: Int
        /// Objects that fit in one span.
        public var objects: Int { spanBytes / size }
        /// Bytes left over at the end of a span.
        public var tailWaste: Int { spanBytes - objects * size }
        /// The worst fraction of a span wasted, when every object holds the
        /// smallest request that maps to this class (Go's "max waste" column).
        public let maxWaste: Double
        /// Every object of the class starts at a multiple of this (capped at a page).
        public var minAlignment: Int { min(size & -size, SizeClasses.pageSize) }
        /// Pages per span.
        public var pages: Int { spanBytes / SizeClasses.pageSize }

        public var description: String {
            "class \(index): \(size) B, \(spanBytes) B/span, \(objects) objects"
        }
    }

    /// Bytes per object, indexed by class (index 0 is 0: large objects).
    static let classSize: [Int] = [
        0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
        288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280,
        1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528,
        6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432,
        19072, 20480, 21760, 24576, 27264, 28672, 32768,
    ]

    /// Pages per span, indexed by class. Go picks the smallest page count that
    /// keeps tail waste under 1/8 of the span.
    static let classPages: [Int] = [
        0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4, 5, 6, 1, 7, 6, 5, 4,
        3, 5, 7, 2, 9, 7, 5, 8, 3, 10, 7, 4,
    ]

    /// The table of classes 1...67, in order: `table[0]` is class 1.
    public static let table: [SizeClass] = (1..<count).map { c in
        let size = classSize[c], span = classPages[c] * pageSize
        let objects = span / size
        let prev = classSize[c - 1]
        let waste = Double((size - prev - 1) * objects + (span - objects * size)) / Double(span)
        return SizeClass(index: c, size: size, spanBytes: span, maxWaste: waste)
    }

    /// The size class for a request of `byteCount` bytes: 1...67, or 0 when the
    /// request is larger than ``maxSmallSize`` and is served as a page run.
    /// A request of 0 bytes is served from class 1.
    public static func classFor(byteCount: Int) -> Int {
        if byteCount < 0 { badByteCount(byteCount, "SizeClasses.classFor(byteCount:)") }
        return classIndex(byteCount)
    }

    /// Class of a non-negative byte count, without argument checks.
    /// (The tables live in CShims.h so this inlines across modules.)
    @inlinable @inline(__always)
    static func classIndex(_ n: Int) -> Int {
        Int(goheap_size_class(n))
    }

    /// The bytes actually reserved for a request of `byteCount` bytes, as Go's
    /// roundupsize computes it: the class size for small requests, the request
    /// rounded up to whole 8 KiB pages from ``maxSmallSize`` on, and 0 for 0
    /// (Go gives zero-byte objects no memory of their own; a heap still
    /// serves `allocate(byteCount: 0)` with a distinct 8-byte object).
    public static func roundUp(byteCount: Int) -> Int {
        if byteCount < 0 { badByteCount(byteCount, "SizeClasses.roundUp(byteCount:)") }
        if byteCount == 0 { return 0 }
        if byteCount < maxSmallSize {
            return classSize[classIndex(byteCount)]
        }
        let (sum, overflow) = byteCount.addingReportingOverflow(pageSize - 1)
        if overflow { return byteCount }  // as Go: no rounding when it would wrap
        return sum & ~(pageSize - 1)
    }

    /// Bytes per object of class `c` (0 for class 0).
    public static func size(ofClass c: Int) -> Int {
        precondition(c >= 0 && c < count, "SizeClasses.size(ofClass:): class \(c) is not in 0..<\(count)")
        return classSize[c]
    }

    /// Pages per span of class `c`.
    public static func pages(ofClass c: Int) -> Int {
        precondition(c >= 0 && c < count, "SizeClasses.pages(ofClass:): class \(c) is not in 0..<\(count)")
        return classPages[c]
    }

    /// Span class for a size class and the noscan bit.
    @inlinable
    public static func spanClass(sizeClass: Int, noscan: Bool) -> Int {
        sizeClass << 1 | (noscan ? 1 : 0)
    }

    /// The smallest class at or above `sizeClass` whose objects are all aligned
    /// to `alignment`, or 0 when none is (the request then needs a page run).
    static func alignedClass(from sizeClass: Int, alignment: Int) -> Int {
        var c = sizeClass
        while c < count {
            let s = classSize[c]
            if min(s & -s, pageSize) >= alignment { return c }
            c += 1
        }
        return 0
    }
}
