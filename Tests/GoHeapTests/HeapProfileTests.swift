import Testing
import Foundation
import Synchronization
@testable import GoHeap

// Allocation sites with distinct names, kept out of line so each is a frame
// of its own on the captured stacks.
@inline(never) func profileSiteSmall(_ heap: Heap, _ n: Int) -> [UInt] {
    (0..<n).map { _ in UInt(bitPattern: heap.allocate(byteCount: 48)) }
}
@inline(never) func profileSiteMedium(_ heap: Heap, _ n: Int) -> [UInt] {
    (0..<n).map { _ in UInt(bitPattern: heap.allocate(byteCount: 1000)) }
}
@inline(never) func profileSiteLarge(_ heap: Heap, _ n: Int) -> [UInt] {
    (0..<n).map { _ in UInt(bitPattern: heap.allocate(byteCount: 100_000)) }
}
@inline(never) func profileSiteHotPair(_ heap: Heap, _ n: Int, size: Int) {
    for _ in 0..<n {
        let p = heap.allocate(byteCount: size)
        p.storeBytes(of: 1, as: UInt8.self)
        heap.deallocate(p)
    }
}

func freeAll(_ heap: Heap, _ addrs: some Sequence<UInt>) {
    for a in addrs { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
}

/// The record counts of a heap's profile, summed per site: the first frame
/// that is not GoHeap's own, by (demangled) function name.
func profileBySite(_ heap: Heap) -> [String: HeapProfileRecord] {
    let symbols = ProfileSymbolizer()
    var out: [String: HeapProfileRecord] = [:]
    for r in heap.heapProfileRecords() {
        guard let pc = r.stack.first(where: { !ProfileSymbolizer.isInternal(symbols.frame($0 - 1).symbol) }) else {
            continue
        }
        let name = symbols.frame(pc - 1).function ?? "?"
        let key = ["profileSiteSmall", "profileSiteMedium", "profileSiteLarge", "profileSiteHotPair"]
            .first { name.contains($0) } ?? name
        var s = out[key] ?? HeapProfileRecord(stack: [], objectSize: r.objectSize, allocObjects: 0, allocBytes: 0,
                                              freeObjects: 0, freeBytes: 0)
        s.allocObjects += r.allocObjects
        s.allocBytes += r.allocBytes
        s.freeObjects += r.freeObjects
        s.freeBytes += r.freeBytes
        out[key] = s
    }
    return out
}

@Suite(.serialized) struct HeapProfileTests {
    @Test func rateOneCountsEveryAllocationPerSite() {
        let heap = makeTestHeap()
        heap.startHeapProfile(rate: 1)
        #expect(heap.heapProfileRate == 1)
        let a = profileSiteSmall(heap, 100)
        let b = profileSiteMedium(heap, 50)
        let c = profileSiteLarge(heap, 3)
        freeAll(heap, a.prefix(30))
        freeAll(heap, c.prefix(1))
        let sites = profileBySite(heap)
        let s = sites["profileSiteSmall"], m = sites["profileSiteMedium"], l = sites["profileSiteLarge"]
        #expect(s?.allocObjects == 100 && s?.allocBytes == 100 * 48)
        #expect(s?.freeObjects == 30 && s?.inUseObjects == 70 && s?.inUseBytes == 70 * 48)
        #expect(m?.allocObjects == 50 && m?.allocBytes == 50 * 1024 && m?.inUseObjects == 50)
        #expect(l?.allocObjects == 3 && l?.freeObjects == 1 && l?.objectSize == 106_496)
        freeAll(heap, a.dropFirst(30))
        freeAll(heap, b)
        freeAll(heap, c.dropFirst(1))
        let after = profileBySite(heap)
        #expect(after.values.allSatisfy { $0.inUseObjects == 0 && $0.inUseBytes == 0 })
        #expect(after["profileSiteSmall"]?.freeObjects == 100)
        heap.stopHeapProfile()
    }

    /// An allocate+free loop never refills its cache (the freed object comes
    /// straight back), and must be sampled all the same.
    @Test func sampledAtRateWithinBounds() {
        let heap = makeTestHeap()
        let rate = 64 << 10, n = 200_000, size = 256
        heap.startHeapProfile(rate: rate)
        profileSiteHotPair(heap, n, size: size)
        heap.stopHeapProfile()
        let r = profileBySite(heap)["profileSiteHotPair"]
        // Expected samples: n (1 - exp(-size/rate)) = 779.6, sd 28: bounds of about 6 sd.
        let samples = r?.allocObjects ?? 0
        #expect((600...960).contains(samples), "samples \(samples)")
        #expect(r?.inUseObjects == 0)
        // Scaled as pprof does, the estimate is the true count within the same bounds.
        let estimate = Double(samples) * HeapProfileBuilder.scale(size: size, rate: rate)
        #expect(abs(estimate - Double(n)) < 0.25 * Double(n), "estimate \(estimate)")
        #expect(heap.stats.bySize[SizeClasses.classIndex(size) - 1].mallocs == n)
    }

    @Test func offRecordsNothing() {
        let heap = makeTestHeap()
        profileSiteHotPair(heap, 10_000, size: 64)
        #expect(heap.heapProfileRate == 0)
        #expect(heap.heapProfileRecords().isEmpty)
    }

    @Test func freesFromAnotherThreadUpdateInUse() {
        let heap = makeTestHeap()
        heap.startHeapProfile(rate: 1)
        let box = Mutex<[UInt]>([])
        runOnThreads([{ box.withLock { $0 = profileSiteSmall(heap, 2000) } }])
        // The allocating thread has exited; free half here and half on two more threads.
        let all = box.withLock { $0 }
        runOnThreads([
            { freeAll(heap, all[0..<700]) },
            { freeAll(heap, all[700..<1400]) },
        ])
        freeAll(heap, all[1400...])
        let s = profileBySite(heap)["profileSiteSmall"]
        #expect(s?.allocObjects == 2000 && s?.freeObjects == 2000 && s?.inUseBytes == 0)
        heap.stopHeapProfile()
    }

    /// The owner keeps allocating into spans whose sampled objects other
    /// threads free; its own later frees are still seen (the tag is cleared
    /// and set again as samples come and go).
    @Test func ownerAndRemoteFreesInterleaved() {
        let heap = makeTestHeap()
        heap.startHeapProfile(rate: 1)
        let q = PointerQueue()
        let done = Atomic<Bool>(false)
        runOnThreads([
            {
                for i in 0..<20_000 {
                    let x = profileSiteSmall(heap, 2)
                    if i & 1 == 0 { q.push(UnsafeMutableRawPointer(bitPattern: x[0])!) } else { freeAll(heap, x[0...0]) }
                    freeAll(heap, x[1...1])
                }
                done.store(true, ordering: .releasing)
            },
            {
                while true {
                    let finished = done.load(ordering: .acquiring)
                    for p in q.popAll() { heap.deallocate(p) }
                    if finished && q.popAll().isEmpty { break }
                }
            },
        ])
        for p in q.popAll() { heap.deallocate(p) }
        let s = profileBySite(heap)["profileSiteSmall"]
        #expect(s?.allocObjects == 40_000 && s?.freeObjects == 40_000)
        heap.stopHeapProfile()
    }

    @Test func stopKeepsRecordsAndCountsLaterFrees() {
        let heap = makeTestHeap()
        heap.startHeapProfile(rate: 1)
        let a = profileSiteSmall(heap, 10)
        heap.stopHeapProfile()
        #expect(heap.heapProfileRate == 0)
        let b = profileSiteSmall(heap, 10)
        #expect(profileBySite(heap)["profileSiteSmall"]?.allocObjects == 10)
        freeAll(heap, a)
        freeAll(heap, b)
        #expect(profileBySite(heap)["profileSiteSmall"]?.freeObjects == 10)
        heap.startHeapProfile(rate: 1)
        let c = profileSiteSmall(heap, 5)
        freeAll(heap, c)
        let s = profileBySite(heap)["profileSiteSmall"]
        #expect(s?.allocObjects == 15 && s?.freeObjects == 15)
        heap.stopHeapProfile()
    }

    @Test func profileEncodingRoundTrip() throws {
        let heap = makeTestHeap()
        heap.startHeapProfile(rate: 1)
        let a = profileSiteMedium(heap, 20)
        let records = heap.heapProfileRecords()
        for compress in [false, true] {
            let gz = HeapProfileBuilder.build([(records, 1)], compress: compress)
            #expect(gz.prefix(3) == [0x1F, 0x8B, 8])
            guard !compress else { continue }
            // Stored deflate blocks: undo them by hand and check the trailer.
            var i = 10
            var data: [UInt8] = []
            while true {
                let final = gz[i] & 1 == 1
                let len = Int(gz[i + 1]) | Int(gz[i + 2]) << 8
                data += gz[(i + 5)..<(i + 5 + len)]
                i += 5 + len
                if final { break }
            }
            let crc = gz[i..<(i + 4)].enumerated().reduce(UInt32(0)) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
            #expect(crc == Gzip.crc32(data))
            let fields = decodeFields(data)
            let strings = fields.filter { $0.field == 6 }.map { String(decoding: $0.bytes, as: UTF8.self) }
            #expect(strings.first == "")
            for s in ["alloc_objects", "alloc_space", "inuse_objects", "inuse_space", "count", "bytes", "space"] {
                #expect(strings.contains(s))
            }
            #expect(strings.contains { $0.contains("profileSiteMedium") })
            #expect(fields.filter { $0.field == 1 }.count == 4)  // sample types
            #expect(fields.first { $0.field == 12 }?.value == 1)  // period
            // The sample of profileSiteMedium: values 20 objects, 20 KiB, in use the same.
            let samples = fields.filter { $0.field == 2 }.map { decodeFields($0.bytes) }
            let values = samples.compactMap { s in s.first { $0.field == 2 }.map { decodePacked($0.bytes) } }
            #expect(values.contains([20, 20 * 1024, 20, 20 * 1024]))
        }
        freeAll(heap, a)
        heap.stopHeapProfile()
    }

    @Test func writeHeapProfileFailsWithAMessage() {
        let heap = makeTestHeap()
        #expect(throws: HeapProfileError.self) { try heap.writeHeapProfile(to: "/nonexistent/dir/heap.pb.gz") }
    }

    @Test func varintsAndCRC() {
        var w = ProtoWriter()
        w.varint(300)
        #expect(w.bytes == [0xAC, 0x02])
        #expect(Gzip.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(HeapProfiler.ln(1) == 0)
        #expect(abs(HeapProfiler.ln(0.5) + 0.693_147_180_559_945_3) < 1e-12)
        #expect(abs(HeapProfiler.ln(1e-9) - Foundation.log(1e-9)) < 1e-9)
    }
}

/// Top-level fields of a protocol-buffer message: varints as values,
/// length-delimited fields as bytes.
func decodeFields(_ b: [UInt8]) -> [(field: Int, value: UInt64, bytes: [UInt8])] {
    var out: [(field: Int, value: UInt64, bytes: [UInt8])] = []
    var i = 0
    func varint() -> UInt64 {
        var v: UInt64 = 0, shift: UInt64 = 0
        while true {
            let x = b[i]; i += 1
            v |= UInt64(x & 0x7F) << shift
            if x < 0x80 { return v }
            shift += 7
        }
    }
    while i < b.count {
        let key = varint()
        switch key & 7 {
        case 0: out.append((Int(key >> 3), varint(), []))
        case 2:
            let n = Int(varint())
            out.append((Int(key >> 3), 0, Array(b[i..<(i + n)])))
            i += n
        default: return out
        }
    }
    return out
}

func decodePacked(_ b: [UInt8]) -> [Int] {
    var out: [Int] = []
    var v: UInt64 = 0, shift: UInt64 = 0
    for x in b {
        v |= UInt64(x & 0x7F) << shift
        if x < 0x80 { out.append(Int(bitPattern: UInt(v))); v = 0; shift = 0 } else { shift += 7 }
    }
    return out
}
