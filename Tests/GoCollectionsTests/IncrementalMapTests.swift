import Testing
import GoHeap
@testable import GoCollections

/// Key and value types of exact Go sizes.
struct K20: Hashable { var b = InlineArray<20, UInt8>(repeating: 0); var tag: Int { Int(b[0]) | Int(b[1]) << 8 | Int(b[2]) << 16 }
    init(_ t: Int) { b[0] = UInt8(truncatingIfNeeded: t); b[1] = UInt8(truncatingIfNeeded: t >> 8); b[2] = UInt8(truncatingIfNeeded: t >> 16) }
    static func == (x: K20, y: K20) -> Bool { (0..<20).allSatisfy { x.b[$0] == y.b[$0] } }
    func hash(into h: inout Hasher) { for i in 0..<20 { h.combine(b[i]) } }
}
struct K130: Hashable { var b = InlineArray<130, UInt8>(repeating: 0)
    init(_ t: Int) { b[0] = UInt8(truncatingIfNeeded: t); b[1] = UInt8(truncatingIfNeeded: t >> 8); b[129] = 7 }
    static func == (x: K130, y: K130) -> Bool { (0..<130).allSatisfy { x.b[$0] == y.b[$0] } }
    func hash(into h: inout Hasher) { for i in 0..<130 { h.combine(b[i]) } }
}
struct V200 { var b = InlineArray<200, UInt8>(repeating: 0); init(_ t: UInt8) { b[0] = t; b[199] = t } }
struct S3: Hashable { var a: Int64, b: Int64, c: Int64 }

@Suite struct IncrementalMapOracleTests {
    struct MapLine { let kv: String; let hint: Int; let b: Int; let total: Int; let bucketSize: Int? }

    static func mapBytes(_ file: String) throws -> [MapLine] {
        try fixture(file).split(separator: "\n").compactMap { l in
            let f = l.split(separator: " ").map(String.init)
            guard f.count >= 5, f[0] == "bytes" else { return nil }
            return MapLine(kv: f[1], hint: Int(f[2])!, b: Int(f[3])!, total: Int(f[4])!, bucketSize: f.count > 5 ? Int(f[5]) : nil)
        }
    }

    static func state(_ kv: String, hint: Int) -> MapDebugState? {
        switch kv {
        case "i64:i64": return IncrementalMap<Int64, Int64>(minimumCapacity: hint).debugState
        case "str:int": return IncrementalMap<String, Int>(minimumCapacity: hint).debugState
        case "i32:i8": return IncrementalMap<Int32, Int8>(minimumCapacity: hint).debugState
        case "i8:i8": return IncrementalMap<Int8, Int8>(minimumCapacity: hint).debugState
        case "i64:bool": return IncrementalMap<Int64, Bool>(minimumCapacity: hint).debugState
        case "b20:i64": return IncrementalMap<K20, Int64>(minimumCapacity: hint).debugState
        case "s3:s3": return IncrementalMap<S3, S3>(minimumCapacity: hint).debugState
        case "i64:b200": return IncrementalMap<Int64, V200>(minimumCapacity: hint).debugState
        case "b130:i32": return IncrementalMap<K130, Int32>(minimumCapacity: hint).debugState
        case "str:str": return IncrementalMap<String, String>(minimumCapacity: hint).debugState
        default: return nil
        }
    }

    /// make(map, hint): B, bucket size and the bucket array's bytes as Go
    /// allocates them (total minus the 48-byte header, minus the 24-byte extra
    /// record where overflow buckets were preallocated).
    @Test(arguments: ["mapbytes.txt", "mapbytes-extra.txt"])
    func makeMatchesGo(file: String) throws {
        let lines = try Self.mapBytes(file)
        #expect(lines.count >= 20)
        for l in lines {
            let s = try #require(Self.state(l.kv, hint: l.hint), "no Swift types for \(l.kv)")
            #expect(s.bucketShift == l.b, "\(l.kv) hint \(l.hint): B")
            #expect(s.bucketArrayBytes == l.total - 48 - (l.b >= 4 ? 24 : 0), "\(l.kv) hint \(l.hint): bucket array bytes")
            if let bs = l.bucketSize { #expect(s.bucketSize == bs, "\(l.kv): bucket size") }
        }
        #expect(IncrementalMap<Int64, Int64>().debugState.bucketSize == 144)
        #expect(IncrementalMap<String, Int>().debugState.bucketSize == 208)
    }

    /// B after every insert and for every hint in maps.txt; and the drain bound.
    @Test func growthTrajectoriesMatchGo() throws {
        var grow: [String: [(Int, Int)]] = [:], hints: [String: [(Int, Int)]] = [:]
        for l in try fixture("maps.txt").split(separator: "\n") {
            let f = l.split(separator: " ").map(String.init)
            if f[0] == "grow" { grow[f[1], default: []].append((Int(f[2])!, Int(f[3])!)) }
            if f[0] == "hint" { hints[f[1], default: []].append((Int(f[2])!, Int(f[3])!)) }
        }
        for (h, b) in hints["i64:i64"]! { #expect(IncrementalMap<Int64, Int64>(minimumCapacity: h).debugState.bucketShift == b) }
        for (h, b) in hints["str:int"]! { #expect(IncrementalMap<String, Int>(minimumCapacity: h).debugState.bucketShift == b) }

        func trajectory<K: Hashable>(_ make: (Int) -> K, upTo n: Int) -> [(Int, Int)] {
            var m = IncrementalMap<K, Int>()
            var out: [(Int, Int)] = []
            var b = -1
            for i in 1...n {
                m[make(i)] = i
                let nb = m.debugState.bucketShift
                if nb != b, i > 1 || nb > 0 { out.append((i, nb)) }
                b = nb
            }
            return out
        }
        let i64 = trajectory({ Int64($0) &* 0x9E37_79B9 }, upTo: 1_800_000)
        #expect(i64.map { "\($0.0) \($0.1)" } == grow["i64:i64"]!.map { "\($0.0) \($0.1)" })
        let str = trajectory({ "key-\($0)" }, upTo: 900_000)
        #expect(str.map { "\($0.0) \($0.1)" } == grow["str:int"]!.map { "\($0.0) \($0.1)" })
    }

    /// Every growth of a 3 M-key run drains within as many writes as there were
    /// old buckets (Go's maxdrain for the same run is in maps.txt).
    @Test func drainBoundOnEveryGrowth() {
        var m = IncrementalMap<Int64, Int64>()
        var checked = 0
        var oldCount = 0, writes = 0, growing = false
        for i in 0..<3_000_000 {
            let before = m.debugState
            m[Int64(i) &* 0x5851_F42D] = Int64(i)
            let after = m.debugState
            if !before.isGrowing && after.isGrowing { growing = true; oldCount = after.oldBucketCount; writes = 1 }
            else if growing {
                writes += 1
                if !after.isGrowing {
                    #expect(writes <= oldCount, "growth from \(oldCount) buckets took \(writes) writes")
                    growing = false
                    checked += 1
                }
            }
        }
        // Growths from 1 or 2 old buckets finish inside the insert that starts
        // them, so they are never seen in progress; all the others are checked.
        #expect(m.growthStatistics.growths == 19)
        #expect(checked >= 17)
        #expect(m.growthStatistics.maxDrainInserts <= 1 << 18)
    }
}
