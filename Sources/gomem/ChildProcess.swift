// Running one program for gomem bench --programs: posix_spawn with the
// environment (and so LD_PRELOAD) it is given, then wait4 for its resource
// usage. Nothing else runs in between, so the wall time is the child's life
// seen from the parent.
//
// Measured programs go through a small static launcher (Launcher below): a
// child's ru_maxrss can never be less than the resident set of the address
// space it was forked or vforked from, recorded by the kernel at exec, so a
// program spawned straight from gomem would report at least gomem's own peak
// (about 20 MiB). The launcher is a few hundred KiB; it forks the program,
// waits for it with wait4 and writes what it measured to a file. (vfork:
// the launcher's own small address space is what the exec leaves behind.)
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What one run of a child process measured.
struct ProgramRun {
    /// How it ended.
    enum Ending: Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// Killed by gomem after the deadline.
        case timedOut(seconds: Double)
    }

    let ending: Ending
    /// Monotonic time from just before posix_spawn to wait4's return.
    let wallNanos: UInt64
    /// User and system CPU time of the child and of the children it waited
    /// for (a compiler driver's cc1 and as): wait4's rusage.
    let userNanos: UInt64
    let systemNanos: UInt64
    /// ru_maxrss: the largest resident set of the child or of any child it
    /// waited for, in bytes.
    let maxRSSBytes: Int

    var cpuNanos: UInt64 { userNanos + systemNanos }
    var succeeded: Bool { ending == .exited(0) }

    /// "exit status 1", "killed by signal 11 (SIGSEGV)", "timed out after 60 s".
    var endingDescription: String {
        switch ending {
        case .exited(let s): return "exit status \(s)"
        case .signaled(let s):
            let name = strsignal(s).map { String(cString: $0) } ?? "signal"
            return "killed by signal \(s) (\(name))"
        case .timedOut(let s): return "timed out after \(Int(s)) s (killed)"
        }
    }
}

enum ChildProcess {
    struct SpawnFailed: Error, CustomStringConvertible {
        let path: String, code: Int32
        var description: String { "cannot start \(path): \(String(cString: strerror(code)))" }
    }

    /// The environment gomem runs programs in: its own, without any
    /// LD_PRELOAD (gomem chooses the allocator) or the static-TLS tunable
    /// `gomem bench` may have added for itself, plus `extra`; a nil value
    /// removes a variable.
    static func environment(adding extra: [String: String?]) -> [String] {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "LD_PRELOAD")
        if let t = env["GLIBC_TUNABLES"] {
            let kept = t.split(separator: ":").filter { !$0.hasPrefix("glibc.rtld.optional_static_tls=") }
            if kept.isEmpty { env.removeValue(forKey: "GLIBC_TUNABLES") } else { env["GLIBC_TUNABLES"] = kept.joined(separator: ":") }
        }
        for (k, v) in extra { env[k] = v }
        return env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// Runs `argv` (argv[0] an absolute path) with `environment` ("K=V"
    /// words), stdin from /dev/null and stdout and stderr into the given
    /// files, and waits for it. After `timeout` seconds the child is killed.
    static func run(_ argv: [String], environment: [String], stdout: String, stderr: String,
                    timeout: Double? = nil) throws -> ProgramRun {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        let start = monotonicNanos()
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgv, cEnv)
        if rc != 0 { throw SpawnFailed(path: argv[0], code: rc) }
        let watchdog = timeout.map { Watchdog(pid: pid, seconds: $0) }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            if errno != EINTR { throw SpawnFailed(path: argv[0], code: errno) }
        }
        let end = monotonicNanos()
        let killed = watchdog?.finish() ?? false
        let ending: ProgramRun.Ending
        if killed {
            ending = .timedOut(seconds: timeout ?? 0)
        } else if status & 0x7f == 0 {
            ending = .exited((status >> 8) & 0xff)
        } else {
            ending = .signaled(status & 0x7f)
        }
        func nanos(_ t: timeval) -> UInt64 { UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_usec) * 1_000 }
        return ProgramRun(ending: ending, wallNanos: end - start, userNanos: nanos(usage.ru_utime),
                        systemNanos: nanos(usage.ru_stime), maxRSSBytes: Int(usage.ru_maxrss) * 1024)
    }
}

/// The launcher: `launch REPORT PROGRAM ARGS...` runs PROGRAM (an absolute
/// path) with LD_PRELOAD set to $GOMEM_PRELOAD when that is set (the launcher
/// itself is never preloaded), waits for it and writes "STATUS WALL_NS USER_NS
/// SYS_NS MAXRSS_KIB" to REPORT. The program dies with the launcher.
enum Launcher {
    static let source = #"""
        #define _GNU_SOURCE
        #include <errno.h>
        #include <signal.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/prctl.h>
        #include <sys/resource.h>
        #include <sys/wait.h>
        #include <time.h>
        #include <unistd.h>

        static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }
        static long long tv(struct timeval t) { return t.tv_sec * 1000000000LL + t.tv_usec * 1000LL; }

        int main(int argc, char **argv) {
            if (argc < 3) { fprintf(stderr, "usage: launch REPORT PROGRAM [ARGS...]\n"); return 64; }
            const char *preload = getenv("GOMEM_PRELOAD");
            if (preload) { setenv("LD_PRELOAD", preload, 1); unsetenv("GOMEM_PRELOAD"); }
            struct timespec start, end;
            clock_gettime(CLOCK_MONOTONIC, &start);
            static const char failed[] = "launch: cannot execute the program\n";
            pid_t pid = vfork();
            if (pid < 0) { perror("launch: vfork"); return 71; }
            if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                execv(argv[2], argv + 2);
                (void)!write(2, failed, sizeof failed - 1);
                _exit(127);
            }
            int status = 0;
            struct rusage ru;
            while (wait4(pid, &status, 0, &ru) < 0)
                if (errno != EINTR) { perror("launch: wait4"); return 71; }
            clock_gettime(CLOCK_MONOTONIC, &end);
            FILE *f = fopen(argv[1], "w");
            if (!f) { perror("launch: report"); return 73; }
            fprintf(f, "%d %lld %lld %lld %ld\n", status, ns(end) - ns(start), tv(ru.ru_utime), tv(ru.ru_stime), ru.ru_maxrss);
            return fclose(f) == 0 ? 0 : 73;
        }

        """#

    /// Compiles the launcher into `dir` with cc: static if the C library's
    /// static archive is installed, else dynamic (its own resident set, about
    /// 1 MiB, is then the floor of every peak RSS). nil: no C compiler.
    static func build(in dir: URL) -> (path: String, isStatic: Bool)? {
        guard let cc = ProgramSetup.which("cc") ?? ProgramSetup.which("gcc") ?? ProgramSetup.which("clang") else { return nil }
        let src = dir.appendingPathComponent("launch.c").path, exe = dir.appendingPathComponent("launch").path
        let log = dir.appendingPathComponent("launch.log").path
        guard (try? source.write(toFile: src, atomically: true, encoding: .utf8)) != nil else { return nil }
        let env = ChildProcess.environment(adding: [:])
        for isStatic in [true, false] {
            let argv = [cc, "-O2"] + (isStatic ? ["-static"] : []) + ["-o", exe, src]
            if let r = try? ChildProcess.run(argv, environment: env, stdout: log, stderr: log, timeout: 120), r.succeeded {
                return (exe, isStatic)
            }
        }
        return nil
    }
}

extension ChildProcess {
    /// Runs `argv` through the launcher, with `preload` as its LD_PRELOAD;
    /// the figures are the launcher's (the program's own).
    static func launch(_ argv: [String], launcher: String, preload: String?, environment: [String: String?],
                       stdout: String, stderr: String, report: String, timeout: Double?) throws -> ProgramRun {
        var env = environment
        env["GOMEM_PRELOAD"] = preload
        try? FileManager.default.removeItem(atPath: report)
        let outer = try run([launcher, report] + argv, environment: self.environment(adding: env),
                            stdout: stdout, stderr: stderr, timeout: timeout)
        guard outer.succeeded else { return outer }
        let fields = ((try? String(contentsOfFile: report, encoding: .utf8)) ?? "").split(whereSeparator: \.isWhitespace)
        guard fields.count == 5, let status = Int32(fields[0]), let wall = UInt64(fields[1]), let user = UInt64(fields[2]),
              let system = UInt64(fields[3]), let rss = Int(fields[4]) else {
            throw SpawnFailed(path: launcher, code: EIO)
        }
        let ending: ProgramRun.Ending = status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signaled(status & 0x7f)
        return ProgramRun(ending: ending, wallNanos: wall, userNanos: user, systemNanos: system, maxRSSBytes: rss * 1024)
    }
}

/// Kills a child that outlives its deadline. `finish` is called once the
/// child has been reaped; the lock keeps the kill from reaching a reused pid.
private final class Watchdog: @unchecked Sendable {
    private let lock = NSLock()
    private var done = false
    private var killed = false

    init(pid: pid_t, seconds: Double) {
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in
            lock.lock()
            if !done {
                kill(pid, SIGKILL)
                killed = true
            }
            lock.unlock()
        }
    }

    /// Disarms the watchdog; true if it killed the child.
    func finish() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        done = true
        return killed
    }
}
