import Testing
import Foundation
import GoHeap
@testable import GoCollections

/// Issue 13: IncrementalMap encodes and decodes as Dictionary does.
@Suite struct IncrementalMapCodableTests {
    struct Point: Hashable, Codable { var x: Int, y: Int }
    enum Color: String, Codable, CodingKeyRepresentable { case red, green }

    static func json<T: Encodable>(_ v: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return String(decoding: try e.encode(v), as: UTF8.self)
    }

    @Test func codableRoundTripLikeDictionary() throws {
        let strings: [String: [Int]] = ["a": [1], "b": [2, 3], "quote\"": []]
        let ints: [Int: String] = [1: "x", -2: "y", 300: "z"]
        let points: [Point: Int] = [Point(x: 1, y: 2): 3, Point(x: -1, y: 0): 4]
        let colors: [Color: Int] = [.red: 1, .green: 2]
        let ms = IncrementalMap(uniqueKeysWithValues: strings.map { ($0.key, $0.value) })
        let mi = IncrementalMap(uniqueKeysWithValues: ints.map { ($0.key, $0.value) })
        let mp = IncrementalMap(uniqueKeysWithValues: points.map { ($0.key, $0.value) })
        let mc = IncrementalMap(uniqueKeysWithValues: colors.map { ($0.key, $0.value) })
        // Keyed forms: the same JSON as Dictionary's.
        #expect(try Self.json(ms) == Self.json(strings))
        #expect(try Self.json(mi) == Self.json(ints))
        #expect(try Self.json(mc) == Self.json(colors))
        // Round trips, and across the two types in both directions.
        let dec = JSONDecoder()
        #expect(try dec.decode(IncrementalMap<String, [Int]>.self, from: JSONEncoder().encode(ms)) == ms)
        #expect(try dec.decode(IncrementalMap<Int, String>.self, from: JSONEncoder().encode(ints)) == mi)
        #expect(try dec.decode([Int: String].self, from: JSONEncoder().encode(mi)) == ints)
        #expect(try dec.decode(IncrementalMap<Color, Int>.self, from: JSONEncoder().encode(colors)) == mc)
        // Unkeyed form: alternating keys and values, readable by Dictionary.
        let pointJSON = try JSONEncoder().encode(mp)
        #expect(try dec.decode([Point: Int].self, from: pointJSON) == points)
        #expect(try dec.decode(IncrementalMap<Point, Int>.self, from: JSONEncoder().encode(points)) == mp)
        let array = try JSONSerialization.jsonObject(with: pointJSON) as! [Any]
        #expect(array.count == 4)
        // A heap in userInfo is the decoded map's heap.
        let heap = Heap(configuration: HeapConfiguration(backgroundScavenging: false))
        let withHeap = JSONDecoder()
        withHeap.userInfo[GoCollectionsCoding.heapKey] = heap
        let h = try withHeap.decode(IncrementalMap<String, [Int]>.self, from: Data(#"{"a":[1,2],"b":[]}"#.utf8))
        #expect(h.heap === heap && h["a"] == [1, 2] && h["b"] == [])
        // Dictionary's errors.
        #expect(throws: DecodingError.self) { try dec.decode(IncrementalMap<Point, Int>.self, from: Data(#"[{"x":1,"y":2}]"#.utf8)) }
        #expect(throws: DecodingError.self) { try dec.decode(IncrementalMap<Int, Int>.self, from: Data(#"{"one":1}"#.utf8)) }
        #expect(try dec.decode(IncrementalMap<Int, Int>.self, from: Data("{}".utf8)).isEmpty)
    }
}
