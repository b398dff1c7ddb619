// gomem bench --programs: real programs under each allocator through
// LD_PRELOAD (glibc: nothing preloaded), in interleaved rounds, with the wall
// time, the CPU time and the peak RSS of each run from wait4.
import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - allocators

/// An allocator as a program sees it: a library to preload, or none (glibc).
struct PreloadAllocator {
    let name: String
    let library: String?
}

enum PreloadAllocators {
    /// Where the dynamic loader looks for a library named without a path:
    /// LD_LIBRARY_PATH, then the usual system directories (Debian's
    /// multiarch ones first).
    static func libraryDirectories() -> [String] {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let fromEnv = (ProcessInfo.processInfo.environment["LD_LIBRARY_PATH"] ?? "").split(separator: ":").map(String.init)
        return fromEnv + ["/usr/local/lib", "/usr/lib/\(machine)-linux-gnu", "/lib/\(machine)-linux-gnu",
                          "/usr/lib64", "/lib64", "/usr/lib", "/lib"]
    }

    static func locate(_ file: String) -> String? {
        libraryDirectories().map { $0 + "/" + file }.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// GoHeap (its library given), glibc, and the anchors whose libraries are
    /// installed; the others with the Debian package that provides them.
    static func all(goheap: String) -> ([PreloadAllocator], [Skipped]) {
        var found = [PreloadAllocator(name: "GoHeap", library: goheap), PreloadAllocator(name: "glibc", library: nil)]
        var skipped: [Skipped] = []
        for (name, file, package) in [("jemalloc", "libjemalloc.so.2", "libjemalloc-dev"),
                                      ("mimalloc", "libmimalloc.so.2", "libmimalloc-dev"),
                                      ("tcmalloc", "libtcmalloc_minimal.so.4", "libgoogle-perftools-dev")] {
            if let path = locate(file) {
                found.append(PreloadAllocator(name: name, library: path))
            } else {
                skipped.append(Skipped(name: name, reason: "\(file) not found (apt-get install \(package))"))
            }
        }
        return (found, skipped)
    }
}

/// libgoheap-malloc.so: given with --goheap-malloc, or the package's
/// .build/malloc/libgoheap-malloc.so (built, or rebuilt when older than its
/// sources, with scripts/build-malloc.sh), or one next to the gomem binary.
enum GoHeapMallocLibrary {
    static let fileName = "libgoheap-malloc.so"
    static let buildCommand = "bash scripts/build-malloc.sh"

    struct NotFound: Error, CustomStringConvertible {
        let description: String
    }

    /// The GoHeap package gomem was built in: the first directory above the
    /// executable with Package.swift and scripts/build-malloc.sh.
    static func packageRoot() -> URL? {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let fm = FileManager.default
            if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path),
               fm.fileExists(atPath: dir.appendingPathComponent("scripts/build-malloc.sh").path) { return dir }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// --goheap-malloc PATH, checked before any work.
    static func check(_ path: String) throws {
        let shown = NumberArgument.shown(path)
        var isDirectory: ObjCBool = false
        if path.isEmpty { throw ValidationError("--goheap-malloc must name \(fileName); got an empty name") }
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ValidationError("--goheap-malloc must name \(fileName); got '\(shown)', which does not exist (build it with `\(buildCommand)` in the GoHeap repository)")
        }
        if isDirectory.boolValue { throw ValidationError("--goheap-malloc must name \(fileName); got '\(shown)', which is a directory") }
        if access(path, R_OK) != 0 { throw ValidationError("--goheap-malloc must name a readable file; got '\(shown)', which is not readable") }
    }

    static func modified(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }

    /// The newest modification time among the files the library is built from.
    static func newestSource(in root: URL) -> Date? {
        var newest: Date?
        for sub in ["Sources/GoHeap", "Malloc", "CShims", "scripts/build-malloc.sh"] {
            let base = root.appendingPathComponent(sub).path
            var files = [base]
            if let e = FileManager.default.enumerator(atPath: base) { files += e.compactMap { $0 as? String }.map { base + "/" + $0 } }
            for f in files { if let d = modified(f), d > (newest ?? .distantPast) { newest = d } }
        }
        return newest
    }

    /// The library's path, building it first when it is the package's own and
    /// missing or stale. `note` reports what is done (on stderr).
    static func resolve(explicit: String?, note: (String) -> Void) throws -> String {
        if let explicit { return URL(fileURLWithPath: explicit).standardizedFileURL.path }
        if let root = packageRoot() {
            let lib = root.appendingPathComponent(".build/malloc/\(fileName)").path
            // One build at a time (tests run gomem in parallel): the others
            // wait here, then find the library fresh.
            try? FileManager.default.createDirectory(at: root.appendingPathComponent(".build"), withIntermediateDirectories: true)
            let lockFD = open(root.appendingPathComponent(".build/malloc.lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if lockFD >= 0 { flock(lockFD, LOCK_EX) }
            defer { if lockFD >= 0 { close(lockFD) } }
            let built = modified(lib)
            let stale = built.map { b in (newestSource(in: root) ?? .distantPast) > b } ?? true
            if !stale { return lib }
            note(built == nil ? "\(lib) is missing: building it with \(buildCommand)"
                              : "\(lib) is older than its sources: rebuilding it with \(buildCommand)")
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("gomem-build-malloc-\(getpid()).log").path
            defer { try? FileManager.default.removeItem(atPath: log) }
            let run = try ChildProcess.run(["/bin/bash", root.appendingPathComponent("scripts/build-malloc.sh").path],
                                           environment: ChildProcess.environment(adding: [:]), stdout: log, stderr: log,
                                           timeout: 900)
            if run.succeeded, FileManager.default.fileExists(atPath: lib) { return lib }
            let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").suffix(5).joined(separator: "\n")
            throw NotFound(description: "\(buildCommand) failed (\(run.endingDescription)):\n\(tail)\nfix the build, or pass --goheap-malloc PATH")
        }
        let beside = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent(fileName).path
        if FileManager.default.fileExists(atPath: beside) { return beside }
        throw NotFound(description: "\(fileName) not found: gomem is not inside the GoHeap package and \(beside) does not exist; build it with `\(buildCommand)` in the GoHeap repository and pass --goheap-malloc PATH")
    }
}

// MARK: - programs

/// One program gomem runs under every allocator.
struct BenchProgram {
    let key: String
    let title: String
    let argv: [String]
    /// Variables set (or, with nil, removed) for this program.
    var environment: [String: String?] = [:]
    /// Runs per measurement (`true`: many short runs, reported per run).
    var runsPerMeasurement = 1
    /// A rough guess of one measurement's seconds under glibc, for the progress line.
    var estimatedSeconds = 1.0
    /// Compare every run's stdout with the first run's.
    var checkOutput = true

    /// The command as a shell would show it, paths inside the scratch directory shortened.
    func commandLine(scratch: String) -> String {
        argv.map { $0.replacingOccurrences(of: scratch + "/", with: "") }.joined(separator: " ")
    }
}

/// Finds and prepares the programs: executables on the PATH, generated
/// inputs, the C and C++ stresses of Benchmarks/programs compiled once.
struct ProgramSetup {
    /// Names for --only, in the order the tables come.
    static let keys = ["python", "sort", "clang", "gcc", "xthread", "larson", "true"]
    static let descriptions = [
        "python": "python3 with PYTHONMALLOC=malloc running Benchmarks/programs/alloc.py (dicts, lists, strings)",
        "sort": "GNU sort of a generated text file (LC_ALL=C)",
        "clang": "clang -O2 -c of a generated C file",
        "gcc": "gcc -O2 -c of the same C file (the driver, cc1 and as all preloaded)",
        "xthread": "Benchmarks/programs/xthread.cpp: 8 threads handing blocks around, bursts, long-lived data",
        "larson": "Benchmarks/programs/larson.c: larson-style thread chains with realloc and a shared exchange",
        "true": "startup cost: /usr/bin/true run many times",
    ]

    let quick: Bool
    let scratch: URL

    struct Missing: Error { let reason: String }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let p = String(dir) + "/" + name
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: p, isDirectory: &isDirectory), !isDirectory.boolValue,
               FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Benchmarks/programs, found by walking up from the executable.
    static func sourceDirectory() -> URL? {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("Benchmarks/programs")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent("xthread.cpp").path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    func path(_ name: String) -> String { scratch.appendingPathComponent(name).path }

    /// Runs a helper command (no preload); its stdout, or Missing with the
    /// first lines of its stderr.
    func helper(_ argv: [String], what: String) throws -> String {
        let out = path("helper.out"), err = path("helper.err")
        let r = try ChildProcess.run(argv, environment: ChildProcess.environment(adding: [:]), stdout: out, stderr: err, timeout: 600)
        guard r.succeeded else {
            let msg = ((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").split(separator: "\n").prefix(3).joined(separator: " / ")
            throw Missing(reason: "\(what) failed (\(r.endingDescription)): \(msg)")
        }
        return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    }

    func require(_ name: String, package: String) throws -> String {
        guard let p = Self.which(name) else { throw Missing(reason: "\(name) not found on the PATH (apt-get install \(package))") }
        return p
    }

    func source(_ file: String) throws -> String {
        guard let dir = Self.sourceDirectory() else {
            throw Missing(reason: "Benchmarks/programs/\(file) not found above the gomem executable")
        }
        return dir.appendingPathComponent(file).path
    }

    /// Functions in the generated C file: about 2.5 s of clang -O2 (gcc takes
    /// longer), or under a second with --quick.
    static func cFunctions(quick: Bool) -> Int { quick ? 30 : 120 }

    /// The generated C file, written once for both compilers.
    func cFile() throws -> String {
        let p = path("generated.c")
        if !FileManager.default.fileExists(atPath: p) {
            try ProgramInputs.cSource(functions: Self.cFunctions(quick: quick)).write(toFile: p, atomically: true, encoding: .utf8)
        }
        return p
    }

    func prepare(_ key: String) throws -> BenchProgram {
        switch key {
        case "python":
            var python = try require("python3", package: "python3")
            // A wrapper (pyenv's shim is a shell script) would measure the
            // shell too: run the interpreter it starts.
            if let head = FileManager.default.contents(atPath: python)?.prefix(2), head.elementsEqual("#!".utf8) {
                let real = try helper([python, "-c", "import sys; print(sys.executable)"], what: "python3 -c sys.executable")
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                if !real.isEmpty { python = real }
            }
            let version = try helper([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], what: "python3 --version")
                .trimmingCharacters(in: .whitespacesAndNewlines)
            let scale = quick ? 10_000 : 50_000
            return BenchProgram(key: key, title: "python \(version), PYTHONMALLOC=malloc: dicts, lists and strings",
                                argv: [python, try source("alloc.py"), String(scale)],
                                environment: ["PYTHONMALLOC": "malloc", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"],
                                estimatedSeconds: quick ? 0.5 : 2.5)
        case "sort":
            let sort = try require("sort", package: "coreutils")
            let mib = quick ? 10 : 50
            let input = path("sort-input.txt")
            let text = ProgramInputs.sortText(bytes: mib << 20)
            guard FileManager.default.createFile(atPath: input, contents: Data(text)) else {
                throw Missing(reason: "cannot write \(input)")
            }
            return BenchProgram(key: key, title: "sort: \(mib) MiB of generated text lines",
                                argv: [sort, input], environment: ["LC_ALL": "C", "TMPDIR": scratch.path],
                                estimatedSeconds: quick ? 0.5 : 2.5)
        case "clang", "gcc":
            let cc = try require(key, package: key == "gcc" ? "gcc" : "clang")
            let file = try cFile()
            let functions = Self.cFunctions(quick: quick)
            return BenchProgram(key: key, title: "\(key) -O2 -c: a generated C file of \(functions) functions",
                                argv: [cc, "-O2", "-w", "-c", "-o", path("generated-\(key).o"), file],
                                estimatedSeconds: quick ? 1 : 3)
        case "xthread":
            let cxx = try require("c++", package: "g++")
            let exe = path("xthread")
            _ = try helper([cxx, "-O2", "-pthread", "-o", exe, try source("xthread.cpp")], what: "c++ -O2 xthread.cpp")
            let iterations = quick ? 1_000 : 5_000
            return BenchProgram(key: key, title: "xthread (C++): 8 threads, blocks handed between threads, \(iterations) iterations",
                                argv: [exe, String(iterations)], estimatedSeconds: quick ? 0.3 : 1.5)
        case "larson":
            let cc = try require("cc", package: "gcc")
            let exe = path("larson")
            _ = try helper([cc, "-O2", "-pthread", "-o", exe, try source("larson.c")], what: "cc -O2 larson.c")
            let generations = quick ? 10 : 60
            return BenchProgram(key: key, title: "larson (C): 4 chains of \(generations) threads, 8 B - 16 KiB, realloc, blocks handed between threads",
                                argv: [exe, String(generations)], estimatedSeconds: quick ? 0.3 : 1.5)
        case "true":
            let t = try require("true", package: "coreutils")
            let runs = quick ? 50 : 200
            return BenchProgram(key: key, title: "startup: \(t) run \(runs) times, per run",
                                argv: [t], runsPerMeasurement: runs, estimatedSeconds: Double(runs) * 0.002,
                                checkOutput: false)
        default:
            throw Missing(reason: "unknown program")
        }
    }
}

// MARK: - results

struct ProgramMeasurement: Codable {
    let allocator: String
    /// Medians over the rounds, per run (a `true` measurement is many runs).
    let wallSeconds: Double
    let minWallSeconds: Double
    let maxWallSeconds: Double
    let cpuSeconds: Double
    let peakRSSBytes: Int
    /// This allocator's median / GoHeap's: > 1 means GoHeap is faster (or smaller).
    let wallRatioToGoHeap: Double?
    let cpuRatioToGoHeap: Double?
    let rssRatioToGoHeap: Double?
    /// Rounds measured (fewer than asked when a run failed).
    let rounds: Int
    /// Why a run failed, if one did (then the figures are from the rounds before it, or absent).
    var failure: String? = nil
}

struct ProgramReport: Codable {
    let key: String
    let title: String
    let command: String
    let runsPerMeasurement: Int
    let rounds: Int
    let results: [ProgramMeasurement]
}

struct ProgramBenchReport: Codable {
    let date: String
    let machine: String
    let goheapMalloc: String
    let skippedAllocators: [String: String]
    let skippedPrograms: [String: String]
    let programs: [ProgramReport]
    /// Milliseconds each allocator adds to one run of `true` over glibc:
    /// wall time, and CPU time (steadier on a shared machine).
    var startupAddedMilliseconds: [String: Double]? = nil
    var startupAddedCPUMilliseconds: [String: Double]? = nil
}

// MARK: - the run

struct ProgramBench {
    let quick: Bool
    let rounds: Int
    let only: [String]
    let goheapMalloc: String?
    let json: Bool
    let svg: String?

    static func note(_ s: String) { FileHandle.standardError.write(Data("gomem bench: \(s)\n".utf8)) }

    /// FNV-1a of a file, to compare outputs across allocators.
    static func digest(_ path: String) -> UInt64 {
        guard let data = FileManager.default.contents(atPath: path) else { return 0 }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        data.withUnsafeBytes { raw in
            let words = raw.count / 8
            for i in 0..<words { h = (h ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01b3 }
            for i in (words * 8)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01b3 }
        }
        return h ^ UInt64(data.count)
    }

    static func firstLines(_ path: String, _ n: Int = 2) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").prefix(n).joined(separator: " / ")
    }

    static func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// One measurement: the program run `runsPerMeasurement` times under
    /// `allocator`; wall and CPU per run, the largest peak RSS; or why it failed.
    func measure(_ p: BenchProgram, _ a: PreloadAllocator, scratch: URL, launcher: String?, timeout: Double?,
                 reference: UInt64?) -> Result<(wall: Double, cpu: Double, rss: Int, digest: UInt64), ProgramFailure> {
        var env = p.environment
        let out = scratch.appendingPathComponent("\(p.key).out").path, err = scratch.appendingPathComponent("\(p.key).err").path
        let report = scratch.appendingPathComponent("\(p.key).rusage").path
        if launcher == nil, let lib = a.library { env["LD_PRELOAD"] = lib }
        let environment = ChildProcess.environment(adding: env)
        var wall: UInt64 = 0, cpu: UInt64 = 0, rss = 0
        for _ in 0..<p.runsPerMeasurement {
            let r: ProgramRun
            do {
                if let launcher {
                    r = try ChildProcess.launch(p.argv, launcher: launcher, preload: a.library, environment: env,
                                                stdout: out, stderr: err, report: report, timeout: timeout)
                } else {
                    r = try ChildProcess.run(p.argv, environment: environment, stdout: out, stderr: err, timeout: timeout)
                }
            } catch {
                return .failure(ProgramFailure(reason: "\(error)"))
            }
            let errText = Self.firstLines(err, 3)
            // ld.so runs the program anyway when a preload fails: that would be glibc's numbers.
            if errText.contains("cannot be preloaded") || errText.contains("ERROR: ld.so") {
                return .failure(ProgramFailure(reason: "the library was not preloaded: \(errText)"))
            }
            guard r.succeeded else {
                return .failure(ProgramFailure(reason: r.endingDescription + (errText.isEmpty ? "" : ": \(errText)")))
            }
            wall += r.wallNanos
            cpu += r.cpuNanos
            rss = max(rss, r.maxRSSBytes)
        }
        let d = p.checkOutput ? Self.digest(out) : 0
        if let reference, p.checkOutput, d != reference {
            return .failure(ProgramFailure(reason: "its output differs from the run without a preload (\(Self.firstLines(out, 1)))"))
        }
        let n = Double(p.runsPerMeasurement)
        return .success((Double(wall) / 1e9 / n, Double(cpu) / 1e9 / n, rss, d))
    }

    struct ProgramFailure: Error { let reason: String }

    func run() throws {
        let library = try GoHeapMallocLibrary.resolve(explicit: goheapMalloc, note: Self.note)
        let (allocators, skippedAllocators) = PreloadAllocators.all(goheap: library)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("gomem-programs-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        let launcher = Launcher.build(in: scratch)
        let rssNote: String
        switch launcher {
        case let l? where l.isStatic: rssNote = "peak RSS: ru_maxrss, the largest process (programs started by a small static launcher)"
        case .some: rssNote = "peak RSS: ru_maxrss, the largest process, at least the dynamic launcher's own (about 1 MiB; no static libc to link it)"
        case nil: rssNote = "peak RSS: ru_maxrss, and at least gomem's own resident set: no C compiler for the launcher, so programs are spawned from gomem's address space"
        }
        let setup = ProgramSetup(quick: quick, scratch: scratch)
        var programs: [BenchProgram] = []
        var skippedPrograms: [(String, String)] = []
        for key in ProgramSetup.keys where only.isEmpty || only.contains(key) {
            Self.note("preparing \(key)")
            do { programs.append(try setup.prepare(key)) } catch let m as ProgramSetup.Missing {
                skippedPrograms.append((key, m.reason))
            }
        }

        let progress = RunProgress(plan: programs.map { (runs: allocators.count * rounds, seconds: $0.estimatedSeconds) })
        var reports: [ProgramReport] = []
        for (index, p) in programs.enumerated() {
            // A warm-up run without a preload: files into the page cache, the
            // reference output, and a deadline for the others (30 times as long).
            progress.start("[\(p.key)] warm-up (no preload)")
            let glibc = PreloadAllocator(name: "glibc", library: nil)
            let warm = measure(p, glibc, scratch: scratch, launcher: launcher?.path, timeout: 600, reference: nil)
            guard case .success(let w) = warm else {
                if case .failure(let f) = warm { skippedPrograms.append((p.key, "fails without any preload: \(f.reason)")) }
                continue
            }
            let timeout = max(60, 30 * w.wall * Double(p.runsPerMeasurement))
            var wall = [String: [Double]](), cpu = [String: [Double]](), rss = [String: [Int]]()
            var failures = [String: String]()
            for round in 0..<rounds {
                // Every allocator once per round, in rotating order, so drift on
                // a shared machine hits all of them alike.
                for k in allocators.indices {
                    let a = allocators[(k + round) % allocators.count]
                    progress.start("[\(p.key)] round \(round + 1)/\(rounds): \(a.name)")
                    defer { progress.finish(workload: index) }
                    if failures[a.name] != nil { continue }
                    switch measure(p, a, scratch: scratch, launcher: launcher?.path, timeout: timeout, reference: w.digest) {
                    case .success(let m):
                        wall[a.name, default: []].append(m.wall)
                        cpu[a.name, default: []].append(m.cpu)
                        rss[a.name, default: []].append(m.rss)
                    case .failure(let f):
                        failures[a.name] = "round \(round + 1): \(f.reason)"
                    }
                }
            }
            let base = wall["GoHeap"].map(Self.median), baseCPU = cpu["GoHeap"].map(Self.median)
            let baseRSS = rss["GoHeap"].map { Self.median($0.map(Double.init)) }
            let results = allocators.map { a -> ProgramMeasurement in
                let t = wall[a.name] ?? [], c = cpu[a.name] ?? [], m = (rss[a.name] ?? []).map(Double.init)
                let ratio = { (v: [Double], b: Double?) -> Double? in
                    guard let b, b > 0, !v.isEmpty else { return nil }
                    return Self.median(v) / b
                }
                return ProgramMeasurement(allocator: a.name, wallSeconds: t.isEmpty ? 0 : Self.median(t),
                                          minWallSeconds: t.min() ?? 0, maxWallSeconds: t.max() ?? 0,
                                          cpuSeconds: c.isEmpty ? 0 : Self.median(c),
                                          peakRSSBytes: m.isEmpty ? 0 : Int(Self.median(m)),
                                          wallRatioToGoHeap: ratio(t, base), cpuRatioToGoHeap: ratio(c, baseCPU),
                                          rssRatioToGoHeap: ratio(m, baseRSS), rounds: t.count, failure: failures[a.name])
            }
            reports.append(ProgramReport(key: p.key, title: p.title, command: p.commandLine(scratch: scratch.path),
                                         runsPerMeasurement: p.runsPerMeasurement, rounds: rounds, results: results))
            if !json { Self.printTable(reports.last!) }
        }
        progress.done()

        var report = ProgramBenchReport(
            date: ISO8601DateFormatter().string(from: Date()), machine: machineDescription(), goheapMalloc: library,
            skippedAllocators: Dictionary(uniqueKeysWithValues: skippedAllocators.map { ($0.name, $0.reason) }),
            skippedPrograms: Dictionary(skippedPrograms, uniquingKeysWith: { a, _ in a }), programs: reports)
        if let t = reports.first(where: { $0.key == "true" }),
           let g = t.results.first(where: { $0.allocator == "glibc" && $0.rounds > 0 }) {
            report.startupAddedMilliseconds = Dictionary(uniqueKeysWithValues: t.results.filter { $0.allocator != "glibc" && $0.rounds > 0 }
                .map { ($0.allocator, ($0.wallSeconds - g.wallSeconds) * 1000) })
            report.startupAddedCPUMilliseconds = Dictionary(uniqueKeysWithValues: t.results.filter { $0.allocator != "glibc" && $0.rounds > 0 }
                .map { ($0.allocator, ($0.cpuSeconds - g.cpuSeconds) * 1000) })
        }
        if let svg { try OutputFile.write(BenchChart.svg(Self.chartReport(report), programs: true), to: svg) }
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(report), as: UTF8.self))
            return
        }
        print("")
        if let added = report.startupAddedMilliseconds, let cpu = report.startupAddedCPUMilliseconds,
           let t = reports.first(where: { $0.key == "true" }) {
            let order = t.results.map(\.allocator).filter { added[$0] != nil && cpu[$0] != nil }
            print("startup: time added to one run of \(t.command) over glibc's (wall, CPU): "
                  + order.map { "\($0) \(String(format: "%+.2f", added[$0]!)) ms, \(String(format: "%+.2f", cpu[$0]!)) ms" }.joined(separator: "; "))
        }
        for s in skippedAllocators { print("skipped \(s.name): \(s.reason)") }
        for (k, why) in skippedPrograms { print("skipped program \(k): \(why)") }
        print("GoHeap: LD_PRELOAD=\(library); glibc: nothing preloaded. wall: spawn to exit; CPU: user + sys of the program and the children it waited for (wait4); \(rssNote).")
        print("x GoHeap = allocator's median / GoHeap's median, for wall time, CPU time and peak RSS; > 1: GoHeap is faster (smaller), < 1: GoHeap is slower (larger). \(machineDescription())")
        if let svg { print("bar chart of the wall-time ratios: \(svg)") }
    }

    static func printTable(_ r: ProgramReport) {
        let perRun = r.runsPerMeasurement > 1
        print("\n## \(r.key): \(r.title)")
        print("   `\(r.command)`\(perRun ? " x \(r.runsPerMeasurement)" : ""), median of \(r.rounds) interleaved rounds")
        let unit = perRun ? "ms/run" : "s"
        let scale = perRun ? 1000.0 : 1.0
        let f = { (v: Double) in String(format: perRun ? "%.3f" : "%.2f", v * scale) }
        let header = ["allocator", "wall \(unit)", "min-max wall \(unit)", "CPU \(unit)", "peak RSS MiB",
                      "x GoHeap wall", "x GoHeap CPU", "x GoHeap RSS"]
        var rows = [header]
        var notes: [String] = []
        let ratio = { (v: Double?) in v.map { String(format: "%.2f", $0) } ?? "-" }
        for m in r.results {
            if let failure = m.failure { notes.append("\(m.allocator) failed in \(failure)") }
            if m.rounds == 0 {
                rows.append([m.allocator, "failed"] + Array(repeating: "-", count: header.count - 2))
                continue
            }
            rows.append([m.allocator + (m.failure == nil ? "" : " (failed)"), f(m.wallSeconds),
                         "\(f(m.minWallSeconds))-\(f(m.maxWallSeconds))", f(m.cpuSeconds),
                         String(format: "%.1f", Double(m.peakRSSBytes) / 1_048_576),
                         ratio(m.wallRatioToGoHeap), ratio(m.cpuRatioToGoHeap), ratio(m.rssRatioToGoHeap)])
        }
        MarkdownTable.print(rows)
        for n in notes { print("   \(n)") }
    }

    /// The wall-time ratios in the shape BenchChart draws.
    static func chartReport(_ r: ProgramBenchReport) -> BenchReport {
        let workloads = r.programs.enumerated().map { i, p in
            WorkloadReport(id: i + 1, key: p.key, title: p.title, opsPerRun: p.runsPerMeasurement, unit: "run",
                           baseline: "GoHeap", repetitions: p.rounds,
                           results: p.results.compactMap { m in
                               m.wallRatioToGoHeap.map { ratio in
                                   Measurement(allocator: m.allocator, nsPerOp: m.wallSeconds * 1e9,
                                               minNsPerOp: m.minWallSeconds * 1e9, maxNsPerOp: m.maxWallSeconds * 1e9,
                                               peakRSSDeltaBytes: m.peakRSSBytes, ratioToGoHeap: ratio)
                               }
                           })
        }
        return BenchReport(date: r.date, machine: r.machine,
                           skipped: r.skippedAllocators.merging(r.skippedPrograms.map { ("program \($0.key)", $0.value) }) { a, _ in a },
                           workloads: workloads)
    }
}

/// A markdown table with the first column left-aligned and the others right-aligned.
enum MarkdownTable {
    static func print(_ rows: [[String]]) {
        guard let header = rows.first else { return }
        let widths = (0..<header.count).map { c in rows.map { $0[c].count }.max()! }
        for (i, row) in rows.enumerated() {
            let cells = row.enumerated().map { c, s in c == 0 ? s.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                                                             : String(repeating: " ", count: widths[c] - s.count) + s }
            Swift.print("| " + cells.joined(separator: " | ") + " |")
            if i == 0 { Swift.print("|" + widths.enumerated().map { c, w in String(repeating: "-", count: w + 1) + (c == 0 ? "-" : ":") }.joined(separator: "|") + "|") }
        }
    }
}
