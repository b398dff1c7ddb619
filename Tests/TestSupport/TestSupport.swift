// Helpers shared by the test targets.
import Foundation
import CShims

/// Runs each body on its own pthread and joins them all. pthread_join returns
/// after the thread has terminated, so thread-exit hooks have run.
public func runOnThreads(_ bodies: [@Sendable () -> Void]) {
    final class Box { let f: @Sendable () -> Void; init(_ f: @escaping @Sendable () -> Void) { self.f = f } }
    var threads: [pthread_t] = []
    for b in bodies {
        var t = pthread_t()
        let box = Unmanaged.passRetained(Box(b)).toOpaque()
        let rc = pthread_create(&t, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.f()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}

/// Deterministic PRNG (SplitMix64) so failures reproduce.
public struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Executables of this package (goheap-testhelper, gomem), built next to the test bundle.
public enum TestHelper {
    public static func executable(_ name: String) -> URL {
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path),
              dir.path != "/" {
            dir = dir.deletingLastPathComponent()
        }
        return dir.appendingPathComponent(name)
    }

    /// Runs one goheap-testhelper scenario; returns its exit status, whether a
    /// signal ended it, and its output (stdout and stderr together).
    public static func run(_ scenario: String) throws -> (status: Int32, signaled: Bool, output: String) {
        try runExecutable("goheap-testhelper", [scenario])
    }

    /// Runs an executable of the package with arguments.
    public static func runExecutable(_ name: String, _ args: [String], stderrSeparately: Bool = false)
        throws -> (status: Int32, signaled: Bool, output: String)
    {
        let p = Process()
        p.executableURL = executable(name)
        p.arguments = args
        // A helper that aborts on purpose must not start the Swift runtime's
        // backtracer: it adds nothing the tests read, and under the sanitizers
        // it can hang holding the output pipe open.
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = stderrSeparately ? FileHandle.nullDevice : pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, p.terminationReason == .uncaughtSignal, String(decoding: data, as: UTF8.self))
    }
}

/// The lines of /proc/self/smaps for the mapping that holds `addr`, its
/// header line first (without newlines), or nil if no mapping holds it.
/// Read with stdio: /proc files report size 0, and readers that trust the
/// size get nothing.
public func smapsBlock(containing addr: UInt) -> [String]? {
    guard let f = fopen("/proc/self/smaps", "r") else { return nil }
    defer { fclose(f) }
    var buf: UnsafeMutablePointer<CChar>?
    var cap = 0
    defer { free(buf) }
    var block: [String]?
    while getline(&buf, &cap, f) > 0, let b = buf {
        let line = String(cString: b).trimmingCharacters(in: .newlines)
        let head = line.split(separator: " ").first ?? ""
        let range = head.split(separator: "-")
        if !head.hasSuffix(":"), range.count == 2, let lo = UInt(range[0], radix: 16), let hi = UInt(range[1], radix: 16) {
            if block != nil { break }
            if lo <= addr && addr < hi { block = [] }
        }
        block?.append(line)
    }
    return block
}
