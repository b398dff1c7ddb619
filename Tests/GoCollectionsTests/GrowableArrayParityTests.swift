import Testing
import Foundation
import GoHeap
@testable import GoCollections

/// Issue 13: GrowableArray against Array, with Go's capacity checked on
/// every growth.
@Suite struct GrowableArrayParityTests {
    /// Random operations mirrored on an Array, contents compared after every
    /// step; every capacity change must be Go's growth from the old capacity
    /// (or a copy-free removeAll). Copies are taken mid-sequence and both
    /// sides mutated afterwards.
    @Test(arguments: [21 as UInt64, 22, 23])
    func differentialAgainstArray(seed: UInt64) {
        var rng = SplitMix(seed: seed)
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        var g = GrowableArray<[Int]>(heap: heap)
        var a: [[Int]] = []
        var copies: [(GrowableArray<[Int]>, [[Int]])] = []
        let size = GrowableArray<[Int]>.elementSize
        for step in 0..<15_000 {
            let oldCap = g.capacity, oldCount = g.count
            let r = Int.random(in: 0..<100, using: &rng)
            var needed: Int? = nil   // the length an operation that may grow asked for
            switch r {
            case 0..<30:
                needed = g.count + 1
                g.append([step]); a.append([step])
            case 30..<36:
                let xs = (0..<Int.random(in: 0...40, using: &rng)).map { [step, $0] }
                needed = g.count + xs.count
                g.append(contentsOf: xs); a.append(contentsOf: xs)
            case 36..<42:
                let i = Int.random(in: 0...a.count, using: &rng)
                needed = g.count + 1
                g.insert([step], at: i); a.insert([step], at: i)
            case 42..<50 where !a.isEmpty:
                let i = Int.random(in: 0..<a.count, using: &rng)
                #expect(g.remove(at: i) == a.remove(at: i))
            case 50..<56 where !a.isEmpty:
                let i = Int.random(in: 0..<a.count, using: &rng)
                g[i].append(step); a[i].append(step)                // _modify of an element
            case 56..<60:
                let lo = Int.random(in: 0...a.count, using: &rng)
                let hi = Int.random(in: lo...min(a.count, lo + 10), using: &rng)
                let xs = (0..<Int.random(in: 0...15, using: &rng)).map { [$0] }
                needed = g.count - (hi - lo) + xs.count
                g.replaceSubrange(lo..<hi, with: xs); a.replaceSubrange(lo..<hi, with: xs)
            case 60..<63 where !a.isEmpty:
                #expect(g.popLast() == a.popLast())
            case 63..<65 where a.count > 3:
                g.removeFirst(2); a.removeFirst(2)
            case 65..<67:
                g.removeAll { $0.first! % 3 == 0 }; a.removeAll { $0.first! % 3 == 0 }
            case 67..<69 where a.count > 1:
                let i = Int.random(in: 0..<a.count, using: &rng), j = Int.random(in: 0..<a.count, using: &rng)
                g.swapAt(i, j); a.swapAt(i, j)
            case 69:
                g.sort { $0.first! < $1.first! }; a.sort { $0.first! < $1.first! }
            case 70:
                g.reverse(); a.reverse()
            case 71..<75:
                copies.append((g, a))
                if copies.count > 6 { copies.removeFirst() }
            case 75..<81 where !copies.isEmpty:
                let c = Int.random(in: 0..<copies.count, using: &rng)
                copies[c].0.append([step]); copies[c].1.append([step])
                if !copies[c].1.isEmpty { copies[c].0[0] = [-step]; copies[c].1[0] = [-step] }
                #expect(copies[c].0.elementsEqual(copies[c].1), "copy \(c) at step \(step)")
                #expect(copies[c].0.heap === heap)
            case 81:
                g.removeAll(keepingCapacity: true); a.removeAll(keepingCapacity: true)
                #expect(g.capacity == oldCap)
            case 82:
                g.removeAll(); a.removeAll()
                #expect(g.capacity == 0)
            case 83:
                let n = g.count + Int.random(in: 0...64, using: &rng)
                needed = n
                g.reserveCapacity(n); a.reserveCapacity(n)
            case 84..<87:
                #expect(Array(g) == a)
                var n = 0
                for (x, y) in zip(g, a) { #expect(x == y); n += 1 }
                #expect(n == a.count)
            default:
                if !a.isEmpty {
                    let i = Int.random(in: 0..<a.count, using: &rng)
                    #expect(g[i] == a[i])
                }
            }
            if g.capacity != oldCap, r != 82, r != 81 {
                // A growth: Go's capacity for the length the operation asked for.
                let n = needed ?? oldCount
                #expect(n > oldCap, "capacity changed without need at step \(step), op \(r)")
                #expect(g.capacity == SliceGrowth.grow(oldCapacity: oldCap, needed: n, elementSize: size).capacity,
                        "step \(step), op \(r): capacity \(oldCap) -> \(g.capacity) for \(n)")
            }
            #expect(g.count == a.count && g.elementsEqual(a), "step \(step), op \(r)")
            #expect(g.heap === heap)
        }
        for (c, e) in copies { #expect(c.elementsEqual(e)) }
    }

    @Test func collectionLaws() {
        for n in [0, 1, 5, 100, 1000] {
            let g = GrowableArray(0..<n)
            #expect(g.count == g.distance(from: g.startIndex, to: g.endIndex))
            #expect(Array(g.indices) == Array(0..<n))
            #expect(g.indices.map { g[$0] } == Array(g))
            #expect(g.reversed().elementsEqual((0..<n).reversed()))
            #expect(g.withContiguousStorageIfAvailable { $0.count } == n)
            if n > 2 { #expect(Array(g[1..<3]) == [1, 2]) }
        }
    }

    @Test func initializersTakeAHeap() {
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        let a = GrowableArray([1, 2, 3], heap: heap)
        #expect(a.heap === heap && Array(a) == [1, 2, 3])
        #expect(a.capacity == SliceGrowth.grow(oldCapacity: 0, needed: 3, elementSize: 8).capacity, "append([]int(nil), xs...)")
        #expect(GrowableArray(repeating: "x", count: 2, heap: heap).heap === heap)
        #expect(GrowableArray<Int>(capacity: 5, heap: heap).heap === heap)
        #expect(GrowableArray(0..<10).heap === Heap.shared)
        let f = a.filter { $0 != 2 }
        #expect(Array(f) == [1, 3] && f.heap === heap && type(of: f) == GrowableArray<Int>.self)
        var b = a + [4]
        b += [5]
        #expect(Array(b) == [1, 2, 3, 4, 5] && b.heap === heap)
    }

    @Test func hashableAndEquatable() {
        let x = GrowableArray(["a", "b"])
        var y = GrowableArray<String>(capacity: 100)       // another capacity, another growth history
        y.append("a"); y.append("b")
        #expect(x == y && x.hashValue == y.hashValue && x.capacity != y.capacity)
        #expect(x.hashValue == ["a", "b"].hashValue, "the same hashing as Array")
        #expect(Set([x, y]).count == 1)
        y.append("c")
        #expect(x != y)
    }

    @Test func codableRoundTripLikeArray() throws {
        let words = ["a", "quote\"", ""]
        let g = GrowableArray(words)
        let data = try JSONEncoder().encode(g)
        #expect(data == (try JSONEncoder().encode(words)))
        let back = try JSONDecoder().decode(GrowableArray<String>.self, from: data)
        #expect(back == g)
        #expect(back.capacity == SliceGrowth.grow(oldCapacity: 0, needed: 3, elementSize: GrowableArray<String>.elementSize).capacity)
        #expect(try JSONDecoder().decode([String].self, from: data) == words)
        let nested = GrowableArray([GrowableArray([1, 2]), GrowableArray<Int>()])
        #expect(try JSONDecoder().decode(GrowableArray<GrowableArray<Int>>.self, from: JSONEncoder().encode(nested)) == nested)
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        let d = JSONDecoder()
        d.userInfo[GoCollectionsCoding.heapKey] = heap
        let h = try d.decode(GrowableArray<Int>.self, from: Data("[1,2,3]".utf8))
        #expect(h.heap === heap && h.withUnsafeBufferPointer { heap.owns($0.baseAddress!) })
        // Nested containers decode into the same heap.
        let nestedInHeap = try d.decode(IncrementalMap<String, GrowableArray<Int>>.self, from: Data(#"{"a":[1,2],"b":[]}"#.utf8))
        #expect(nestedInHeap.heap === heap && nestedInHeap["a"]!.heap === heap && Array(nestedInHeap["a"]!) == [1, 2])
    }

    @Test func descriptionsLikeArray() {
        let s = GrowableArray(["a", "b"])
        #expect(s.description == ["a", "b"].description && s.description == #"["a", "b"]"#)
        #expect(s.debugDescription == ["a", "b"].debugDescription)
        #expect(GrowableArray([1, 2]).description == "[1, 2]")
        #expect(GrowableArray<Int>().description == [Int]().description)
        #expect(GrowableArray<Int?>([nil, 1]).description == [nil, 1 as Int?].description)
        #expect(Mirror(reflecting: s).displayStyle == .collection && Mirror(reflecting: s).children.count == 2)
    }
}
