import Testing
import GoCollections

/// Indices are checked on every use: one from before a structural change, or
/// from another map, traps instead of reading a moved or freed entry. Each
/// case runs in a child process (a Swift Testing exit test).
@Suite struct IncrementalMapIndexTrapTests {
    @Test func indexFromBeforeAnInsertTraps() async {
        await #expect(processExitsWith: .failure) {
            var m: IncrementalMap = [1: "a", 2: "b"]
            let i = m.startIndex
            m[3] = "c"
            _ = m[i]
        }
    }

    @Test func indexFromBeforeADeleteTraps() async {
        await #expect(processExitsWith: .failure) {
            var m: IncrementalMap = [1: "a", 2: "b"]
            let i = m.index(forKey: 1)!
            m[2] = nil
            m.values[i] = "x"
        }
    }

    @Test func indexOfAnotherMapTraps() async {
        await #expect(processExitsWith: .failure) {
            let a: IncrementalMap = [1: "a"], b: IncrementalMap = [1: "a"]
            _ = b[a.startIndex]
        }
    }

    @Test func duplicateKeysInALiteralTrap() async {
        await #expect(processExitsWith: .failure) {
            let k = 1
            let m: IncrementalMap = [k: "a", k: "b"]
            _ = m.count
        }
    }

    /// Updating a present key's value in place is not a structural change:
    /// the index stays valid (when the map is not growing).
    @Test func valueUpdatesKeepIndices() {
        var m: IncrementalMap = [1: "a", 2: "b"]
        let i = m.index(forKey: 1)!
        m[1] = "z"
        m.values[i] += "!"
        #expect(m[i].value == "z!" && m.index(forKey: 1) == i)
    }
}
