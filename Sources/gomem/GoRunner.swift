// Runs the Go side of workloads 7 and 8 (Benchmarks/go/bench.go) when a Go
// toolchain is available, so real Go's slice and map get a row of their own.
import Foundation

enum GoRunner {
    /// A built Go benchmark binary, or why there is none.
    static let binary: Result<URL, GoUnavailable> = build()

    struct GoUnavailable: Error { let reason: String }

    /// The Go toolchain: `go` on the PATH, else Debian's golang-1.19-go location.
    static func findGo() -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":") {
            let u = URL(fileURLWithPath: String(dir)).appendingPathComponent("go")
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        let debian = URL(fileURLWithPath: "/usr/lib/go-1.19/bin/go")
        return FileManager.default.isExecutableFile(atPath: debian.path) ? debian : nil
    }

    /// Benchmarks/go/bench.go, found by walking up from the executable (gomem
    /// runs from .build inside the repository).
    static func findSource() -> URL? {
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("Benchmarks/go/bench.go")
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    static func build() -> Result<URL, GoUnavailable> {
        guard let go = findGo() else {
            return .failure(GoUnavailable(reason: "no Go toolchain (apt-get install golang-1.19-go)"))
        }
        guard let source = findSource() else {
            return .failure(GoUnavailable(reason: "Benchmarks/go/bench.go not found above the gomem executable"))
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gomem-go-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let out = dir.appendingPathComponent("bench")
        let p = Process()
        p.executableURL = go
        p.arguments = ["build", "-o", out.path, source.path]
        var env = ProcessInfo.processInfo.environment
        if env["GOCACHE"] == nil { env["GOCACHE"] = dir.appendingPathComponent("cache").path }
        if env["HOME"] == nil { env["HOME"] = dir.path }
        env["GO111MODULE"] = "off"
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        do { try p.run() } catch { return .failure(GoUnavailable(reason: "could not run \(go.path): \(error)")) }
        let msg = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            return .failure(GoUnavailable(reason: "go build failed: \(msg.prefix(200))"))
        }
        return .success(out)
    }

    /// Runs `bench MODE N` and returns its key=value output as numbers.
    static func run(_ mode: String, _ n: Int) -> [String: Double] {
        guard case .success(let bin) = binary else { return [:] }
        let p = Process()
        p.executableURL = bin
        p.arguments = [mode, String(n)]
        let out = Pipe()
        p.standardOutput = out
        guard (try? p.run()) != nil else { return [:] }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        var values: [String: Double] = [:]
        for pair in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let kv = pair.split(separator: "=")
            if kv.count == 2, let v = Double(kv[1]) { values[String(kv[0])] = v }
        }
        return values
    }

    /// A contender running the Go program; its peak RSS is the Go process's own.
    static func contender(name: String, mode: String, n: Int) -> Contender {
        Contender(name: name, run: {
            var v = run(mode, n)
            let nanos = UInt64(v.removeValue(forKey: "nanos") ?? 0)
            let peak = v.removeValue(forKey: "peak") ?? 0
            v.removeValue(forKey: "cap")
            v["peakRSS"] = peak
            return RunResult(nanos: nanos, extras: v)
        })
    }
}
