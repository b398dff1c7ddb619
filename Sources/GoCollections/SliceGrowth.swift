// The growth core: how much capacity a slice gets when it must grow.
//
// This is the only place GoCollections decides a slice's capacity. It is not
// generic: like Go's growslice it takes the element size at run time, so the
// generic GrowableArray, the untyped RawGrowableArray and the tools all share
// one rule. The rule is go1.19's:
//
//   1. needed > 2 * old capacity:       new = needed
//   2. old capacity < 256:              new = 2 * old capacity
//   3. otherwise repeat new += (new + 3 * 256) / 4 until new >= needed
//      (a smooth slide from doubling to 1.25x growth)
//   4. bytes = SizeClasses.roundUp(new * elementSize), i.e. the size class for
//      small slices, whole 8 KiB pages above 32 KiB; new = bytes / elementSize.
//
// Elements of size 0 take no memory: the capacity is exactly the needed
// length. A byte count the heap can never serve is a fatal error naming the
// length and element size, never a wrapped-around capacity.

import GoHeap

/// One decision of the growth core.
public struct SliceGrowthDecision: Sendable, Equatable {
    /// The capacity after growth, in elements.
    public let capacity: Int
    /// Bytes to allocate (capacity * elementSize after rounding; 0 for size-0 elements).
    public let byteCount: Int
}

/// A growth as it happened, for tools and tests.
public struct SliceGrowthEvent: Sendable, Equatable {
    public let elementSize: Int
    /// Length before the operation that grew the slice.
    public let oldLength: Int
    public let oldCapacity: Int
    /// Length the operation needed.
    public let neededLength: Int
    public let newCapacity: Int
    /// Bytes allocated for the new backing array.
    public let byteCount: Int
    /// Bytes copied from the old backing array.
    public let bytesCopied: Int
    /// How GoHeap served the allocation (nil for size-0 elements: no allocation).
    public let path: AllocationPath?
}

public enum SliceGrowth {
    /// Go's threshold between doubling and 1.25x growth, in elements.
    public static let threshold = 256

    /// The capacity Go's append gives a slice of `elementSize`-byte elements with
    /// capacity `oldCapacity` that must hold `needed` elements.
    public static func grow(oldCapacity: Int, needed: Int, elementSize: Int) -> SliceGrowthDecision {
        if needed < 0 || oldCapacity < 0 || elementSize < 0 {
            growthFatal("growth with a negative argument: needed length \(needed), old capacity \(oldCapacity), element size \(elementSize)")
        }
        if elementSize == 0 { return SliceGrowthDecision(capacity: needed, byteCount: 0) }
        var newcap = oldCapacity
        let doublecap = oldCapacity &+ oldCapacity
        if needed > doublecap || doublecap < 0 {
            newcap = needed
        } else if oldCapacity < threshold {
            newcap = doublecap
        } else {
            while 0 < newcap && newcap < needed {
                newcap &+= (newcap &+ 3 &* threshold) / 4
            }
            if newcap <= 0 { newcap = needed }  // the loop overflowed
        }
        let (bytes, overflow) = newcap.multipliedReportingOverflow(by: elementSize)
        if overflow || bytes > heapMaxAllocation {
            growthFatal("cannot grow a slice to \(needed) elements of \(elementSize) bytes: \(overflow ? "the byte count overflows" : "\(bytes) bytes exceed the largest allocation (\(heapMaxAllocation) bytes)")")
        }
        let rounded = SizeClasses.roundUp(byteCount: bytes)
        return SliceGrowthDecision(capacity: rounded / elementSize, byteCount: rounded)
    }

    /// The bytes Go's make allocates for exactly `count` elements (make keeps
    /// the capacity it was given; only the allocation is rounded).
    public static func makeBytes(count: Int, elementSize: Int) -> Int {
        if count < 0 { growthFatal("make with negative capacity \(count)") }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: elementSize)
        if overflow || bytes > heapMaxAllocation {
            growthFatal("cannot make a slice of \(count) elements of \(elementSize) bytes: \(overflow ? "the byte count overflows" : "\(bytes) bytes exceed the largest allocation (\(heapMaxAllocation) bytes)")")
        }
        return bytes
    }

    // MARK: observing growths

    /// Installs a process-wide observer called after every growth of any
    /// GrowableArray or RawGrowableArray (nil removes it). For tools; growths
    /// are rare (logarithmic in the length), so the check costs nothing per append.
    public static func setObserver(_ observer: (@Sendable (SliceGrowthEvent) -> Void)?) {
        observerBox.withLock { $0 = observer }
    }

    static let observerBox = ObserverBox()

    static func report(_ e: SliceGrowthEvent) {
        if let o = observerBox.withLock({ $0 }) { o(e) }
    }
}

/// A tiny lock for the observer (GoCollections has no dependency beyond GoHeap).
final class ObserverBox: @unchecked Sendable {
    private var value: (@Sendable (SliceGrowthEvent) -> Void)?
    // A pthread mutex (which ThreadSanitizer understands) at a fixed address.
    private let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let p = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(p, nil)
        return p
    }()
    func withLock<R>(_ body: (inout (@Sendable (SliceGrowthEvent) -> Void)?) -> R) -> R {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return body(&value)
    }
}

@inline(never)
func growthFatal(_ message: String) -> Never {
    var text = "fatal error: GoCollections: " + message + "\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    abort()
}

#if canImport(Glibc)
import Glibc
#endif
