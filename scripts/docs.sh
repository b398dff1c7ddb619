#!/usr/bin/env bash
# Builds the DocC documentation of GoHeap and GoCollections with the
# toolchain's own docc (no plugin needed): symbol graphs from
# `swift package dump-symbol-graph`, then `docc convert` over each catalog.
# Output: .build/docs/<Module>.doccarchive. Warnings (for example an
# undocumented parameter) fail the build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(swift package dump-symbol-graph --minimum-access-level public 2>&1 | tail -1)
graphs=$(echo "$out" | sed -n 's/.*Files written to //p')
[ -d "$graphs" ] || { echo "no symbol graphs: $out" >&2; exit 1; }
mkdir -p .build/docs
for module in GoHeap GoCollections; do
    dir=.build/docs/symbols-$module
    rm -rf "$dir" && mkdir -p "$dir"
    cp "$graphs/$module".symbols.json "$graphs/$module"@*.symbols.json "$dir/" 2>/dev/null || cp "$graphs/$module".symbols.json "$dir/"
    docc convert "Sources/$module/$module.docc" \
        --fallback-display-name "$module" --fallback-bundle-identifier "org.goheap.$module" \
        --additional-symbol-graph-dir "$dir" \
        --output-path ".build/docs/$module.doccarchive" --warnings-as-errors
    echo "built .build/docs/$module.doccarchive"
done
