# alloc.py: an allocation-heavy Python script for `gomem bench --programs`,
# run with PYTHONMALLOC=malloc so every object goes through the C allocator.
#
#   python3 alloc.py [SCALE]      (default 100000; the bench passes its own)
#
# Rounds of: a dict of SCALE string keys to small lists and tuples, string
# building and splitting, half the keys deleted, a sort of what is left, a
# list of dicts (records) grouped by a key, and a set of slices. The printed
# total is deterministic (PYTHONHASHSEED does not change it).
import random
import sys

scale = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
rng = random.Random(12)
total = 0
keep = []  # long-lived data across rounds
for rnd in range(6):
    d = {}
    for i in range(scale):
        k = "key-%d-%d" % (i, rnd)
        d[k] = [i, k[4:], (i, rnd)] if i % 3 else {"i": i, "s": str(i) * (i % 5)}
    words = [k.upper() for k in d if len(k) % 3 == 0]
    text = " ".join(words)
    total += len(text) + len(text.split(" "))
    for k in list(d)[::2]:
        del d[k]
    vals = sorted(d, key=lambda s: (len(s), s[::-1]))
    total += len(vals)
    records = [{"id": i, "group": rng.randrange(64), "name": "n%d" % rng.randrange(1000)} for i in range(scale // 2)]
    groups = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r["name"])
    total += sum(len(set(v)) for v in groups.values())
    s = set(text[i:i + 8] for i in range(0, min(len(text), 40 * scale), 7))
    total += len(s)
    keep.append(vals[: scale // 10])
    if len(keep) > 3:
        keep.pop(0)
print("alloc.py: scale %d, total %d" % (scale, total))
