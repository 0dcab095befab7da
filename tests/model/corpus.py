"""corpus.py: real text found on this machine, for comparing tokenizers.

prose: the licences in /usr/share/common-licenses and Debian changelogs;
code: C headers from /usr/include; man: manual pages (roff source);
mixed: translated messages and place names from the gettext catalogues
(.mo) of many languages and scripts, and the non-ASCII lines of copyright
files (people's names). Each kind is capped at `limit` bytes; the files are
taken in sorted order, so one machine gives the same text every time.
"""
import glob
import gettext
import gzip
import os

MIXED_LANGS = ["ru", "uk", "el", "ja", "zh_CN", "zh_TW", "ko", "ar", "he", "hi", "th",
               "vi", "tr", "pl", "cs", "de", "fr", "es", "pt_BR", "fa", "ka", "am", "ta"]


def _read(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _take(paths, limit, per_file):
    out, n = [], 0
    for p in paths:
        b = _read(p)[:per_file]
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not s.strip():
            continue
        out.append(s)
        n += len(s.encode())
        if n >= limit:
            break
    return "\n\n".join(out)


def prose(limit):
    paths = sorted(glob.glob("/usr/share/common-licenses/*"))
    paths += sorted(glob.glob("/usr/share/doc/*/changelog*"))
    return _take(paths, limit, 64 << 10)


def code(limit):
    return _take(sorted(glob.glob("/usr/include/*.h")), limit, 64 << 10)


def man(limit):
    return _take(sorted(glob.glob("/usr/share/man/man1/*.1.gz")), limit, 32 << 10)


def mixed(limit):
    out, n = [], 0
    cats = []
    for lang in MIXED_LANGS:
        cats += sorted(glob.glob("/usr/share/locale/%s/LC_MESSAGES/*.mo" % lang))[:6]
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        for line in _read(path).decode("utf-8", "replace").splitlines():
            if any(ord(c) > 127 for c in line):
                out.append(line)
                n += len(line.encode())
    for path in cats:
        try:
            with open(path, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        for k in sorted(cat, key=str):
            v = cat[k]
            if isinstance(v, str) and v:
                out.append(v)
                n += len(v.encode())
        if n >= limit:
            break
    return "\n".join(out)


KINDS = {"prose": prose, "code": code, "man": man, "mixed": mixed}

if __name__ == "__main__":
    import sys
    kind, limit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(out, "w", encoding="utf-8") as f:
        f.write(KINDS[kind](limit))
