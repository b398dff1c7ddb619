// GrowableArray+Codable: encoded and decoded as Array is.
//
// Design note: an unkeyed container of the elements, as Array writes, so the
// two are interchangeable in any encoded form. Decoding reserves the
// container's count when the decoder knows it (one growth from empty, Go's
// capacity for that many elements), else appends one by one; it allocates
// from the heap in the decoder's userInfo[GoCollectionsCoding.heapKey] if
// there is one, else Heap.shared.

extension GrowableArray: Encodable where Element: Encodable {
    public func encode(to encoder: Encoder) throws {
        var container = encoder.unkeyedContainer()
        for e in self { try container.encode(e) }
    }
}

extension GrowableArray: Decodable where Element: Decodable {
    public init(from decoder: Decoder) throws {
        self.init(heap: GoCollectionsCoding.heap(for: decoder))
        var container = try decoder.unkeyedContainer()
        if let n = container.count { reserveCapacity(n) }
        while !container.isAtEnd { append(try container.decode(Element.self)) }
    }
}
