import Testing
import GoHeap
@testable import GoCollections

/// Cases that would move more than this many bytes (make([]T, 100000) of
/// 33000-byte elements is 3.3 GB, copied on growth) are decided by the growth
/// core alone, which is exactly what the container asks; all others really
/// allocate and copy. The machine running the tests has 24 GiB.
let containerBudget = 256 << 20

/// The capacity of make([]T, n) followed by appending k more, from the core.
func coreMakeThenAppend(n: Int, k: Int, size: Int) -> Int {
    SliceGrowth.grow(oldCapacity: n, needed: n + k, elementSize: size).capacity
}

/// The bulk0, make1 and makek lines of `expected`, with each capacity taken
/// from the container operations given (or from the growth core for cases
/// beyond the memory budget).
func replayBatchPatterns(_ expected: [SliceLine], size: Int, bulk: (Int) -> Int,
                         makeThenAppend: (Int, Int) -> Int) -> [SliceLine] {
    var out: [SliceLine] = []
    for line in expected where line.pattern != "one" {
        let parts = line.a.split(separator: "+").map { Int($0)! }
        switch line.pattern {
        case "bulk0":
            out.append(SliceLine(size: size, pattern: "bulk0", a: line.a, b: 0, c: bulk(parts[0])))
        case "make1", "makek":
            let (n, k) = line.pattern == "make1" ? (line.b, 1) : (parts[0], parts[1])
            let c = (n + k) * size > containerBudget ? coreMakeThenAppend(n: n, k: k, size: size)
                                                     : makeThenAppend(n, k)
            out.append(SliceLine(size: size, pattern: line.pattern, a: line.a, b: n, c: c))
        default:
            Issue.record("unknown pattern \(line.pattern)")
        }
    }
    return out
}

/// Replays the four patterns of slices.txt with a real container of `E` and
/// returns the lines it produces, in the file's format.
func replay<E>(_ element: E, size: Int, like expected: [SliceLine]) -> [SliceLine] {
    var out: [SliceLine] = []
    // one: append one at a time to a nil slice until it holds 64 MiB. Between
    // growths the slice is filled to capacity in one batch (no growth can
    // happen there), then the single append that must grow is made.
    var a = GrowableArray<E>()
    let limit = size == 0 ? 100 : (64 << 20) / size
    while a.count < limit {
        let room = min(a.capacity - a.count, limit - a.count)
        if room > 0 {
            a.append(contentsOf: [E](repeating: element, count: room))
            continue
        }
        let before = a.capacity, len = a.count
        a.append(element)
        if a.capacity != before { out.append(SliceLine(size: size, pattern: "one", a: "\(len)", b: before, c: a.capacity)) }
    }
    a = GrowableArray()
    out += replayBatchPatterns(expected, size: size, bulk: { k in
        var s = GrowableArray<E>()
        s.append(contentsOf: [E](repeating: element, count: k))
        return s.capacity
    }, makeThenAppend: { n, k in
        var s = GrowableArray<E>(repeating: element, count: n)
        #expect(s.capacity == n, "make([]T, \(n)) has capacity \(n)")
        s.append(contentsOf: [E](repeating: element, count: k))
        return s.capacity
    })
    return out
}

/// Element types of exactly N bytes.
typealias Bytes<let N: Int> = InlineArray<N, UInt8>

func check<let N: Int>(_: Bytes<N>.Type, _ oracle: [Int: [SliceLine]]) {
    let expected = oracle[N] ?? []
    #expect(!expected.isEmpty, "no oracle lines for element size \(N)")
    #expect(GrowableArray<Bytes<N>>.elementSize == N)
    let produced = replay(Bytes<N>(repeating: 7), size: N, like: expected)
    #expect(produced == expected, "element size \(N): first difference at \(zip(produced, expected).first { $0 != $1 }.map { "\($0) vs Go \($1)" } ?? "length \(produced.count) vs \(expected.count)")")
}

@Suite struct GrowableArrayOracleTests {
    /// Every trajectory of ../shared/oracle/go1.19/slices.txt, by the real container.
    @Test func sharedOracleTrajectories() throws {
        let o = try sliceLines("slices.txt")
        #expect(Set(o.keys) == [0, 1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 1000, 4096, 33000])
        check(Bytes<0>.self, o); check(Bytes<1>.self, o); check(Bytes<2>.self, o); check(Bytes<4>.self, o)
        check(Bytes<8>.self, o); check(Bytes<12>.self, o); check(Bytes<16>.self, o); check(Bytes<24>.self, o)
        check(Bytes<32>.self, o); check(Bytes<48>.self, o); check(Bytes<64>.self, o); check(Bytes<96>.self, o)
        check(Bytes<128>.self, o); check(Bytes<256>.self, o); check(Bytes<1000>.self, o); check(Bytes<4096>.self, o)
        check(Bytes<33000>.self, o)
    }

    /// More element sizes, recorded from go1.19 by scripts/oracle/gen-slices.sh.
    @Test func extraOracleTrajectoriesWithTypedElements() throws {
        let o = try sliceLines("slices-extra.txt")
        check(Bytes<3>.self, o); check(Bytes<5>.self, o); check(Bytes<7>.self, o); check(Bytes<20>.self, o)
        check(Bytes<40>.self, o); check(Bytes<100>.self, o); check(Bytes<257>.self, o); check(Bytes<777>.self, o)
        check(Bytes<2000>.self, o); check(Bytes<8193>.self, o); check(Bytes<40000>.self, o)
    }

    /// Every size in both files through the untyped container (the path tools use).
    @Test func allOracleSizesWithRawContainer() throws {
        var all = try sliceLines("slices.txt")
        all.merge(try sliceLines("slices-extra.txt")) { a, _ in a }
        #expect(all.count >= 57)
        for (size, expected) in all.sorted(by: { $0.key < $1.key }) {
            var produced: [SliceLine] = []
            let r = RawGrowableArray(elementSize: size)
            let limit = size == 0 ? 100 : (64 << 20) / size
            while r.count < limit {
                let room = min(r.capacity - r.count, limit - r.count)
                if room > 0 { r.append(count: room); continue }
                let len = r.count
                if let e = r.append(count: 1) {
                    produced.append(SliceLine(size: size, pattern: "one", a: "\(len)", b: e.oldCapacity, c: e.newCapacity))
                }
            }
            produced += replayBatchPatterns(expected, size: size, bulk: { k in
                let s = RawGrowableArray(elementSize: size)
                s.append(count: k)
                return s.capacity
            }, makeThenAppend: { n, k in
                let s = RawGrowableArray(elementSize: size, length: n)
                s.append(count: k)
                return s.capacity
            })
            #expect(produced == expected, "element size \(size): \(zip(produced, expected).first { $0 != $1 }.map { "\($0) vs Go \($1)" } ?? "count \(produced.count) vs \(expected.count)")")
        }
    }

    /// The core against a from-scratch reading of the rule, over every element
    /// size 1...600 and a spread of larger ones, from many starting capacities.
    @Test func growthRuleForManyElementSizes() {
        func roundup(_ n: Int) -> Int {
            // Go's class sizes, searched linearly (independent of SizeClasses' tables).
            let classes = [8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288,
                           320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408,
                           1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784,
                           6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072,
                           20480, 21760, 24576, 27264, 28672, 32768]
            if n < 32768 { return classes.first { $0 >= n }! }
            return (n + 8191) / 8192 * 8192
        }
        func reference(_ old: Int, _ needed: Int, _ size: Int) -> Int {
            var c = old
            if needed > 2 * old { c = needed } else if old < 256 { c = 2 * old } else {
                while c < needed { c += (c + 768) / 4 }
            }
            return roundup(c * size) / size
        }
        let sizes = Array(1...600) + [999, 1000, 1001, 4095, 4097, 10_000, 16_385, 32_767, 32_768, 32_769, 65_537, 1 << 20]
        for size in sizes {
            var cap = 0
            while cap * size < (8 << 20) {
                let needed = cap + 1
                let d = SliceGrowth.grow(oldCapacity: cap, needed: needed, elementSize: size)
                #expect(d.capacity == reference(cap, needed, size), "size \(size) cap \(cap)")
                #expect(d.byteCount == roundup(d.capacity * size) || d.byteCount == roundup(reference(cap, needed, size) * size))
                cap = d.capacity
            }
            for (old, needed) in [(0, 5), (3, 7), (3, 20), (300, 301), (300, 700), (5000, 5001), (5000, 20_000)] {
                #expect(SliceGrowth.grow(oldCapacity: old, needed: needed, elementSize: size).capacity
                        == reference(old, needed, size), "size \(size) old \(old) needed \(needed)")
            }
        }
        #expect(SliceGrowth.grow(oldCapacity: 7, needed: 8, elementSize: 0) == SliceGrowthDecision(capacity: 8, byteCount: 0))
    }
}
