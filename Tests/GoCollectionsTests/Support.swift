import Foundation
@_exported import TestSupport

func fixture(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources") else {
        throw CocoaError(.fileNoSuchFile)
    }
    return try String(contentsOf: url, encoding: .utf8)
}

/// One line of slices.txt: "SIZE PATTERN A B C".
struct SliceLine: Equatable, CustomStringConvertible {
    let size: Int
    let pattern: String
    let a: String
    let b: Int
    let c: Int
    var description: String { "\(size) \(pattern) \(a) \(b) \(c)" }
}

func sliceLines(_ file: String) throws -> [Int: [SliceLine]] {
    var bySize: [Int: [SliceLine]] = [:]
    for line in try fixture(file).split(separator: "\n") {
        let f = line.split(separator: " ").map(String.init)
        guard f.count == 5, let size = Int(f[0]), let b = Int(f[3]), let c = Int(f[4]) else { continue }
        bySize[size, default: []].append(SliceLine(size: size, pattern: f[1], a: f[2], b: b, c: c))
    }
    return bySize
}

/// Counts deinitializations of tracked objects.
final class DeinitCounter: @unchecked Sendable {
    var count = 0
}

final class Tracked: Hashable {
    let value: Int
    let counter: DeinitCounter
    init(_ value: Int, _ counter: DeinitCounter) { self.value = value; self.counter = counter }
    deinit { counter.count += 1 }
    static func == (a: Tracked, b: Tracked) -> Bool { a.value == b.value }
    func hash(into h: inout Hasher) { h.combine(value) }
}

/// Runs `body` on `x` in place: passing `&map[key]` here goes through the
/// subscript's _modify accessor.
func inoutApply<T>(_ x: inout T, _ body: (inout T) -> Void) { body(&x) }
