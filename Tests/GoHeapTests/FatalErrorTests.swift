import Testing
import Foundation

/// Each misuse runs in a subprocess (goheap-testhelper) that must abort with a
/// "fatal error: goheap:" message naming what was wrong.
@Suite struct FatalErrorTests {
    static func run(_ scenario: String) throws -> (status: Int32, signaled: Bool, output: String) {
        try TestHelper.run(scenario)
    }

    @Test(arguments: [
        ("double-free-small", ["double free of 0x", "size class 5", "48 B objects"]),
        ("double-free-most-recent", ["double free of 0x", "object 299 ", "size class 3"]),
        ("double-free-old-span", ["double free of 0x", "object 3 ", "size class 2"]),
        ("double-free-remote", ["double free of 0x", "size class 15", "208 B objects"]),
        ("double-free-large", ["invalid free of 0x", "is free", "double free"]),
        ("double-free-huge", ["invalid free of 0x", "is free", "double free"]),
        ("interior-pointer", ["invalid free of 0x", "interior pointer", "object 0 of span"]),
        ("interior-pointer-large", ["invalid free of 0x", "interior pointer", "large object"]),
        ("foreign-malloc", ["invalid free of 0x", "not in any arena of this heap"]),
        ("foreign-other-heap", ["invalid free of 0x", "not in any arena of this heap"]),
        ("foreign-above-48-bits", ["invalid free of 0x10", "not in any arena of this heap"]),
        ("negative-size", ["allocate(byteCount:alignment:): byteCount -5 is negative"]),
        ("bad-alignment", ["alignment 24 is not a positive power of two"]),
        ("zero-alignment", ["alignment 0 is not a positive power of two"]),
        ("too-large", ["byteCount 9223372036854775807 exceeds the largest possible allocation"]),
        ("out-of-memory", ["tryAllocate returned nil", "out of memory", "request of 8589934592 bytes"]),
        ("usable-size-foreign", ["usableSize(of:) of 0x", "not in any arena"]),
        ("numa-bind-missing-node", [".bind(node: 7) names a node this machine does not have", "(nodes 0"]),
        ("numa-prefer-missing-node", [".preferred(node: 4096) names a node this machine does not have", "(nodes 0"]),
    ])
    func misuseIsFatalWithAClearMessage(scenario: String, expected: [String]) throws {
        let r = try Self.run(scenario)
        #expect(r.signaled, "\(scenario): should abort, exited \(r.status): \(r.output)")
        #expect(r.status == SIGABRT, "\(scenario): signal \(r.status)")
        #expect(r.output.contains("fatal error: goheap: "), "\(scenario): \(r.output)")
        for e in expected { #expect(r.output.contains(e), "\(scenario): missing '\(e)' in: \(r.output)") }
        #expect(!r.output.contains("no error was detected"))
    }
}
