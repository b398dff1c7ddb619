// gomem numa --check: does GoHeap put pages on the node of the thread that
// allocates them?
//
// Every case allocates blocks, writes to each 4 KiB page of them from the
// allocating thread (so first touch happens where the policy says it should),
// then asks the kernel which node each page is on (NUMA.node(ofAddress:),
// move_pages) and prints the share of each node. Threads are pinned with
// NUMA.runCurrentThread(onNode:). The cases:
//
//   a  one thread per node, all allocating at once: each gets its own node
//   b  A on node 0 allocates, frees, flushes and exits; B on node 1 then
//      allocates the same sizes: B's blocks are on node 1, not A's old pages
//   c  threads on nodes 0 and 1 take turns on one heap, each freeing half of
//      its blocks: every round's new blocks are on the allocating thread's node
//   d  .bind(node: k), allocated by a thread on another node: all on node k
//   e  .interleave over 64 MiB of huge blocks: every node gets an even share
//   f  a heap bound to a node the machine lacks is refused when it is created,
//      with a message naming the node and the machine's nodes (run in a child
//      process, since the refusal is fatal)
//
// a, b, c and f describe issue #10's node-local heaps; d and e hold for the
// per-arena policies GoHeap has had from the start. scripts/numa-ci.sh runs the
// check in emulated 2- and 4-node machines (scripts/numa-vm.sh).
import ArgumentParser
import Foundation
import GoHeap
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// MARK: tables with one column per node

/// A plain-text table in the pipe format gomem bench prints, whose columns
/// may include one per NUMA node. The placement check prints one; a per-node
/// statistics table for `gomem numa` (once GoHeap reports statistics per
/// node) is meant to use it too: `TextTable(header: ["counter"] + nodeColumns(...))`.
struct TextTable {
    var header: [String]
    /// Columns printed left-aligned; all others are right-aligned (numbers).
    var leftAligned: Set<Int>
    var rows: [[String]] = []

    init(header: [String], leftAligned: Set<Int> = [0]) {
        self.header = header
        self.leftAligned = leftAligned
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render() -> String {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        var lines: [String] = []
        for (i, row) in all.enumerated() {
            let cells = header.indices.map { c -> String in
                let s = c < row.count ? row[c] : ""
                let pad = String(repeating: " ", count: widths[c] - s.count)
                return leftAligned.contains(c) ? s + pad : pad + s
            }
            lines.append("| " + cells.joined(separator: " | ") + " |")
            if i == 0 {
                lines.append("|" + widths.indices.map { c in
                    String(repeating: "-", count: widths[c] + 1) + (leftAligned.contains(c) ? "-" : ":")
                }.joined(separator: "|") + "|")
            }
        }
        return lines.joined(separator: "\n")
    }
}

/// "node0 %", "node1 %", ...: one header per node of the machine.
func nodeColumns(_ nodes: [Int], suffix: String) -> [String] {
    nodes.map { "node\($0)\(suffix)" }
}

/// The nodes of the machine as people write them: "0-1", "0", "0-3".
func nodeListText(_ nodes: [Int]) -> String {
    guard let first = nodes.first, let last = nodes.last else { return "none" }
    if nodes.count == 1 { return "\(first)" }
    if nodes == Array(first...last) { return "\(first)-\(last)" }
    return nodes.map(String.init).joined(separator: ",")
}

// MARK: the machine

/// The machine the check runs on, as GoHeap's NUMA API reports it.
struct NUMAMachine {
    /// Nodes that exist (0...maxNode, less holes the kernel reports as empty).
    let nodes: [Int]
    /// Nodes with CPUs: threads can only be pinned to these.
    let cpuNodes: [Int]

    static func current() -> NUMAMachine {
        let all = Array(0...max(NUMA.maxNode, 0))
        let existing = all.filter { NUMA.memory(ofNode: $0) != nil || !NUMA.cpus(ofNode: $0).isEmpty }
        let nodes = existing.isEmpty ? [0] : existing
        let withCPUs = nodes.filter { !NUMA.cpus(ofNode: $0).isEmpty }
        return NUMAMachine(nodes: nodes, cpuNodes: withCPUs.isEmpty ? [nodes[0]] : withCPUs)
    }

    var isSingleNode: Bool { nodes.count < 2 || cpuNodes.count < 2 }

    /// A node number the machine does not have (7 on machines with fewer nodes).
    var missingNode: Int { (nodes.last ?? 0) < 7 ? 7 : (nodes.last ?? 0) + 1 }

    /// The kernel settings that change placement results.
    static func setting(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

// MARK: measuring placement

/// How many of a set of pages are on each node.
struct Census: Sendable {
    var pages = 0
    /// Pages per node, indexed by node number.
    var onNode: [Int]
    /// Pages the kernel placed on no node it would tell (not resident).
    var unplaced = 0

    init(nodeSlots: Int) { onNode = Array(repeating: 0, count: nodeSlots) }

    mutating func add(_ other: Census) {
        pages += other.pages
        unplaced += other.unplaced
        for i in onNode.indices where i < other.onNode.count { onNode[i] += other.onNode[i] }
    }

    func percent(onNode node: Int) -> Double {
        pages == 0 || node >= onNode.count ? 0 : Double(onNode[node]) * 100 / Double(pages)
    }
}

enum Placement {
    /// The check counts 4 KiB pages, whatever pages the kernel backs them with.
    static let pageBytes = 4096

    /// Writes to every 4 KiB page of a block (and its last byte), so the
    /// pages are resident and first-touch placed by the calling thread.
    static func touch(_ address: UInt, bytes: Int) {
        let p = UnsafeMutableRawPointer(bitPattern: address)!
        var off = 0
        while off < bytes {
            p.storeBytes(of: 0xA5, toByteOffset: off, as: UInt8.self)
            off += pageBytes
        }
        p.storeBytes(of: 0x5A, toByteOffset: bytes - 1, as: UInt8.self)
    }

    /// The node of every distinct 4 KiB page the blocks cover.
    static func census(of blocks: [UInt], bytes: Int, nodeSlots: Int) -> Census {
        var pages = Set<UInt>()
        let mask = ~UInt(pageBytes - 1)
        for b in blocks {
            var page = b & mask
            let last = (b + UInt(bytes) - 1) & mask
            while page <= last {
                pages.insert(page)
                page += UInt(pageBytes)
            }
        }
        var c = Census(nodeSlots: nodeSlots)
        for page in pages {
            c.pages += 1
            if let n = NUMA.node(ofAddress: UnsafeRawPointer(bitPattern: page)!), n >= 0, n < nodeSlots {
                c.onNode[n] += 1
            } else {
                c.unplaced += 1
            }
        }
        return c
    }
}

/// One kind of block the cases allocate.
struct BlockKind: Sendable {
    let name: String
    let bytes: Int
    /// Blocks per thread (and per round in case c).
    let count: Int

    static let small64 = BlockKind(name: "small 64 B", bytes: 64, count: 10_000)
    static let small512 = BlockKind(name: "small 512 B", bytes: 512, count: 10_000)
    static let large = BlockKind(name: "large 256 KiB", bytes: 256 << 10, count: 64)
    static let huge = BlockKind(name: "huge 4 MiB", bytes: 4 << 20, count: 4)
    /// Cases a and b: about 37 MiB per thread.
    static let full: [BlockKind] = [small64, small512, large, huge]
    /// Cases c and d: a fifth as many blocks (a heap per node in d, several rounds in c).
    static let fewer: [BlockKind] = [
        BlockKind(name: small64.name, bytes: 64, count: 2000),
        BlockKind(name: small512.name, bytes: 512, count: 2000),
        BlockKind(name: large.name, bytes: large.bytes, count: 16),
        BlockKind(name: huge.name, bytes: huge.bytes, count: 2),
    ]
}

/// Blocks of one kind, by address (Sendable, unlike pointers).
struct Blocks: Sendable {
    let kind: BlockKind
    var addresses: [UInt]

    static func allocate(_ kind: BlockKind, count: Int? = nil, from heap: Heap) -> Blocks {
        var a: [UInt] = []
        let n = count ?? kind.count
        a.reserveCapacity(n)
        for _ in 0..<n {
            let p = heap.allocate(byteCount: kind.bytes)
            let address = UInt(bitPattern: p)
            Placement.touch(address, bytes: kind.bytes)
            a.append(address)
        }
        return Blocks(kind: kind, addresses: a)
    }

    func free(to heap: Heap) {
        for a in addresses { heap.deallocate(UnsafeMutableRawPointer(bitPattern: a)!) }
    }

    func census(nodeSlots: Int) -> Census {
        Placement.census(of: addresses, bytes: kind.bytes, nodeSlots: nodeSlots)
    }
}

// MARK: the verdict of one row

/// What a row's pages should look like.
enum Expectation: Sendable {
    /// At least 99 % on the node.
    case local(node: Int)
    /// Every page on the node.
    case only(node: Int)
    /// Every node's share within 5 points of an even split (45-55 % on 2 nodes).
    case even(nodes: [Int])

    static let localShare = 99.0
    static let evenSlack = 5.0

    func holds(for c: Census) -> Bool {
        guard c.pages > 0 else { return false }
        switch self {
        case .local(let n): return c.percent(onNode: n) >= Self.localShare
        case .only(let n): return c.onNode.indices.contains(n) && c.onNode[n] == c.pages
        case .even(let nodes):
            let share = 100 / Double(nodes.count)
            return nodes.allSatisfy { abs(c.percent(onNode: $0) - share) <= Self.evenSlack }
        }
    }

    var text: String {
        switch self {
        case .local(let n): return ">= 99 % node\(n)"
        case .only(let n): return "100 % node\(n)"
        case .even(let nodes):
            let share = 100 / Double(nodes.count)
            return String(format: "each %.0f-%.0f %%", share - Self.evenSlack, share + Self.evenSlack)
        }
    }
}

/// One line of the table.
struct PlacementRow: Sendable {
    let caseName: String
    let thread: String
    let kind: String
    /// nil for case f, which measures no pages.
    let census: Census?
    let expected: String
    let ok: Bool
}

/// What a pinned thread saw of its pinning.
struct Pinning: Sendable {
    let node: Int
    let error: String?
    let ranOn: Int?

    static func pin(to node: Int) -> Pinning {
        do {
            try NUMA.runCurrentThread(onNode: node)
        } catch {
            return Pinning(node: node, error: "\(error)", ranOn: NUMA.currentCPU()?.node)
        }
        sched_yield()   // let the scheduler move the thread before asking where it is
        return Pinning(node: node, error: nil, ranOn: NUMA.currentCPU()?.node)
    }

    var isGood: Bool { error == nil && (ranOn == nil || ranOn == node) }
    var text: String {
        if error != nil { return "\(node) (not pinned)" }
        if let r = ranOn, r != node { return "\(node) (ran on \(r))" }
        return "\(node)"
    }
}

// MARK: the check

struct PlacementCheck {
    let machine: NUMAMachine
    /// Room for every node number in a census.
    let nodeSlots: Int
    var rows: [PlacementRow] = []
    var notes: [String] = []
    /// Cases with at least one failed row, in order.
    var failedCases: [String] = []
    var ranCases: [String] = []

    init(machine: NUMAMachine) {
        self.machine = machine
        nodeSlots = (machine.nodes.last ?? 0) + 1
    }

    /// Runs every case the machine allows, then prints the table.
    mutating func run() {
        printMachine()
        if machine.isSingleNode {
            print("single node: placement trivially local; checking only d (.bind(node: \(machine.nodes[0])))")
            print("")
            record("d", caseBind())
        } else {
            print(Self.legend(machine))
            print("")
            record("a", caseOwnNode())
            record("b", caseFreeThenAllocate())
            record("c", caseTakingTurns())
            record("d", caseBind())
            record("e", caseInterleave())
            record("f", caseInvalidNode())
        }
        printTable()
    }

    static func legend(_ m: NUMAMachine) -> String {
        let (x, y) = (m.cpuNodes[0], m.cpuNodes[1])
        return """
            a  one thread per node (\(nodeListText(m.cpuNodes))), all allocating at once: each thread's blocks on its own node
            b  A on node \(x) allocates, frees, flushes its cache and exits; then B on node \(y) allocates the same sizes: B's blocks on node \(y)
            c  threads on nodes \(x) and \(y) take 3 turns each on one heap, freeing half of every turn's blocks: each turn's blocks on its thread's node
            d  .bind(node: k), blocks allocated by a thread on another node: every page on node k
            e  .interleave, 16 huge blocks (64 MiB) allocated on node \(x): each node's share within 5 points of \(String(format: "%.0f", 100 / Double(m.nodes.count))) %
            f  Heap(configuration:) with .bind(node: \(m.missingNode)) on nodes \(nodeListText(m.nodes)): refused (the process stops) with a message naming node \(m.missingNode) and the nodes \(nodeListText(m.nodes))
            """
    }

    func printMachine() {
        let thp = Heap.transparentHugePageMode
        let balancing = NUMAMachine.setting("/proc/sys/kernel/numa_balancing") ?? "absent"
        let lib = NUMA.unavailableReason.map { "not available (\($0))" } ?? "loaded"
        print("placement check: \(plural(machine.nodes.count, "node")) (\(nodeListText(machine.nodes))), \(plural(NUMA.cpuCount, "CPU")); libnuma \(lib); THP \(thp.isEmpty ? "none" : thp); numa_balancing \(balancing)")
        if balancing != "0" && balancing != "absent" {
            print("warning: automatic NUMA balancing is on; it may move pages while the check runs (boot with numa_balancing=disable)")
        }
    }

    mutating func record(_ id: String, _ result: [PlacementRow]) {
        ranCases.append(id)
        rows += result
        if result.isEmpty || result.contains(where: { !$0.ok }) { failedCases.append(id) }
    }

    func printTable() {
        var t = TextTable(header: ["case", "thread node", "size class", "pages"]
                              + nodeColumns(machine.nodes, suffix: " %") + ["ok", "expected"],
                          leftAligned: [0, 1, 2, 4 + machine.nodes.count, 5 + machine.nodes.count])
        for r in rows {
            let cells: [String]
            if let c = r.census {
                cells = machine.nodes.map { String(format: "%.1f", c.percent(onNode: $0)) }
            } else {
                cells = machine.nodes.map { _ in "-" }
            }
            t.add([r.caseName, r.thread, r.kind, r.census.map { String($0.pages) } ?? "-"] + cells
                  + [r.ok ? "ok" : "FAIL", r.expected])
        }
        print(t.render())
        let unplaced = rows.compactMap { r in r.census.flatMap { $0.unplaced > 0 ? "\(r.caseName) \(r.kind): \($0.unplaced)" : nil } }
        if !unplaced.isEmpty {
            print("pages on no node (not resident, counted as misplaced): " + unplaced.joined(separator: "; "))
        }
        for n in notes { print(n) }
        if failedCases.isEmpty {
            print("placement check: all \(plural(ranCases.count, "case")) passed (\(ranCases.joined(separator: " ")))")
        } else {
            print("placement check: \(failedCases.count) of \(plural(ranCases.count, "case")) failed: \(failedCases.joined(separator: " "))")
        }
    }

    func row(_ name: String, _ pin: Pinning, _ b: Blocks, _ e: Expectation) -> PlacementRow {
        let c = b.census(nodeSlots: nodeSlots)
        return PlacementRow(caseName: name, thread: pin.text, kind: b.kind.name, census: c,
                            expected: e.text, ok: pin.isGood && e.holds(for: c))
    }

    /// a: one pinned thread per node, all allocating at the same moment.
    func caseOwnNode() -> [PlacementRow] {
        let heap = Heap(configuration: HeapConfiguration())
        let nodes = machine.cpuNodes
        let out = ResultSlots<[PlacementRow]>(count: nodes.count)
        let start = Barrier(count: nodes.count)
        let check = self
        runThreads(nodes.count) { i in
            let pin = Pinning.pin(to: nodes[i])
            start.wait()
            let blocks = BlockKind.full.map { Blocks.allocate($0, from: heap) }
            start.wait()   // everyone has allocated before anyone frees
            out[i] = blocks.map { check.row("a", pin, $0, .local(node: nodes[i])) }
            start.wait()
            for b in blocks { b.free(to: heap) }
        }
        return out.values.flatMap { $0 }
    }

    /// b: A allocates, frees, flushes and exits; then B, on another node,
    /// allocates the same sizes.
    func caseFreeThenAllocate() -> [PlacementRow] {
        let heap = Heap(configuration: HeapConfiguration())
        let (x, y) = (machine.cpuNodes[0], machine.cpuNodes[1])
        let out = ResultSlots<[PlacementRow]>(count: 2)
        let check = self
        for (i, node) in [x, y].enumerated() {
            runThreads(1) { _ in
                let pin = Pinning.pin(to: node)
                let blocks = BlockKind.full.map { Blocks.allocate($0, from: heap) }
                out[i] = blocks.map { check.row(i == 0 ? "b (A)" : "b (B)", pin, $0, .local(node: node)) }
                for b in blocks { b.free(to: heap) }
                heap.flushThreadCache()
            }
        }
        return out.values.flatMap { $0 }
    }

    /// c: two pinned threads take turns on one heap. Each turn allocates a
    /// batch, measures it, frees every other block of it and the rest of its
    /// previous batch, and hands over.
    func caseTakingTurns() -> [PlacementRow] {
        let heap = Heap(configuration: HeapConfiguration())
        let nodes = [machine.cpuNodes[0], machine.cpuNodes[1]]
        let turns = 3
        let kinds = BlockKind.fewer
        let out = ResultSlots<(Pinning, [Census])>(count: 2)
        let baton = Baton()
        let slots = nodeSlots
        runThreads(2) { t in
            let pin = Pinning.pin(to: nodes[t])
            var totals = kinds.map { _ in Census(nodeSlots: slots) }
            var kept: [Blocks] = []
            for turn in 0..<turns {
                baton.waitForTurn(2 * turn + t)
                let batch = kinds.map { Blocks.allocate($0, from: heap) }
                for (k, b) in batch.enumerated() { totals[k].add(b.census(nodeSlots: slots)) }
                for b in kept { b.free(to: heap) }
                kept = batch.map { b in
                    let halves = b.addresses.indices.map { ($0, b.addresses[$0]) }
                    Blocks(kind: b.kind, addresses: halves.filter { $0.0 % 2 == 1 }.map(\.1)).free(to: heap)
                    return Blocks(kind: b.kind, addresses: halves.filter { $0.0 % 2 == 0 }.map(\.1))
                }
                if turn == turns - 1 { for b in kept { b.free(to: heap) } }
                baton.pass()
            }
            out[t] = (pin, totals)
        }
        var rows: [PlacementRow] = []
        for (t, (pin, totals)) in out.values.enumerated() {
            for (k, c) in totals.enumerated() {
                let e = Expectation.local(node: nodes[t])
                rows.append(PlacementRow(caseName: "c", thread: pin.text, kind: kinds[k].name, census: c,
                                         expected: e.text, ok: pin.isGood && e.holds(for: c)))
            }
        }
        return rows
    }

    /// d: a heap bound to node k, used by a thread on another node (if any).
    func caseBind() -> [PlacementRow] {
        var rows: [PlacementRow] = []
        for k in machine.nodes {
            let heap = Heap(configuration: HeapConfiguration(numaPolicy: .bind(node: k)))
            let other = machine.cpuNodes.first { $0 != k } ?? machine.cpuNodes[0]
            let out = ResultSlots<[PlacementRow]>(count: 1)
            let check = self
            runThreads(1) { _ in
                let pin = Pinning.pin(to: other)
                let blocks = BlockKind.fewer.map { Blocks.allocate($0, from: heap) }
                out[0] = blocks.map { check.row("d bind(\(k))", pin, $0, .only(node: k)) }
                for b in blocks { b.free(to: heap) }
            }
            rows += out.values[0]
        }
        return rows
    }

    /// e: 64 MiB of huge blocks from an interleaved heap.
    func caseInterleave() -> [PlacementRow] {
        let heap = Heap(configuration: HeapConfiguration(numaPolicy: .interleave))
        let out = ResultSlots<[PlacementRow]>(count: 1)
        let check = self
        let node = machine.cpuNodes[0]
        let nodes = machine.nodes
        runThreads(1) { _ in
            let pin = Pinning.pin(to: node)
            let b = Blocks.allocate(BlockKind.huge, count: 16, from: heap)
            out[0] = [check.row("e interleave", pin, b, .even(nodes: nodes))]
            b.free(to: heap)
        }
        return out.values[0]
    }

    /// f: `gomem numa --check-invalid-node N` in a child process must stop
    /// with a message naming node N and the machine's nodes.
    mutating func caseInvalidNode() -> [PlacementRow] {
        let n = machine.missingNode
        let child = ChildRun.gomem(["numa", "--check-invalid-node", String(n)], timeoutSeconds: 300)
        let text = (child.stderr + "\n" + child.stdout).trimmingCharacters(in: .whitespacesAndNewlines)
        let stopped = child.launchError == nil && !child.timedOut && (child.signal != nil || child.status != 0)
        let namesNode = InvalidNodeMessage.namesNode(n, in: text)
        let namesMachine = InvalidNodeMessage.namesNodes(machine.nodes, in: text)
        let ok = stopped && namesNode && namesMachine
        var why: [String] = []
        if let e = child.launchError { why.append("could not run the child: \(e)") }
        if child.timedOut { why.append("the child did not finish within 300 s") }
        if child.launchError == nil && !child.timedOut && !stopped { why.append("the heap was accepted (child exit status 0)") }
        if stopped && !namesNode { why.append("the message does not name node \(n)") }
        if stopped && !namesMachine { why.append("the message does not name the nodes \(nodeListText(machine.nodes))") }
        let outcome = child.signal.map { "stopped by signal \($0)" } ?? "exit status \(child.status)"
        notes.append("f: child `gomem numa --check-invalid-node \(n)`: \(outcome); \(ok ? "ok" : "FAIL: " + why.joined(separator: "; "))")
        let shown = text.split(separator: "\n").prefix(4).map { "   | " + $0 }.joined(separator: "\n")
        notes.append(shown.isEmpty ? "   | (no output)" : shown)
        return [PlacementRow(caseName: "f invalid node", thread: "-", kind: "bind(\(n))", census: nil,
                             expected: "refused, names \(n) and \(nodeListText(machine.nodes))", ok: ok)]
    }
}

/// Reading the refusal of an invalid node. The wording is the allocator's;
/// this accepts any message that names the node ("node 7", "node: 7") and the
/// machine's nodes as a range ("0-1", "0...1", "0..<2", "0 to 1") or a list
/// ("0, 1", "0 and 1", "[0, 1]").
enum InvalidNodeMessage {
    static func namesNode(_ n: Int, in text: String) -> Bool {
        matches("node[^0-9\\n]{0,12}\(n)(?![0-9])", text)
    }

    static func namesNodes(_ nodes: [Int], in text: String) -> Bool {
        guard let first = nodes.first, let last = nodes.last else { return false }
        let lone = { (k: Int) in "(?:^|[^0-9])\(k)(?![0-9])" }
        if nodes.count == 1 { return matches("node[^0-9\\n]{0,20}\(lone(first))", text) }
        let range = "\(lone(first))\\s*(?:-|–|\\.\\.\\.|…|to|through)\\s*\(last)(?![0-9])"
        let halfOpen = "\(lone(first))\\s*\\.\\.<\\s*\(last + 1)(?![0-9])"
        let separator = "(?:\\s*,\\s*|\\s+|\\s*,?\\s*(?:and|or)\\s+)"
        let list = ([lone(first)] + nodes.dropFirst().map { "\($0)(?![0-9])" }).joined(separator: separator)
        return matches(range, text) || (nodes == Array(first...last) && matches(halfOpen, text)) || matches(list, text)
    }

    static func matches(_ pattern: String, _ text: String) -> Bool {
        guard let r = try? Regex(pattern).ignoresCase() else { return false }
        return text.firstMatch(of: r) != nil
    }
}

/// `gomem numa --check-invalid-node N`: create a heap bound to node N and use
/// it. GoHeap should stop the process while creating the heap; if it gets
/// through, say so and exit 0, which case f reports as a failure.
func runInvalidNodeChild(_ n: Int) {
    let heap = Heap(configuration: HeapConfiguration(numaPolicy: .bind(node: n)))
    let p = heap.allocate(byteCount: 4 << 20)
    Placement.touch(UInt(bitPattern: p), bytes: 4 << 20)
    let node = NUMA.node(ofAddress: p).map(String.init) ?? "unknown"
    heap.deallocate(p)
    print("accepted: Heap(configuration:) with .bind(node: \(n)) was created on nodes \(nodeListText(NUMAMachine.current().nodes)) and allocated 4 MiB (first page on node \(node))")
}

// MARK: threads and processes

/// One result per thread, each written by its own thread before the join.
final class ResultSlots<T: Sendable>: @unchecked Sendable {
    private let lock = Mutex<[T?]>([])
    init(count: Int) { lock.withLock { $0 = Array(repeating: nil, count: count) } }
    subscript(i: Int) -> T {
        get { lock.withLock { $0[i]! } }
        set { lock.withLock { $0[i] = newValue } }
    }
    var values: [T] { lock.withLock { $0.map { $0! } } }
}

/// pthread_barrier_t, reusable.
final class Barrier: @unchecked Sendable {
    private let b = UnsafeMutablePointer<pthread_barrier_t>.allocate(capacity: 1)
    init(count: Int) { pthread_barrier_init(b, nil, UInt32(count)) }
    deinit { pthread_barrier_destroy(b); b.deallocate() }
    func wait() { _ = pthread_barrier_wait(b) }
}

/// Turns numbered 0, 1, 2...: waitForTurn(k) returns once k turns have passed.
final class Baton: Sendable {
    private let turn = Atomic<Int>(0)
    func waitForTurn(_ k: Int) {
        while turn.load(ordering: .acquiring) != k { usleep(200) }
    }
    func pass() { turn.add(1, ordering: .releasing) }
}

/// A child process's outcome.
struct ChildRun {
    var status: Int32 = 0
    var signal: Int32?
    var stdout = "", stderr = ""
    var timedOut = false
    var launchError: String?

    /// Runs this executable again with `args`, its output in files (so it
    /// cannot block on a full pipe), killing it after `timeoutSeconds`.
    /// posix_spawn rather than Foundation's Process: in the bare guest of
    /// scripts/numa-vm.sh, Process's run loop complains about its socket pair.
    static func gomem(_ args: [String], timeoutSeconds: Double) -> ChildRun {
        var r = ChildRun()
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gomem-numa-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout").path, err = dir.appendingPathComponent("stderr").path

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, nil, &argv, environ)
        if rc != 0 {
            r.launchError = "\(exe): \(String(cString: strerror(rc)))"
            return r
        }
        let start = monotonicNanos()
        var raw: Int32 = 0
        while true {
            let w = waitpid(pid, &raw, WNOHANG)
            if w == pid { break }
            if w < 0 && errno != EINTR {
                r.launchError = "waitpid: \(String(cString: strerror(errno)))"
                return r
            }
            if !r.timedOut && Double(monotonicNanos() - start) / 1e9 > timeoutSeconds {
                r.timedOut = true
                kill(pid, SIGKILL)
            }
            usleep(10_000)
        }
        // WIFEXITED / WTERMSIG by hand: the C macros are not visible to Swift.
        if raw & 0x7f == 0 { r.status = (raw >> 8) & 0xff } else { r.signal = raw & 0x7f }
        r.stdout = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        r.stderr = (try? String(contentsOfFile: err, encoding: .utf8)) ?? ""
        return r
    }
}
