"""pywork.py: a deterministic, allocation-heavy CPython workload.

Run by scripts/malloc-check.sh with PYTHONMALLOC=malloc (every object is a
malloc block) and PYTHONHASHSEED=0, once with libgoheap-malloc.so preloaded
and once without: the outputs must be byte-identical.
"""
import collections
import hashlib
import json
import random
import re
import struct
import threading
import zlib

rng = random.Random(12)
out = []


def digest(obj):
    return hashlib.sha256(repr(obj).encode()).hexdigest()[:16]


# dicts and sets growing and shrinking
d = {}
for i in range(200000):
    d["k%d" % rng.randrange(100000)] = [i] * rng.randrange(1, 6)
    if i % 3 == 0:
        d.pop("k%d" % rng.randrange(100000), None)
out.append(("dict", len(d), digest(sorted(d.items())[:1000])))
s = {rng.randrange(1 << 40) for _ in range(100000)}
s -= {x for x in s if x % 7 == 0}
out.append(("set", len(s), digest(sorted(s)[:1000])))

# strings: joins, slicing, encodings, regular expressions
words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyzäöüß") for _ in range(rng.randrange(1, 20)))
         for _ in range(50000)]
text = " ".join(words)
out.append(("text", len(text), hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]))
found = re.findall(r"\b([a-z]{3,6})([äöü]\w*)?\b", text)
out.append(("re", len(found), digest(found[:500])))
out.append(("subn", re.subn(r"(\w)(\w)", r"\2\1", text[:200000])[1]))
counts = collections.Counter(w[:2] for w in words)
out.append(("counter", digest(sorted(counts.most_common(50)))))

# json round trips of nested structures
tree = [{"id": i, "name": words[i], "tags": words[i:i + rng.randrange(0, 8)], "v": rng.random()}
        for i in range(20000)]
blob = json.dumps(tree, sort_keys=True)
back = json.loads(blob)
out.append(("json", len(blob), back == tree, hashlib.sha256(blob.encode()).hexdigest()[:16]))

# bytes, bytearrays, compression
ba = bytearray()
for i in range(100000):
    ba += struct.pack("<IQ", i, rng.getrandbits(64))
comp = zlib.compress(bytes(ba), 6)
out.append(("bytes", len(ba), len(comp), zlib.decompress(comp) == ba, hashlib.sha256(comp).hexdigest()[:16]))

# big integers and list sorting
big = 1
for i in range(1, 3000):
    big *= i
out.append(("factorial", big.bit_length(), hashlib.sha256(hex(big).encode()).hexdigest()[:16]))
lst = [rng.random() for _ in range(300000)]
lst.sort()
out.append(("sorted", digest(lst[::10000])))

# threads building their own structures (results gathered in order)
results = [None] * 4


def work(k):
    r = random.Random(k)
    acc = collections.defaultdict(list)
    for i in range(50000):
        acc[r.randrange(1000)].append(str(i) * r.randrange(1, 4))
    results[k] = digest(sorted((key, len(v), v[-1]) for key, v in acc.items()))


threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out.append(("threads", results))

for line in out:
    print(*line)
