// Checking gomem's arguments before any work: every number a user types is
// read here, against the range the command can really serve, so bad input
// ends with exit status 64, one line saying what is wrong and the usage, and
// never reaches an allocator precondition or an allocation it cannot afford.
import ArgumentParser
import Foundation
import GoHeap

/// gomem's version, printed by `gomem --version`.
let gomemVersion = "0.3.0"

/// The ranges gomem's numeric arguments accept, and why.
enum Limits {
    /// GoHeap's largest allocation (2^47 bytes, the user half of the x86-64
    /// address space): the most any request, element size or slice can be.
    static let largestAllocation = heapMaxAllocation
    static let largestAllocationWhy = "2^47 bytes, GoHeap's largest allocation"

    /// `trace slice --max-bytes`: the one-at-a-time trajectory really
    /// allocates the slice (and, while it grows, the old and the new array).
    static let traceMaxBytes = 1 << 30
    static let traceMaxBytesWhy = "1 GiB: the trace really allocates the slice, about twice that at its peak"

    /// `trace slice --elem-size`: the trace's fixed cases go up to
    /// make([]T, 100000) plus one append (capacity 125192), which must fit in
    /// GoHeap's largest allocation; 1 GiB elements leave room for the rounding.
    static let traceMaxElementSize = 1 << 30
    static let traceMaxElementSizeWhy = "1 GiB: the trace grows make([]T, 100000) by one element, which must fit in 2^47 bytes"

    /// `trace map --inserts`: every key is really inserted, twice (two key types).
    static let mapMaxInserts = 10_000_000
    static let mapMaxInsertsWhy = "about 1 GiB of map and a few seconds per million keys"

    /// `bench --repetitions`: one repetition of the full benchmark takes about a minute.
    static let maxRepetitions = 20
    static let maxRepetitionsWhy = "one repetition of every workload takes about a minute"
}

/// A whole number from the command line, checked against its range.
///
/// ArgumentParser reads every word that starts with a dash as an option, so a
/// negative number would never reach a command: `--count -5` is reported as
/// "Missing value" and `explain -5` as an unknown option. gomem has no option
/// whose name starts with a digit, so ``protectNegativeNumbers(_:)`` marks such
/// words with U+2212 MINUS SIGN before parsing, and this parser (and the error
/// output of ``Gomem/main()``) reads the mark back as the minus the user typed.
enum NumberArgument {
    static let minusMark: Character = "\u{2212}"

    /// Marks words that are negative numbers ("-5", "-0.5", "-1e9") so that
    /// ArgumentParser passes them on as values.
    static func protectNegativeNumbers(_ args: [String]) -> [String] {
        args.map { word in
            guard word.count > 1, word.first == "-", let second = word.dropFirst().first,
                  second.isASCII && (second.isNumber || second == ".") else { return word }
            return String(minusMark) + word.dropFirst()
        }
    }

    /// The word as the user typed it (the mark turned back into "-").
    static func shown(_ word: String) -> String {
        word.replacingOccurrences(of: String(minusMark), with: "-")
    }

    /// Reads `text` as a whole number in `range`; otherwise throws a
    /// ValidationError naming the argument, the range and why it is bounded.
    static func parse(_ text: String, name: String, range: ClosedRange<Int>, why: String? = nil) throws -> Int {
        let allowed = "\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound)"
            + (why.map { " (\($0))" } ?? "")
        var digits = Substring(text.trimmingCharacters(in: .whitespaces))
        var negative = false
        if let first = digits.first, first == "-" || first == minusMark {
            negative = true
            digits = digits.dropFirst()
        } else if digits.first == "+" {
            digits = digits.dropFirst()
        }
        digits = digits.filter { $0 != "_" }[...]
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            if negative { throw ValidationError("\(allowed); got \(shown(text)), which is negative") }
            throw ValidationError("\(allowed); got '\(shown(text))', which is not a whole number")
        }
        if negative && digits.contains(where: { $0 != "0" }) {
            throw ValidationError("\(allowed); got \(shown(text)), which is negative")
        }
        guard let value = Int(digits), value <= range.upperBound else {
            throw ValidationError("\(allowed); got \(shown(text)), which is too large")
        }
        if value < range.lowerBound {
            throw ValidationError("\(allowed); got \(shown(text)), which is too small")
        }
        return value
    }
}

/// "1 growth", "2 growths".
func plural(_ n: Int, _ noun: String, _ nouns: String? = nil) -> String {
    "\(n) \(n == 1 ? noun : nouns ?? noun + "s")"
}
