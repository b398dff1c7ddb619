// HeapBlock: an allocation as a value that may cross threads and tasks.
//
// Raw pointers are not Sendable: the compiler cannot know who owns the memory
// behind them, so Swift 6 refuses to let one cross an isolation boundary
// (a Mutex-guarded array of pointers fails with "'inout sending' parameter
// cannot be task-isolated"). Handing a block to another thread to free is
// exactly what a heap with cross-thread frees is for, so the block gets a
// Sendable handle: an address and a size, with nothing to retain. The handle
// makes no promise the compiler can check: whoever holds it owns the memory,
// may read and write it, and frees it once. Freeing it twice is caught as
// any double free is.

/// An allocation of a ``Heap``, as a `Sendable` value that can be passed to
/// another thread or task (for example to be freed there).
@frozen
public struct HeapBlock: Sendable, Hashable {
    /// The block's address.
    public let address: UInt
    /// The bytes that were asked for (the usable size may be larger).
    public let byteCount: Int

    /// Wraps memory obtained from a heap.
    @inlinable
    public init(_ pointer: UnsafeMutableRawPointer, byteCount: Int) {
        self.address = UInt(bitPattern: pointer)
        self.byteCount = byteCount
    }

    /// The block's memory.
    @inlinable
    public var pointer: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped }

    /// The block's memory as a buffer of `byteCount` bytes.
    @inlinable
    public var bytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: byteCount) }
}

extension Heap {
    /// Allocates `byteCount` bytes as a ``HeapBlock`` (see
    /// ``allocate(byteCount:alignment:noscan:)``).
    @inlinable
    public func allocateBlock(byteCount: Int, alignment: Int = 8, noscan: Bool = false) -> HeapBlock {
        HeapBlock(allocate(byteCount: byteCount, alignment: alignment, noscan: noscan), byteCount: byteCount)
    }

    /// Frees a block, from any thread. Traps like ``deallocate(_:)-(UnsafeMutableRawPointer)`` on a
    /// block that is not live in this heap.
    @inlinable
    public func deallocate(_ block: HeapBlock) {
        deallocate(block.pointer)
    }
}
