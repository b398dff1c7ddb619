// IncrementalMap+Codable: encoded and decoded as Dictionary is.
//
// Design note: the same containers as Dictionary, so the two are
// interchangeable in any encoded form: a keyed container when the key is a
// String, an Int, or CodingKeyRepresentable, otherwise an unkeyed container of
// alternating keys and values. Entries are written in the traversal order
// (random, like Go's encoding of a map before sorting). Decoding inserts the
// entries one by one into an empty map, as Go's json.Unmarshal does, so the
// map grows by Go's rule; it allocates from the heap in the decoder's
// userInfo[GoCollectionsCoding.heapKey] if there is one, else Heap.shared.

import GoHeap

/// Coding options for GoCollections' containers.
public enum GoCollectionsCoding {
    /// A decoder's userInfo entry (a `Heap`) for the containers it decodes to
    /// allocate from; absent, they use Heap.shared.
    public static let heapKey = CodingUserInfoKey(rawValue: "GoCollections.heap")!

    static func heap(for decoder: Decoder) -> Heap {
        decoder.userInfo[heapKey] as? Heap ?? .shared
    }
}

/// Dictionary's coding key: a string, or an integer also written as a string.
struct _MapCodingKey: CodingKey {
    let stringValue: String
    let intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = Int(stringValue)
    }

    init(intValue: Int) {
        self.stringValue = "\(intValue)"
        self.intValue = intValue
    }

    init(codingKey: CodingKey) {
        self.stringValue = codingKey.stringValue
        self.intValue = codingKey.intValue
    }
}

extension IncrementalMap: Encodable where Key: Encodable, Value: Encodable {
    public func encode(to encoder: Encoder) throws {
        if Key.self == String.self {
            var container = encoder.container(keyedBy: _MapCodingKey.self)
            for (key, value) in self {
                try container.encode(value, forKey: _MapCodingKey(stringValue: key as! String))
            }
        } else if Key.self == Int.self {
            var container = encoder.container(keyedBy: _MapCodingKey.self)
            for (key, value) in self {
                try container.encode(value, forKey: _MapCodingKey(intValue: key as! Int))
            }
        } else if Key.self is CodingKeyRepresentable.Type {
            var container = encoder.container(keyedBy: _MapCodingKey.self)
            for (key, value) in self {
                let codingKey = (key as! CodingKeyRepresentable).codingKey
                try container.encode(value, forKey: _MapCodingKey(codingKey: codingKey))
            }
        } else {
            var container = encoder.unkeyedContainer()
            for (key, value) in self {
                try container.encode(key)
                try container.encode(value)
            }
        }
    }
}

extension IncrementalMap: Decodable where Key: Decodable, Value: Decodable {
    public init(from decoder: Decoder) throws {
        self.init(heap: GoCollectionsCoding.heap(for: decoder))
        if Key.self == String.self {
            let container = try decoder.container(keyedBy: _MapCodingKey.self)
            for key in container.allKeys {
                self[key.stringValue as! Key] = try container.decode(Value.self, forKey: key)
            }
        } else if Key.self == Int.self {
            let container = try decoder.container(keyedBy: _MapCodingKey.self)
            for key in container.allKeys {
                guard let i = key.intValue else {
                    throw DecodingError.typeMismatch(Int.self, DecodingError.Context(
                        codingPath: decoder.codingPath + [key],
                        debugDescription: "Expected Int key but found String key instead."))
                }
                self[i as! Key] = try container.decode(Value.self, forKey: key)
            }
        } else if let keyType = Key.self as? CodingKeyRepresentable.Type {
            let container = try decoder.container(keyedBy: _MapCodingKey.self)
            for key in container.allKeys {
                guard let k = keyType.init(codingKey: key) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: key, in: container,
                        debugDescription: "Could not convert key to type \(Key.self)")
                }
                self[k as! Key] = try container.decode(Value.self, forKey: key)
            }
        } else {
            var container = try decoder.unkeyedContainer()
            if let n = container.count, n % 2 != 0 {
                throw DecodingError.dataCorrupted(DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: "Expected collection of key-value pairs; encountered odd-length array instead."))
            }
            while !container.isAtEnd {
                let key = try container.decode(Key.self)
                guard !container.isAtEnd else {
                    throw DecodingError.dataCorrupted(DecodingError.Context(
                        codingPath: decoder.codingPath,
                        debugDescription: "Unkeyed container reached end before value in key-value pair."))
                }
                self[key] = try container.decode(Value.self)
            }
        }
    }
}
