// Claim 9: two threads writing one IncrementalMap. Swift 6 rejects this at
// compile time, so it never runs. After `swift build`, from the repository root:
//   swiftc -swift-version 6 -typecheck -I .build/debug/Modules \
//     -Xcc -fmodule-map-file=.build/debug/CShims.build/module.modulemap docs/claims/race.swift
import Dispatch
import GoCollections

func race() {
    var m = IncrementalMap<Int, Int>()
    DispatchQueue.concurrentPerform(iterations: 2) { i in
        m[i] = i
    }
}
