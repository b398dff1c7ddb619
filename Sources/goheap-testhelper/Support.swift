// Small tools shared by the helper's scenarios: arguments, threads, a seeded
// PRNG, and output that survives an abort (stdout is flushed at every line).
import CShims
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The value after `--name` on the command line, or `def`.
func intArgument(_ name: String, default def: Int) -> Int {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: "--" + name), i + 1 < args.count else { return def }
    guard let v = Int(args[i + 1]) ?? UInt64(args[i + 1]).map({ Int(truncatingIfNeeded: $0) }) else {
        print("bad value for --\(name): \(args[i + 1])")
        exit(64)
    }
    return v
}

/// True if `--name` appears on the command line.
func flagArgument(_ name: String) -> Bool { CommandLine.arguments.contains("--" + name) }

/// Prints a line and flushes stdout, so it is not lost if the process aborts.
func say(_ s: String) {
    print(s)
    fflush(nil)
}

/// Writes a line to stderr with a raw write (no buffering).
func writeStderr(_ s: String) {
    var text = s + "\n"
    text.withUTF8 { buf in
        var off = 0
        while off < buf.count {
            let n = write(2, buf.baseAddress! + off, buf.count - off)
            if n <= 0 { break }
            off += n
        }
    }
}

/// Deterministic PRNG (SplitMix64), the same generator as TestSupport's.
struct HelperRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    /// Uniform in range.
    mutating func inRange(_ r: ClosedRange<Int>) -> Int { r.lowerBound + below(r.upperBound - r.lowerBound + 1) }
    /// True with probability num/den.
    mutating func chance(_ num: Int, _ den: Int) -> Bool { below(den) < num }
}

/// A joinable pthread running `body`.
func spawnThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    final class Box { let f: @Sendable () -> Void; init(_ f: @escaping @Sendable () -> Void) { self.f = f } }
    var t = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&t, nil, { arg in
        Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().f()
        return nil
    }, box)
    if rc != 0 {
        writeStderr("pthread_create failed: \(rc)")
        _exit(70)
    }
    return t
}

func joinThread(_ t: pthread_t) { pthread_join(t, nil) }

/// A counting semaphore (POSIX), for "a worker finished" wake-ups.
final class Semaphore: @unchecked Sendable {
    private let sem = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    init() { sem_init(sem, 0, 0) }
    func signal() { sem_post(sem) }
    func wait() { while sem_wait(sem) != 0 {} }
}

/// Aborts the process with a message if it is still running after `seconds`:
/// a hang guard so a deadlock shows up as a failure instead of a stuck test.
func startWatchdog(seconds: Int, what: String) {
    guard seconds > 0 else { return }
    _ = spawnThread {
        var left = UInt32(seconds)
        while left > 0 { left = sleep(left) }
        writeStderr("watchdog: \(what) still running after \(seconds) s (deadlock?)")
        abort()
    }
}

/// Counts completed steps of a scenario, for startStallWatchdog.
final class Progress: @unchecked Sendable {
    let count = Atomic<Int>(0)
    func step() { count.wrappingAdd(1, ordering: .relaxed) }
}

/// Aborts the process with a message if `progress` has not moved for
/// `seconds`: a deadlock shows up within that time whatever the run's length
/// and however much a sanitizer slows it down.
func startStallWatchdog(_ progress: Progress, seconds: Int, what: String) {
    guard seconds > 0 else { return }
    _ = spawnThread {
        var last = -1
        var still = 0
        while true {
            sleep(1)
            let now = progress.count.load(ordering: .relaxed)
            still = now == last ? still + 1 : 0
            last = now
            if still >= seconds {
                writeStderr("watchdog: \(what) made no progress for \(seconds) s after \(now) steps (deadlock?)")
                abort()
            }
        }
    }
}

/// Monotonic milliseconds.
func nowMillis() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// A lock around a value, on a pthread mutex: ThreadSanitizer intercepts
/// pthread_mutex_lock, so it sees the ordering this lock gives (it does not
/// see Synchronization.Mutex's futex on Linux, and would report the harness's
/// own guarded state as racing).
final class SharedState<State>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var state: State

    init(_ state: State) {
        self.state = state
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func withLock<R>(_ body: (inout State) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
