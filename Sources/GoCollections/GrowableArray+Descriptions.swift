// GrowableArray+Descriptions: text and mirror, formatted as Array's.
//
// Design note: description and debugDescription are both Array's format
// (`["a", "b"]`, `[]` when empty; elements written with debugPrint, so strings
// are quoted). The growth state has its own properties: capacity,
// growthCount, bytesCopied and heap.

extension GrowableArray: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { _arrayDescription(self) }
    public var debugDescription: String { _arrayDescription(self) }
}

extension GrowableArray: CustomReflectable {
    public var customMirror: Mirror { Mirror(self, unlabeledChildren: self, displayStyle: .collection) }
}
