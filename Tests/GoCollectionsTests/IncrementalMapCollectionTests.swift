import Testing
import Foundation
import GoHeap
@testable import GoCollections

/// Issue 13: IncrementalMap as a Collection, and its keys and values views,
/// checked against the collection laws and Dictionary's text.
@Suite struct IncrementalMapCollectionTests {
    /// Maps in every state a table can be in: empty, one bucket, preallocated,
    /// mid-doubling, mid same-size growth, after deletes.
    static func maps() -> [(String, IncrementalMap<Int, String>)] {
        var out: [(String, IncrementalMap<Int, String>)] = [("empty", [:]), ("nil storage", IncrementalMap())]
        out.append(("emptied", { var m: IncrementalMap<Int, String> = [1: "a"]; m[1] = nil; return m }()))
        out.append(("one", [42: "x"]))
        out.append(("made for 1000, holding 10", {
            var m = IncrementalMap<Int, String>(minimumCapacity: 1000)
            for i in 0..<10 { m[i] = "\(i)" }
            return m
        }()))
        var g = IncrementalMap<Int, String>()
        var i = 0
        while !(g.debugState.isGrowing && g.debugState.evacuatedBuckets > 2 && g.debugState.bucketShift >= 6) { g[i] = "\(i)"; i += 1 }
        out.append(("mid-doubling", g))
        var s = IncrementalMap<Int, String>()
        var rng = SplitMix(seed: 5)
        var live: [Int] = []
        while !s.debugState.isSameSizeGrowth {
            if live.count < 45 || Bool.random(using: &rng) {
                let k = Int.random(in: 0..<Int.max, using: &rng); s[k] = "s"; live.append(k)
            } else {
                s[live.remove(at: Int.random(in: 0..<live.count, using: &rng))] = nil
            }
        }
        out.append(("mid same-size growth", s))
        var big = IncrementalMap<Int, String>()
        for k in 0..<5000 { big[k] = "\(k)" }
        for k in stride(from: 0, to: 5000, by: 3) { big[k] = nil }
        out.append(("after deletes", big))
        return out
    }

    @Test func collectionLaws() {
        for (name, m) in Self.maps() {
            #expect(m.count == m.distance(from: m.startIndex, to: m.endIndex), "\(name)")
            #expect(m.isEmpty == (m.startIndex == m.endIndex), "\(name)")
            var seen = Set<Int>()
            var previous: IncrementalMap<Int, String>.Index?
            var i = m.startIndex
            while i != m.endIndex {
                if let p = previous { #expect(p < i, "\(name): indices increase") }
                let (k, v) = m[i]
                #expect(seen.insert(k).inserted, "\(name): key \(k) once")
                #expect(m[k] == v)
                #expect(m.index(forKey: k) == i, "\(name): index(forKey:)")
                #expect(m.keys.firstIndex(of: k) == i && m.keys.contains(k))
                #expect(m.keys[i] == k && m.values[i] == v)
                previous = i
                i = m.index(after: i)
            }
            #expect(seen.count == m.count, "\(name): every element once")
            #expect(m.indices.count == m.count)
            // The iterator, the indices and the views agree on one order, every time.
            let viaIterator = m.map { $0.key }
            #expect(viaIterator == m.indices.map { m[$0].key }, "\(name)")
            #expect(viaIterator == Array(m.keys) && viaIterator == m.map { $0.key })
            #expect(m.map { $0.value } == Array(m.values))
            #expect(m.keys.count == m.count && m.values.count == m.count && m.underestimatedCount == m.count)
            #expect(m.index(forKey: -1) == nil && !m.keys.contains(-1) && m.keys.firstIndex(of: -1) == nil)
            #expect(m.first?.key == viaIterator.first)
            // Indices survive the copy a values mutation makes of shared storage.
            if let f = m.first {
                var c = m
                let idx = c.index(forKey: f.key)!
                c.values[idx] += "!"
                #expect(c[f.key] == f.value + "!" && m[f.key] == f.value)
                #expect(c.index(forKey: f.key) == idx)
            }
        }
    }

    /// The traversal starts at a random place that changes with structural
    /// changes (Go's randomized order), and is stable between them.
    @Test func orderIsRandomPerChangeAndStableBetween() {
        var m = IncrementalMap<Int, Int>()
        for i in 0..<200 { m[i] = i }
        let first = Array(m.keys)
        #expect(Array(m.keys) == first && m.map { $0.key } == first)
        var starts = Set<Int>()
        for i in 200..<260 {
            m[i] = i
            m[i] = nil
            starts.insert(m.first!.key)
        }
        #expect(starts.count > 10, "the first key changes with the table's changes: \(starts.count) distinct")
        var firsts = Set<Int>()
        for _ in 0..<40 {
            let c: IncrementalMap = [1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8]
            firsts.insert(c.first!.key)
        }
        #expect(firsts.count > 1, "equal maps built alike start at different places")
    }

    @Test func removeAtPopFirstAndViews() {
        var m = IncrementalMap<String, Int>()
        for i in 0..<300 { m["k\(i)"] = i }
        var d = Dictionary(uniqueKeysWithValues: m.map { ($0.key, $0.value) })
        while let (k, v) = m.popFirst() {
            #expect(d.removeValue(forKey: k) == v)
            if m.count % 50 == 0 { #expect(Dictionary(uniqueKeysWithValues: m.map { ($0.key, $0.value) }) == d) }
        }
        #expect(d.isEmpty && m.isEmpty)
        // values as a MutableCollection: every value mutated in place through its index.
        for i in 0..<100 { m["k\(i)"] = i }
        var i = m.values.startIndex
        while i != m.values.endIndex {
            m.values[i] *= 2
            i = m.values.index(after: i)
        }
        for j in 0..<100 { #expect(m["k\(j)"] == 2 * j) }
        var same = IncrementalMap<String, Int>(minimumCapacity: 1000)
        for j in (0..<100).reversed() { same["k\(j)"] = 0 }
        #expect(m.keys == same.keys, "the same keys, another table")
        #expect(m.keys != (["x": 1] as IncrementalMap<String, Int>).keys)
    }

    @Test func descriptionsLikeDictionary() {
        // One entry: exactly Dictionary's text, for String and Int keys.
        let s: IncrementalMap = ["a": 1]
        #expect(s.description == ["a": 1].description && s.debugDescription == ["a": 1].debugDescription)
        let i: IncrementalMap = [1: "one"]
        #expect(i.description == [1: "one"].description && i.description == #"[1: "one"]"#)
        #expect(IncrementalMap<String, Int>().description == [String: Int]().description)
        #expect(IncrementalMap<String, Int>().debugDescription == "[:]")
        let o: IncrementalMap<String, Int?> = ["x": nil]
        #expect(o.description == ["x": nil as Int?].description)
        // Many entries: Dictionary's format in the map's order.
        var m = IncrementalMap<String, String>()
        for j in 0..<50 { m["k\(j)"] = "v\"\(j)" }
        let entries = m.map { [$0.key: $0.value].description.dropFirst().dropLast() }
        #expect(m.description == "[" + entries.joined(separator: ", ") + "]")
        #expect(m.debugDescription == m.description)
        // The views print like arrays, as Dictionary's views do.
        #expect(m.keys.description == Array(m.keys).description)
        #expect(m.values.description == Array(m.values).description)
        #expect(s.keys.debugDescription == #"IncrementalMap.Keys(["a"])"#)
        #expect(s.values.debugDescription == "IncrementalMap.Values([1])")
        #expect(Mirror(reflecting: s).displayStyle == .dictionary && Mirror(reflecting: s).children.count == 1)
    }
}
