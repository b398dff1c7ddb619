// Symbols for heap-profile stacks: which function a return address is in,
// by name (mangled and demangled), and which mapped file holds it.
//
// Why read ELF symbol tables: dladdr sees only the dynamic symbol table, and
// Swift executables export almost nothing there (a release `gomem` has no
// dynamic function symbols at all), so dladdr is used for the file and its
// load address, and the function comes from the file's own .symtab (or
// .dynsym when the file is stripped). The file is mapped read-only for the
// lookup and unmapped after. A return address with no symbol keeps its
// mapping, and `go tool pprof` can still place it by address.
//
// Demangling uses the Swift runtime's swift_demangle, which Embedded Swift
// does not have; the writer is built only outside Embedded mode.

#if !hasFeature(Embedded)
import CShims
#if canImport(Glibc)
import Glibc
#endif

@_silgen_name("swift_demangle")
private func _swiftDemangle(_ mangled: UnsafePointer<CChar>?, _ length: Int,
                            _ output: UnsafeMutablePointer<CChar>?, _ outputLength: UnsafeMutablePointer<Int>?,
                            _ flags: UInt32) -> UnsafeMutablePointer<CChar>?

/// A resolved return address.
struct ProfileFrame: Hashable {
    var file: String
    var symbol: String?  // mangled, as in the symbol table
    var function: String?  // demangled
}

/// Function symbols of one ELF file, sorted by address, with its load bias.
final class ELFSymbols {
    var starts: [UInt] = []
    var sizes: [UInt] = []
    var names: [String] = []
    var bias: UInt = 0

    /// Reads the function symbols of the file at `path`, loaded at `base`
    /// (dladdr's dli_fbase). nil if the file is unreadable or not ELF64.
    init?(path: String, base: UInt) {
        let fd = open(path, O_RDONLY)
        if fd < 0 { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_size > 64 else { return nil }
        let size = Int(st.st_size)
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else { return nil }
        defer { munmap(m, size) }
        let f = UnsafeRawPointer(m)
        func u16(_ o: Int) -> Int { Int(f.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
        func u32(_ o: Int) -> Int { Int(f.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt { UInt(f.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        // ELF magic, 64-bit class, little endian.
        guard u32(0) == 0x464C_457F, f.load(fromByteOffset: 4, as: UInt8.self) == 2,
              f.load(fromByteOffset: 5, as: UInt8.self) == 1 else { return nil }
        let type = u16(16)
        let phoff = Int(u64(32)), phentsize = u16(54), phnum = u16(56)
        let shoff = Int(u64(40)), shentsize = u16(58), shnum = u16(60)
        guard shoff > 0, shoff + shnum * shentsize <= size, phoff + phnum * phentsize <= size else { return nil }
        // Position-independent files are shifted by their load address minus
        // the first loadable segment's (page-aligned) address.
        if type == 3 {
            var firstVaddr = UInt.max
            for i in 0..<phnum where u32(phoff + i * phentsize) == 1 {
                firstVaddr = min(firstVaddr, u64(phoff + i * phentsize + 16))
            }
            if firstVaddr == .max { firstVaddr = 0 }
            bias = base &- (firstVaddr & ~UInt(OS.pageSize - 1))
        }
        // .symtab (type 2) if present, else .dynsym (type 11).
        var symtab = -1
        for want in [2, 11] where symtab < 0 {
            for i in 0..<shnum where u32(shoff + i * shentsize + 4) == want { symtab = i; break }
        }
        guard symtab >= 0 else { return nil }
        let sh = shoff + symtab * shentsize
        let symOff = Int(u64(sh + 24)), symSize = Int(u64(sh + 32)), link = u32(sh + 40)
        guard link < shnum else { return nil }
        let strSh = shoff + link * shentsize
        let strOff = Int(u64(strSh + 24)), strSize = Int(u64(strSh + 32))
        guard symOff + symSize <= size, strOff + strSize <= size else { return nil }
        var entries: [(UInt, UInt, Int)] = []
        for k in 0..<(symSize / 24) {
            let o = symOff + k * 24
            let info = f.load(fromByteOffset: o + 4, as: UInt8.self)
            let value = u64(o + 8)
            guard info & 0xF == 2, value != 0 else { continue }  // STT_FUNC
            let name = u32(o)
            guard name < strSize else { continue }
            entries.append((value, u64(o + 16), strOff + name))
        }
        entries.sort { $0.0 < $1.0 }
        starts.reserveCapacity(entries.count)
        for (v, s, n) in entries {
            starts.append(v)
            sizes.append(s)
            names.append(String(cString: f.advanced(by: n).assumingMemoryBound(to: CChar.self)))
        }
    }

    /// The mangled name of the function holding runtime address `pc`.
    func symbol(at pc: UInt) -> String? {
        let a = pc &- bias
        var lo = 0, hi = starts.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if starts[mid] <= a { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let i = lo - 1
        if sizes[i] != 0 && a >= starts[i] + sizes[i] { return nil }
        return names[i]
    }
}

/// Resolves addresses, caching one symbol table per file.
final class ProfileSymbolizer {
    var files: [String: ELFSymbols?] = [:]
    var cache: [UInt: ProfileFrame] = [:]

    func frame(_ pc: UInt) -> ProfileFrame {
        if let f = cache[pc] { return f }
        var file: UnsafePointer<CChar>?
        var base: UInt = 0
        var sym: UnsafePointer<CChar>?
        var symAddr: UInt = 0
        var frame = ProfileFrame(file: "", symbol: nil, function: nil)
        if goheap_symbolize(UnsafeRawPointer(bitPattern: pc), &file, &base, &sym, &symAddr), let file {
            let path = String(cString: file)
            frame.file = path
            if files[path] == nil { files[path] = ELFSymbols(path: Self.realPath(path), base: base) }
            frame.symbol = files[path]!?.symbol(at: pc) ?? sym.map { String(cString: $0) }
        }
        frame.function = frame.symbol.map(Self.demangle)
        cache[pc] = frame
        return frame
    }

    /// dladdr names the main program by argv[0] (or ""): use the real file.
    static func realPath(_ path: String) -> String {
        if path.isEmpty || !path.hasPrefix("/") {
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlink("/proc/self/exe", &buf, buf.count - 1)
            if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        return path
    }

    /// Demangled Swift name (C and C++ names are returned as they are).
    static func demangle(_ name: String) -> String {
        name.withCString { p in
            guard let d = _swiftDemangle(p, strlen(p), nil, nil, 0) else { return name }
            defer { free(d) }
            return String(cString: d)
        }
    }

    /// GoHeap's own frames (the module's Swift functions and the C shim),
    /// which sit on top of every captured stack.
    static func isInternal(_ symbol: String?) -> Bool {
        guard let s = symbol else { return false }
        return s.hasPrefix("$s6GoHeap") || s.hasPrefix("goheap_")
    }
}
#endif
