# pipelines.sh: shell work for libgoheap-malloc's real-program check. Run as
# `bash pipelines.sh` with and without LD_PRELOAD; the outputs must match.
# Pipes, subshells, command and process substitution, here-documents, and a
# fork/exec of an external program at every step; all deterministic.
set -euo pipefail
LC_ALL=C
export LC_ALL

seq 1 20000 | awk '{ print ($1 * 7919) % 10007, $1 }' | sort -n | uniq -c -w 5 | tail -3
( for i in $(seq 1 300); do echo "line $i $((i * i % 97))"; done ) | grep -E ' (1|13|42)$' | wc -l
total=0
while read -r a b; do total=$((total + a * b)); done < <(seq 1 2000 | paste - - )
echo "total $total"
words=$(printf '%s\n' alpha beta gamma delta epsilon zeta eta theta | sort -r | tr '\n' ' ')
echo "words: $words"
declare -A seen=()
for w in $words $words; do seen[$w]=$(( ${seen[$w]:-0} + 1 )); done
for k in $(printf '%s\n' "${!seen[@]}" | sort); do printf '%s=%s ' "$k" "${seen[$k]}"; done; echo
big=""
for i in $(seq 1 3000); do big+="x$i,"; done
echo "${#big} ${big:100:20} $(echo "$big" | tr ',' '\n' | sort -t x -k2 -n | tail -1)"
cat <<DOC | sed -e 's/a/A/g' | rev | cut -c1-20
a here-document with $(echo substitution) and ${#words} characters of words
and a second line, $((6 * 7))
DOC
for n in 1 2 3 4 5 6 7 8; do ( sh -c "echo sub \$1 \$((\$1 * 3))" _ "$n" ) & done | sort
wait
echo "$(echo "$(echo "$(echo nested)")")"
printf '%s\n' {a..z}{0..9} | split -l 26 --filter='md5sum' | sort | md5sum
ls /usr/include | LC_ALL=C sort | head -60 | xargs -n 7 echo | awk '{ n += NF } END { print NR, n }'
