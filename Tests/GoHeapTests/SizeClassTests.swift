import Testing
@testable import GoHeap

/// The class table and rounding, against the go1.19 oracle.
@Suite struct SizeClassTests {
    struct Row { let cls, size, spanBytes, objects, tailWaste: Int; let maxWaste: String; let minAlign: Int }

    static func oracleRows() throws -> [Row] {
        try fixture("sizeclasses.tsv").split(separator: "\n").dropFirst().map { line in
            let f = line.split(separator: "\t").map(String.init)
            return Row(cls: Int(f[0])!, size: Int(f[1])!, spanBytes: Int(f[2])!, objects: Int(f[3])!,
                       tailWaste: Int(f[4])!, maxWaste: f[5], minAlign: Int(f[6])!)
        }
    }

    @Test func tableEqualsGo() throws {
        let rows = try Self.oracleRows()
        #expect(rows.count == 67)
        #expect(SizeClasses.table.count == 67)
        for (row, c) in zip(rows, SizeClasses.table) {
            #expect(c.index == row.cls)
            #expect(c.size == row.size, "class \(row.cls) size")
            #expect(c.spanBytes == row.spanBytes, "class \(row.cls) span bytes")
            #expect(c.objects == row.objects, "class \(row.cls) objects")
            #expect(c.tailWaste == row.tailWaste, "class \(row.cls) tail waste")
            #expect(String(format: "%.2f%%", c.maxWaste * 100) == row.maxWaste, "class \(row.cls) max waste")
            #expect(c.minAlignment == row.minAlign, "class \(row.cls) min align")
        }
    }

    /// Every small byte count maps to the smallest oracle class that holds it,
    /// computed here by a linear search independent of the lookup tables.
    @Test func everySmallByteCountRoundsUpAsGo() throws {
        let sizes = try Self.oracleRows().map(\.size)
        var cls = 0
        for n in 0...SizeClasses.maxSmallSize {
            while sizes[cls] < max(n, 1) { cls += 1 }
            #expect(SizeClasses.classFor(byteCount: n) == cls + 1, "classFor(\(n))")
            // Go's roundupsize(0) is 0: class 0 has size 0.
            #expect(SizeClasses.roundUp(byteCount: n) == (n == 0 ? 0 : sizes[cls]), "roundUp(\(n))")
        }
    }

    @Test(arguments: [32769, 32770, 40000, 40960, 65535, 65536, 100_000, 1 << 20, (2 << 20) - 1, 2 << 20,
                      (2 << 20) + 1, 3_333_333, 64 << 20, (64 << 20) + 1, 1 << 40])
    func largeByteCountsRoundToPages(n: Int) {
        let expected = (n + 8191) / 8192 * 8192
        #expect(SizeClasses.roundUp(byteCount: n) == expected)
        #expect(SizeClasses.classFor(byteCount: n) == 0)
    }

    @Test func largeSweep() {
        var rng = SplitMix(seed: 7)
        for _ in 0..<100_000 {
            let n = Int.random(in: 32769...(1 << 34), using: &rng)
            #expect(SizeClasses.roundUp(byteCount: n) == (n + 8191) / 8192 * 8192)
        }
        // As Go's roundupsize: no rounding when adding a page would overflow.
        #expect(SizeClasses.roundUp(byteCount: Int.max) == Int.max)
    }

    @Test func spanClasses() {
        #expect(SizeClasses.spanClass(sizeClass: 5, noscan: false) == 10)
        #expect(SizeClasses.spanClass(sizeClass: 5, noscan: true) == 11)
        #expect(SizeClasses.spanClassCount == 2 * SizeClasses.count)
    }
}
