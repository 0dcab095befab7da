"""maketok.py: small Llama-3-style tokenizer.json files for the tests.

python3 maketok.py OUT.json [EOT_ID]: the 256 byte symbols, a few merges
("Ġt", "he", "Ġthe", "in", "Ġin"), ignore_merges, and <|end_of_text|> as an
added special token with id EOT_ID (default 261; above 65535 the
vocabulary no longer fits uint16)."""
import json
import sys

REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
         "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def byte_chars():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tokenizer(eot_id=261):
    bc = byte_chars()
    vocab = {bc[b]: b for b in range(256)}
    merges = [["\u0120", "t"], ["h", "e"], ["\u0120t", "he"], ["i", "n"], ["\u0120", "in"]]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    return {"version": "1.0", "normalizer": None,
            "added_tokens": [{"id": eot_id, "content": "<|end_of_text|>", "single_word": False,
                              "lstrip": False, "rstrip": False, "normalized": False,
                              "special": True}],
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": REGEX}, "behavior": "Isolated",
                 "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                 "use_regex": False}]},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "dropout": None, "ignore_merges": True, "vocab": vocab,
                      "merges": merges}}


if __name__ == "__main__":
    with open(sys.argv[1], "w") as f:
        json.dump(tokenizer(int(sys.argv[2]) if len(sys.argv) > 2 else 261), f)
