import Testing
import Foundation
import GoHeap
@testable import GoCollections

/// Issue 13: IncrementalMap's Dictionary-style API against Dictionary, in the
/// style of swift-collections' tests: random operation sequences checked after
/// every step, hashing, and in-place mutation through the _modify subscripts.
@Suite struct IncrementalMapDictionaryTests {
    typealias Map = IncrementalMap<Int, [Int]>

    /// Contents equal, whatever the orders.
    static func same(_ m: Map, _ d: [Int: [Int]]) -> Bool {
        guard m.count == d.count, m.keys.count == d.count, m.values.count == d.count else { return false }
        for (k, v) in d where m[k] != v { return false }
        return true
    }

    /// Random operations, every one mirrored on a Dictionary and the contents
    /// compared after every step: writes by key, mutation through both
    /// _modify subscripts (present and absent keys, to nil and from nil),
    /// through values[i], removal by index, merges, copies taken mid-growth
    /// and then both mutated, removeAll with and without keepingCapacity,
    /// and full iterations.
    @Test(arguments: [11 as UInt64, 12, 13])
    func differentialAgainstDictionary(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        var m = Map()
        var d: [Int: [Int]] = [:]
        var copies: [(Map, [Int: [Int]])] = []
        var copiesMidGrowth = 0, modifiesMidGrowth = 0, growths = 0
        let keySpace = 700
        for step in 0..<12_000 {
            let k = Int.random(in: 0..<keySpace, using: &rng)
            let r = Int.random(in: 0..<100, using: &rng)
            let wasGrowing = m.debugState.isGrowing
            switch r {
            case 0..<20:
                m[k] = [step]; d[k] = [step]
            case 20..<28:
                #expect(m.updateValue([step, 1], forKey: k) == d.updateValue([step, 1], forKey: k))
            case 28..<36:
                #expect(m.removeValue(forKey: k) == d.removeValue(forKey: k))
            case 36..<40:
                m[k] = nil; d[k] = nil
            case 40..<48:
                m[k]?.append(step); d[k]?.append(step)          // _modify, present or absent
                if wasGrowing { modifiesMidGrowth += 1 }
            case 48..<52 where d[k] != nil:
                m[k]!.append(-step); d[k]!.append(-step)         // _modify through !
            case 52..<60:
                m[k, default: []].append(step); d[k, default: []].append(step)
            case 60..<63:
                // _modify that turns a present value into nil (a delete) or
                // an absent one into a value (an insert).
                inoutApply(&m[k]) { $0 = $0 == nil ? [step] : nil }
                inoutApply(&d[k]) { $0 = $0 == nil ? [step] : nil }
            case 63..<68 where !d.isEmpty:
                let key = d.keys.randomElement(using: &rng)!
                let i = m.index(forKey: key)!
                #expect(m[i].key == key && m[i].value == d[key]!)
                m.values[i].append(7); d[key]!.append(7)
                #expect(m.index(forKey: key) == i, "a value mutation keeps indices")
            case 68..<71 where !d.isEmpty:
                let key = d.keys.randomElement(using: &rng)!
                let e = m.remove(at: m.index(forKey: key)!)
                #expect(e.key == key && e.value == d.removeValue(forKey: key))
            case 71..<74:
                let other = (0..<5).map { _ in (Int.random(in: 0..<keySpace, using: &rng), [step]) }
                m.merge(other) { $0 + $1 }; d.merge(other) { $0 + $1 }
            case 74..<76:
                let o: Map = [k: [1], k + keySpace: [2]]
                m.merge(o) { a, _ in a }; d.merge([k: [1], k + keySpace: [2]]) { a, _ in a }
            case 76..<80:
                copies.append((m, d))
                if wasGrowing { copiesMidGrowth += 1 }
                if copies.count > 8 { copies.removeFirst() }
            case 80..<86 where !copies.isEmpty:
                // Both the copy and the original are mutated afterwards.
                let c = Int.random(in: 0..<copies.count, using: &rng)
                copies[c].0[k, default: [0]].append(step); copies[c].1[k, default: [0]].append(step)
                copies[c].0[k + 1] = nil; copies[c].1[k + 1] = nil
                #expect(Self.same(copies[c].0, copies[c].1), "copy \(c) at step \(step)")
            case 86:
                let keep = Int.random(in: 0..<2, using: &rng) == 0
                m.removeAll(keepingCapacity: keep); d.removeAll(keepingCapacity: keep)
            case 87..<90:
                // A full iteration: every entry exactly once.
                var seen: [Int: [Int]] = [:]
                for (key, value) in m { #expect(seen.updateValue(value, forKey: key) == nil) }
                #expect(seen == d)
            default:
                #expect(m[k] == d[k])
                #expect(m[k, default: [-1]] == d[k, default: [-1]])
            }
            if !wasGrowing && m.debugState.isGrowing { growths += 1 }
            #expect(Self.same(m, d), "step \(step), op \(r)")
        }
        for (c, e) in copies { #expect(Self.same(c, e)) }
        #expect(growths > 5 && copiesMidGrowth > 0 && modifiesMidGrowth > 0,
                "growths \(growths), copies mid-growth \(copiesMidGrowth), modifies mid-growth \(modifiesMidGrowth)")
    }

    @Test func dictionaryStyleAPI() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        var m = IncrementalMap<String, Int>(heap: heap)
        #expect(m.updateValue(1, forKey: "a") == nil)
        #expect(m.updateValue(2, forKey: "a") == 1)
        m["b"] = 3
        #expect(m.removeValue(forKey: "b") == 3 && m.removeValue(forKey: "b") == nil)
        m.merge([("a", 10), ("c", 5)]) { $0 + $1 }
        #expect(m["a"] == 12 && m["c"] == 5)
        m.merge(["c": 1, "d": 4]) { old, _ in old }
        #expect(m["c"] == 5 && m["d"] == 4)
        let other: IncrementalMap = ["d": 40, "e": 50]
        let merged = m.merging(other) { _, new in new }
        #expect(merged["d"] == 40 && merged["e"] == 50 && m["e"] == nil && merged.heap === heap)
        #expect(m.merging([("z", 26)]) { $1 }["z"] == 26)
        #expect(m.merging(["z": 26]) { $1 }.count == m.count + 1)
        let doubled = m.mapValues { $0 * 2 }
        #expect(doubled == ["a": 24, "c": 10, "d": 8] && doubled.heap === heap)
        let odd = m.compactMapValues { $0 % 2 == 1 ? "\($0)" : nil }
        #expect(odd == ["c": "5"] && odd.heap === heap)
        let big = m.filter { $0.value > 4 }
        #expect(big == ["a": 12, "c": 5] && big.heap === heap)
        #expect(type(of: big) == IncrementalMap<String, Int>.self)
        // Initializers.
        let u = IncrementalMap(uniqueKeysWithValues: [("x", 1), ("y", 2)], heap: heap)
        #expect(u == ["x": 1, "y": 2] && u.heap === heap)
        let q = IncrementalMap([("x", 1), ("x", 2), ("y", 3)], uniquingKeysWith: +)
        #expect(q == ["x": 3, "y": 3] && q.heap === Heap.shared)
        let g = IncrementalMap(grouping: ["apple", "avocado", "banana"], by: { $0.first! }, heap: heap)
        #expect(g == ["a": ["apple", "avocado"], "b": ["banana"]] && g.heap === heap)
        // Capacity: Go's load limit; reserveCapacity sizes like make(map, n).
        var r = IncrementalMap<Int, Int>(heap: heap)
        #expect(r.capacity == 8)
        r.reserveCapacity(100)
        #expect(r.debugState.bucketShift == MapConstants.bucketShift(forHint: 100) && r.capacity >= 100)
        for i in 0..<100 { r[i] = i }
        #expect(r.growthStatistics.growths == 0, "no growth up to the reserved capacity")
        r.reserveCapacity(5000)
        #expect(r.debugState.bucketShift == MapConstants.bucketShift(forHint: 5000) && r.count == 100 && r.heap === heap)
        for i in 0..<100 { #expect(r[i] == i) }
        let b = r.debugState.bucketShift
        r.reserveCapacity(10)
        #expect(r.debugState.bucketShift == b, "never shrinks")
    }

    /// Equal maps hash equal whatever their insertion order, growth state
    /// and table size; unequal ones compare unequal.
    @Test func hashableConsistency() {
        var rng = SplitMix(seed: 99)
        let pairs = (0..<3000).map { ("k\($0)", $0) }
        var a = IncrementalMap<String, Int>()
        for (k, v) in pairs { a[k] = v }
        var b = IncrementalMap<String, Int>(minimumCapacity: 10_000)
        for (k, v) in pairs.shuffled(using: &rng) { b[k] = v }
        var c = IncrementalMap<String, Int>()
        for (k, v) in pairs.reversed() { c[k] = v + 1 }
        for (k, v) in pairs { c[k] = v }                  // same contents after updates
        for i in 0..<500 { c["extra\(i)"] = i }
        for i in 0..<500 { c["extra\(i)"] = nil }          // and after deletes
        var mid = IncrementalMap<String, Int>()
        var i = 0
        while !(mid.debugState.isGrowing && mid.count > 500) { mid["k\(i)"] = i; i += 1 }
        let midD = Dictionary(uniqueKeysWithValues: (0..<i).map { ("k\($0)", $0) })
        let midCopy = IncrementalMap(uniqueKeysWithValues: midD.map { ($0.key, $0.value) })
        #expect(mid.debugState.isGrowing && !midCopy.debugState.isGrowing)
        #expect(mid == midCopy && mid.hashValue == midCopy.hashValue)
        #expect(a == b && b == c && a.hashValue == b.hashValue && b.hashValue == c.hashValue)
        #expect(Set([a, b, c]).count == 1)
        var d = a
        d["k0"] = -1
        #expect(d != a)
        #expect(IncrementalMap<Int, Int>() == [:] && IncrementalMap<Int, Int>().hashValue == IncrementalMap<Int, Int>(minimumCapacity: 100).hashValue)
        #expect(IncrementalMap(uniqueKeysWithValues: [(1, 2), (2, 1)]).hashValue != IncrementalMap(uniqueKeysWithValues: [(1, 1), (2, 2)]).hashValue)
    }

    /// m[k]!.append and m[k, default: []].append mutate the stored array in
    /// place: no copy of the array per append (which the old get-then-set
    /// path made: 50,000 appends took 4.5 s).
    @Test func modifyDoesNotCopyTheValue() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        var m = IncrementalMap<String, GrowableArray<Int>>(heap: heap)
        m["k"] = GrowableArray(heap: heap)
        let before = heap.stats.mallocs
        for i in 0..<50_000 { m["k"]!.append(i) }
        let growthsOfOneArray = m["k"]!.growthCount
        // At most one allocation per growth (page-run growths may happen in
        // place and allocate nothing), none per append.
        #expect(heap.stats.mallocs - before <= growthsOfOneArray,
                "at most one allocation per growth of the array, none per append: \(heap.stats.mallocs - before) for \(growthsOfOneArray) growths")
        #expect(m["k"]!.count == 50_000)
        let before2 = heap.stats.mallocs
        for i in 0..<50_000 { m["d", default: GrowableArray(heap: heap)].append(i) }
        #expect(heap.stats.mallocs - before2 <= m["d"]!.growthCount, "the key fits the existing bucket: only the array's growths allocate")
        // Swift arrays: the buffer keeps its identity across in-place appends.
        var a = IncrementalMap<Int, [Int]>()
        a[1] = []
        a[1]!.reserveCapacity(1000)
        let base = a[1]!.withUnsafeBufferPointer { $0.baseAddress }
        for i in 0..<1000 { a[1]!.append(i) }
        for i in 0..<1000 { a[1, default: []][i] += 1 }
        let idx = a.index(forKey: 1)!
        a.values[idx][0] = -1
        #expect(a[1]!.withUnsafeBufferPointer { $0.baseAddress } == base, "the stored array was never copied")
        #expect(a[1]!.count == 1000 && a[1]![0] == -1 && a[1]![999] == 1000)
        // Absent key: nothing is inserted unless a value is written.
        a[2]?.append(1)
        #expect(a[2] == nil && a.count == 1)
        a[3, default: []].append(3)
        #expect(a[3] == [3])
    }

    /// Writes through the _modify subscripts take Go's paths, doing the same
    /// evacuation work: three maps with one hash seed, written through
    /// subscript assignment, through subscript(key:default:) and through
    /// subscript(key:)'s _modify, keep identical table states at every step
    /// (B, growth progress, overflow buckets), through inserts, updates and
    /// deletes.
    @Test func modifyWritesTakeGosPaths() {
        func seeded() -> IncrementalMap<Int, Int> {
            var m = IncrementalMap<Int, Int>()
            m._storage = _MapStorage(heap: .shared, bucketShift: 0, seed: 0x5EED)
            return m
        }
        var viaSet = seeded(), viaDefault = seeded(), viaModify = seeded()
        var rng = SplitMix(seed: 8)
        var live: [Int] = []
        var growthSteps = 0
        for step in 0..<30_000 {
            let r = Int.random(in: 0..<10, using: &rng)
            if r < 6 || live.isEmpty {
                let k = Int.random(in: 0..<Int.max, using: &rng)
                live.append(k)
                viaSet[k] = step
                viaDefault[k, default: step] += 0
                inoutApply(&viaModify[k]) { $0 = step }
            } else if r < 8 {
                let k = live[Int.random(in: 0..<live.count, using: &rng)]
                viaSet[k] = step
                viaDefault[k, default: -1] = step
                viaModify[k]! = step
            } else {
                let k = live.remove(at: Int.random(in: 0..<live.count, using: &rng))
                viaSet[k] = nil
                viaDefault.removeValue(forKey: k)
                inoutApply(&viaModify[k]) { $0 = nil }
            }
            let s = viaSet.debugState
            if s.isGrowing { growthSteps += 1 }
            #expect(viaDefault.debugState == s && viaModify.debugState == s, "step \(step)")
        }
        #expect(viaSet == viaDefault && viaSet == viaModify && viaSet.count == live.count)
        #expect(viaSet.growthStatistics.growths == viaModify.growthStatistics.growths && growthSteps > 100)
    }

    /// The example of the DocC catalog, as written.
    @Test func catalogExample() {
        let heap = Heap(configuration: HeapConfiguration())
        var groups = IncrementalMap<String, GrowableArray<Int>>(heap: heap)
        for i in 0..<100 { groups[i % 2 == 0 ? "even" : "odd", default: GrowableArray(heap: heap)].append(i) }
        #expect(groups["even"]!.count == 50 && groups["odd"]![0] == 1 && groups["odd"]!.heap === heap)
    }
}
