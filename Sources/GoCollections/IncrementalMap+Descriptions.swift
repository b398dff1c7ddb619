// IncrementalMap+Descriptions: text and mirrors, formatted as Dictionary's.
//
// Design note: description and debugDescription are both Dictionary's format
// (`["a": 1, "b": 2]`, `[:]` when empty; keys and values written with
// debugPrint, so strings are quoted), in the map's traversal order, which is
// random per map and changes with every structural change (see
// IncrementalMap+Collection.swift): compare descriptions only of maps of at
// most one entry. The keys and values views print like an array, and their
// debugDescription names the view, as Dictionary.Keys and Dictionary.Values
// do. The table's shape has its own text: debugState.

extension IncrementalMap: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { _description() }
    public var debugDescription: String { _description() }

    func _description() -> String {
        if isEmpty { return "[:]" }
        var result = "["
        var first = true
        for (k, v) in self {
            if first { first = false } else { result += ", " }
            debugPrint(k, terminator: "", to: &result)
            result += ": "
            debugPrint(v, terminator: "", to: &result)
        }
        result += "]"
        return result
    }
}

extension IncrementalMap: CustomReflectable {
    public var customMirror: Mirror { Mirror(self, unlabeledChildren: self, displayStyle: .dictionary) }
}

/// Array's format for a sequence: `["a", "b"]`, elements written with debugPrint.
func _arrayDescription<S: Sequence>(_ elements: S) -> String {
    var result = "["
    var first = true
    for e in elements {
        if first { first = false } else { result += ", " }
        debugPrint(e, terminator: "", to: &result)
    }
    result += "]"
    return result
}

extension IncrementalMap.Keys: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { _arrayDescription(self) }
    public var debugDescription: String { "IncrementalMap.Keys(" + _arrayDescription(self) + ")" }
    public var customMirror: Mirror { Mirror(self, unlabeledChildren: self, displayStyle: .collection) }
}

extension IncrementalMap.Values: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { _arrayDescription(self) }
    public var debugDescription: String { "IncrementalMap.Values(" + _arrayDescription(self) + ")" }
    public var customMirror: Mirror { Mirror(self, unlabeledChildren: self, displayStyle: .collection) }
}
