import Foundation
import GoHeap
@_exported import TestSupport

/// A fixture copied from ../shared/oracle into the test bundle.
func fixture(_ name: String) throws -> String {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources") else {
        throw FixtureError.missing(name)
    }
    return try String(contentsOf: url, encoding: .utf8)
}

enum FixtureError: Error { case missing(String) }

/// Fills a block with a pattern derived from its address and a tag.
func fill(_ p: UnsafeMutableRawPointer, _ n: Int, tag: UInt8) {
    let b = p.assumingMemoryBound(to: UInt8.self)
    let seed = UInt8(truncatingIfNeeded: UInt(bitPattern: p) >> 4) &+ tag
    for i in 0..<n { b[i] = seed &+ UInt8(truncatingIfNeeded: i) }
}

/// True if the block still holds the pattern written by fill.
func check(_ p: UnsafeMutableRawPointer, _ n: Int, tag: UInt8) -> Bool {
    let b = p.assumingMemoryBound(to: UInt8.self)
    let seed = UInt8(truncatingIfNeeded: UInt(bitPattern: p) >> 4) &+ tag
    for i in 0..<n where b[i] != seed &+ UInt8(truncatingIfNeeded: i) { return false }
    return true
}

/// A heap for one test, without the background scavenger so counts are stable.
func makeTestHeap(_ config: HeapConfiguration = HeapConfiguration(backgroundScavenging: false)) -> Heap {
    Heap(configuration: config)
}
