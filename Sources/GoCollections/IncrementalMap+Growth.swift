// IncrementalMap+Growth: how the table grows. The next doubling's array is
// allocated and faulted in ahead of the trigger, overflow buckets are handed
// out and counted as Go counts them, and a growth moves old buckets into the
// new array a few per write. See IncrementalMap.swift for the design.

import CShims
import GoHeap
#if canImport(Glibc)
import Glibc
#endif

extension _MapStorage {
    // MARK: preparing the next doubling's array
    //
    // A doubling's writes land on random buckets of the new array from its
    // first write on, so an array fresh from the OS would be faulted in by
    // them: on the huge path a write that is first to touch a 2 MiB page pays
    // for the kernel clearing it (milliseconds on a virtual machine, where the
    // host faults too), and the first writes of a growth would pay for many.
    // So when the count comes within a window of the growth trigger, the map
    // allocates the next doubling's array ahead (the same allocation the
    // doubling would make) and every write touches up to
    // prefaultBytesPerWrite of it, one store per 4 KiB page, until all of it
    // is touched. The window is twice the writes that takes, so the array is
    // normally fully faulted in before the trigger and the doubling's writes
    // fault nothing. Only arrays of prefaultMinimumBytes and more are
    // prepared. The trigger, B and the array's size stay Go's; only the time
    // the array is allocated moves (by a fraction of a percent of the
    // inserts). A map whose count stays inside the window keeps the prepared
    // array until it grows or dies. Same-size growths (which nothing
    // predicts) and tables made at their final size are faulted in by their
    // writes as before, a bounded number of buckets per write.

    /// Picks the count at which preparing the next doubling's array starts.
    @inlinable func planPrefault() {
        let (_, bytes) = bucketArrayShape(b &+ 1)
        guard bytes >= MapConstants.prefaultMinimumBytes else {
            prefaultStart = Int.max
            return
        }
        let perWrite = MapConstants.prefaultBytesPerWrite
        let writes = (bytes + perWrite - 1) / perWrite
        prefaultStart = growthThreshold - 2 * writes - 64
    }

    /// One write's share of preparing the next array: allocate it on the
    /// first call, then touch up to prefaultBytesPerWrite of it.
    @inlinable @inline(never) func prefaultStep() {
        let shift = b &+ 1
        if nextArray == nil || nextArrayShift != shift {
            if let stale = nextArray { heap.deallocate(stale) }
            let (p, n, usable) = makeBucketArray(shift, zeroed: false)
            nextArray = p
            nextArrayShift = shift
            nextArrayBuckets = n
            nextArrayUsable = usable
            nextArrayTouched = 0
        }
        let end = nextArrayBuckets &* layout.size
        var off = nextArrayTouched
        if off >= end { return }
        let p = nextArray.unsafelyUnwrapped
        let stop = Swift.min(end, off &+ MapConstants.prefaultBytesPerWrite)
        let page = 4096
        // The array is allocated but unused (not even cleared): any byte may
        // be written. One store per page faults it in.
        while off < stop {
            (p + off).storeBytes(of: 0, as: UInt8.self)
            off = (off &+ page) & ~(page &- 1)
        }
        let touched = Swift.min(off, end)
        prefaultBytesTouched &+= touched &- nextArrayTouched
        prefaultMaxPerWrite = Swift.max(prefaultMaxPerWrite, touched &- nextArrayTouched)
        nextArrayTouched = touched
    }

    /// The array for a doubling to `shift`: the prepared one if there is one.
    @inlinable func takeNextArray(_ shift: Int) -> (UnsafeMutableRawPointer, Int, Int) {
        if let p = nextArray {
            nextArray = nil
            if nextArrayShift == shift {
                preparedGrowths &+= 1
                if nextArrayTouched >= nextArrayBuckets &* layout.size { fullyTouchedGrowths &+= 1 }
                return (p, nextArrayBuckets, nextArrayUsable)
            }
            heap.deallocate(p)
        }
        return makeBucketArray(shift, zeroed: false)
    }

    /// Go's newoverflow: a preallocated bucket if any is left, else a new one.
    @inlinable func newOverflow(after bk: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        let ovf: UnsafeMutableRawPointer
        if nextPrealloc < allocatedBuckets, let cur = buckets {
            ovf = bucket(cur, nextPrealloc)
            nextPrealloc += 1
            memset(ovf, 0, layout.size)  // the array may not have been cleared up front
        } else {
            ovf = heap.allocateZeroed(byteCount: layout.size, alignment: max(8, MemoryLayout<Key>.alignment, MemoryLayout<Value>.alignment))
            separateOverflows &+= 1
        }
        incrNoverflow()
        setOverflow(bk, ovf)
        return ovf
    }

    /// Go's incrnoverflow: exact below B = 16, then counted with probability
    /// 1 / 2^(B-15) so a 16-bit counter suffices.
    @inlinable func incrNoverflow() {
        if b < 16 { noverflow += 1; return }
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        let mask = (UInt64(1) << UInt64(b - 15)) - 1
        if rng & mask == 0 { noverflow += 1 }
    }

    /// The count above which a new key starts a doubling (Go's overLoadFactor).
    @inlinable @inline(__always) var growthThreshold: Int { MapConstants.growthThreshold(bucketShift: b) }

    @inlinable func tooManyOverflowBuckets() -> Bool {
        noverflow >= 1 &<< min(b, 15)
    }

    // MARK: growth

    /// Go's hashGrow: allocate the new array; entries move later.
    @inlinable func hashGrow() {
        let bigger = MapConstants.overLoadFactor(count: count + 1, bucketShift: b)
        sameSizeGrow = !bigger
        oldBuckets = buckets
        oldAllocatedBuckets = allocatedBuckets
        if bigger {
            b += 1
            let (p, n, usable) = takeNextArray(b)
            install(p, buckets: n, usable: usable, shift: b)
        } else {
            installNewArray(b, zeroed: false)
        }
        nevacuate = 0
        noverflow = 0
        age &+= 1
        growths += 1
        insertsSinceGrowthStart = 0
    }

    /// Moves the entries of old bucket `oldIndex` (and its chain) to the new
    /// table: to the same index, or for a doubling, to index + 2^oldB when the
    /// new hash bit is set.
    @inlinable func evacuate(_ oldIndex: Int) {
        guard let old = oldBuckets, let cur = buckets else { return }
        let ob = bucket(old, oldIndex)
        let newbit = 1 &<< oldB
        if !isEvacuated(ob) {
            // Destinations: x (same index) and, when doubling, y (index + 2^oldB).
            // Nothing has used them yet (writes to them evacuate this bucket
            // first), so they are cleared here rather than when the array was made.
            let xb = bucket(cur, oldIndex)
            let yb = sameSizeGrow ? xb : bucket(cur, oldIndex + newbit)
            memset(xb, 0, layout.size)
            if !sameSizeGrow { memset(yb, 0, layout.size) }
            // Which half an entry goes to (y: 1) is a coin toss, so the
            // destinations are picked by indexing, not by a branch: a
            // mispredicted branch would also discard the next entry's
            // hashing, which otherwise overlaps this one's moves. dest[h] is
            // half h's current bucket, dest[2 + h] its next free slot.
            let yMask = sameSizeGrow ? 0 : UInt(newbit)
            withUnsafeTemporaryAllocation(of: Int.self, capacity: 4) { dest in
                dest[0] = Int(bitPattern: xb)
                dest[1] = Int(bitPattern: yb)
                dest[2] = 0
                dest[3] = 0
                var chain: UnsafeMutableRawPointer? = ob
                while let c = chain {
                    let th = tophash(c)
                    let w = tophashWord(c)
                    var marks = UInt64(evacuatedEmpty) &* 0x0101_0101_0101_0101
                    var m = Self.occupied(w)
                    while m != 0 {
                        let i = Self.firstSlot(m)
                        m &= m &- 1
                        let y = yMask == 0 ? 0 : Int(truncatingIfNeeded: (hash(keyPtr(c, i).pointee) & yMask) &>> UInt(oldB))
                        // evacuatedEmpty (4) becomes evacuatedX (2) or evacuatedY (3).
                        marks &-= UInt64(truncatingIfNeeded: 2 &- y) &<< (i &* 8)
                        var db = UnsafeMutableRawPointer(bitPattern: dest[y]).unsafelyUnwrapped
                        var di = dest[2 &+ y]
                        if _slowPath(di == 8) {
                            db = newOverflow(after: db)
                            dest[y] = Int(bitPattern: db)
                            di = 0
                        }
                        tophash(db)[di] = th[i]
                        // Move the slot contents: the inline key and value, or their box pointers.
                        keySlot(db, di).copyMemory(from: keySlot(c, i), byteCount: layout.keySlot)
                        valueSlot(db, di).copyMemory(from: valueSlot(c, i), byteCount: layout.valueSlot)
                        dest[2 &+ y] = di &+ 1
                    }
                    c.storeBytes(of: marks.littleEndian, as: UInt64.self)
                    let next = overflow(c)
                    if c != ob && isSeparate(c, array: old, allocated: oldAllocatedBuckets) {
                        heap.deallocate(c)
                        separateOverflows &-= 1
                    }
                    chain = next
                }
            }
            setOverflow(ob, nil)
            age &+= 1
        }
        if oldIndex == nevacuate { advanceEvacuationMark(newbit) }
    }

    @inlinable func advanceEvacuationMark(_ oldCount: Int) {
        nevacuate += 1
        let stop = nevacuate + 1024
        while nevacuate != stop && nevacuate != oldCount && isEvacuated(bucket(oldBuckets!, nevacuate)) {
            nevacuate += 1
        }
        if nevacuate == oldCount {
            heap.deallocate(oldBuckets!)
            oldBuckets = nil
            oldAllocatedBuckets = 0
            sameSizeGrow = false
            maxDrainInserts = max(maxDrainInserts, insertsSinceGrowthStart)
        }
    }
}
