#!/usr/bin/python3
"""Reference subject keys for check_subject.c, written from docs/SUBJECT_KEYS.md.

An independent implementation: it shares no code or tables with
lib/kb_subject.c. Accents come off Latin letters through Unicode's own
decomposition (NFD, then the combining marks dropped) instead of a table;
Greek and Cyrillic are lower-cased by Python's str.lower(); dates are checked
by datetime; the key is Python's hmac with hashlib.sha256. Only the letters
that have no decomposition (ß, æ, ø, ł, ...) are listed by hand.

Modes:
    subject_ref.py rows FILE
        FILE has lines "<type> <hex of the UTF-8 value>"; prints per line
        "ok <normalised as hex> <key>" or "error", the key under TEST_KEY.
    subject_ref.py codepoints
        For every code point C of the blocks the rules name, prints
        "<C in hex> <hex of the normalised family name of 'a' C 'b'>" or
        "<C in hex> error".
    subject_ref.py vectors
        The test vector table of docs/SUBJECT_KEYS.md, as Markdown rows.
"""
import datetime
import hashlib
import hmac
import re
import sys
import unicodedata

TEST_KEY = b"ketenbus-test-vectors-not-secret"
assert len(TEST_KEY) == 32


class Invalid(Exception):
    pass


def digits(value, count):
    if re.search(r"[^0-9 .\-]", value, re.ASCII):
        raise Invalid("not a digit")
    d = re.sub(r"[ .\-]", "", value)
    if len(d) != count:
        raise Invalid("%d digits" % len(d))
    return d


def bsn(value):
    d = digits(value, 9)
    weights = [9, 8, 7, 6, 5, 4, 3, 2, -1]
    if d == "0" * 9 or sum(int(c) * w for c, w in zip(d, weights)) % 11:
        raise Invalid("elfproef")
    return d


def vnummer(value):
    return digits(value, 10)


def document(value):
    if not re.fullmatch(r"[A-Za-z0-9 .\-]*", value, re.ASCII):
        raise Invalid("character")
    d = re.sub(r"[ .\-]", "", value).upper()
    if not 5 <= len(d) <= 32:
        raise Invalid("length")
    return d


def phone(value):
    if re.search(r"[^0-9+ .\-()]", value, re.ASCII):
        raise Invalid("character")
    s = re.sub(r"[ .\-]", "", value)
    if s.startswith("+") or s.startswith("00"):
        s = s.replace("(0)", "")
    s = s.replace("(", "").replace(")", "")
    if "+" in s[1:]:
        raise Invalid("plus")
    if s.startswith("+"):
        d = s[1:]
    elif s.startswith("00"):
        d = s[2:]
    elif s.startswith("0"):
        d = "31" + s[1:]
    else:
        raise Invalid("prefix")
    if d.startswith("310"):
        d = "31" + d[3:]
    if not d or d[0] == "0" or not 8 <= len(d) <= 15:
        raise Invalid("digits")
    return "+" + d


# Latin letters of U+00C0-U+017F (and Romanian U+0218-U+021B) that NFD does
# not split into a base letter and accents.
NO_DECOMPOSITION = {
    "æ": "ae", "ð": "d", "ø": "o", "þ": "th", "ß": "ss", "đ": "d", "ħ": "h",
    "ı": "i", "ĳ": "ij", "ĸ": "k", "ŀ": "l", "ł": "l", "ŉ": "n", "ŋ": "n",
    "œ": "oe", "ŧ": "t", "ſ": "s",
}

SEPARATORS = set(" \t-.\u00a0\u202f\u205f\u2212\u3000")
SEPARATORS |= {chr(c) for c in range(0x2000, 0x200B)}  # spaces
SEPARATORS |= {chr(c) for c in range(0x2010, 0x2016)}  # hyphens and dashes
DROPPED = set("'`\u00ad\u00b4\u02bc\u2018\u2019\u200b\u200c\u200d\u2060\ufeff")
DROPPED |= {chr(c) for c in range(0x0300, 0x0370)}  # combining accents


# Code points beyond Latin-1 and General Punctuation that are no letter of a
# name (step 6), refused: the digits of other scripts by the zero of each run
# of ten, fullwidth punctuation as ASCII punctuation moved to U+FF00, the
# letters of CJK Symbols and Punctuation and private use by category.
DIGIT_ZEROS = [0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6,
               0x0D66, 0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0xFF10]
for zero in DIGIT_ZEROS:
    assert [unicodedata.decimal(chr(zero + d)) for d in range(10)] == list(range(10)), hex(zero)
ARABIC_PUNCTUATION = set("\u060c\u061b\u061f\u066a\u066b\u066c\u066d\u06d4")
FULLWIDTH_PUNCTUATION = {chr(ord(c) + 0xFEE0) for c in map(chr, range(0x21, 0x7F)) if not c.isalnum()}
FULLWIDTH_PUNCTUATION |= {chr(c) for c in range(0xFF5F, 0xFF66)}  # white parentheses, halfwidth CJK


def no_letter(ch):
    cp = ord(ch)
    return (any(zero <= cp <= zero + 9 for zero in DIGIT_ZEROS)
            or ch in ARABIC_PUNCTUATION
            or 0x2070 <= cp <= 0x2BFF
            or (0x3001 <= cp <= 0x303F and not unicodedata.category(ch).startswith("L"))
            or 0xFE10 <= cp <= 0xFE6F
            or ch in FULLWIDTH_PUNCTUATION
            or 0xFFF0 <= cp <= 0xFFFF
            or 0x1F000 <= cp <= 0x1FBFF
            or unicodedata.category(ch) == "Co"
            or 0xFDD0 <= cp <= 0xFDEF or cp & 0xFFFE == 0xFFFE)


def latin(ch):
    if not unicodedata.category(ch).startswith("L"):
        raise Invalid("symbol")
    low = ch.lower()
    if low in NO_DECOMPOSITION:
        return NO_DECOMPOSITION[low]
    base = "".join(c for c in unicodedata.normalize("NFD", low) if not unicodedata.combining(c))
    assert re.fullmatch(r"[a-z]+", base), "no ASCII base for U+%04X" % ord(ch)
    return base


def letter(ch):
    cp = ord(ch)
    if cp < 0x80:
        if re.fullmatch(r"[A-Za-z]", ch):
            return ch.lower()
        raise Invalid("ASCII")
    if cp < 0xC0 or 0x2000 <= cp < 0x2070 or no_letter(ch):
        raise Invalid("symbol or control")
    if cp < 0x180 or 0x218 <= cp <= 0x21B:
        return latin(ch)
    if 0x370 <= cp < 0x530:
        low = ch.lower()
        if len(low) != 1:
            low = ch
        return "σ" if low == "ς" else low
    return ch


def name_part(text):
    words, word = [], ""
    for ch in text:
        if ch in SEPARATORS:
            if word:
                words.append(word)
            word = ""
        elif ch not in DROPPED:
            word += letter(ch)
    if word:
        words.append(word)
    return " ".join(words)


def name_birth(value):
    parts = value.split("|")
    if len(parts) != 3:
        raise Invalid("bars")
    family, given, date = name_part(parts[0]), name_part(parts[1]), parts[2].strip(" ")
    if not family:
        raise Invalid("family")
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", date, re.ASCII):
        raise Invalid("date form")
    try:
        day = datetime.date.fromisoformat(date)
    except ValueError:
        raise Invalid("date")
    if not 1900 <= day.year <= 2099:
        raise Invalid("year")
    return "%s|%s|%s" % (family, given, date)


TYPES = {"bsn": bsn, "vnummer": vnummer, "document": document, "name_birth": name_birth, "phone": phone}


def normalise(kind, raw):
    if len(raw) > 256:
        raise Invalid("too long")
    try:
        value = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise Invalid("UTF-8")
    return TYPES[kind](value)


def key(kind, normalised, chain_key=TEST_KEY):
    return hmac.new(chain_key, ("%s:%s" % (kind, normalised)).encode("utf-8"), hashlib.sha256).hexdigest()


def rows(path):
    with open(path, "rb") as f:
        for line in f.read().decode("ascii").splitlines():
            kind, hexval = (line.split(" ") + [""])[:2]
            try:
                n = normalise(kind, bytes.fromhex(hexval))
            except Invalid:
                print("error")
                continue
            print("ok %s %s" % (n.encode("utf-8").hex(), key(kind, n)))


def codepoints():
    blocks = [range(0x01, 0x800),  # Latin to NKo: Greek, Cyrillic, Arabic and its digits
              range(0x0900, 0x1100),  # Indic scripts, Thai, Lao, Tibetan, Myanmar
              range(0x1780, 0x1900),  # Khmer, Mongolian
              range(0x2000, 0x2C80),  # General Punctuation to Glagolitic and Latin Extended-C
              range(0x3000, 0x3100),  # CJK Symbols and Punctuation, kana
              range(0xD7F0, 0xD800), range(0xE000, 0xE010), range(0xF8F0, 0xF910), range(0xFDC0, 0x10000),
              range(0x1EFF0, 0x1FC10),  # emoji and their neighbours
              [0x4E2D, 0x1FFFD, 0x1FFFE, 0x1FFFF, 0x2FFFE, 0x3FFFF, 0xEFFFD, 0xEFFFF, 0xF0000, 0xFFFFD,
               0x100000, 0x10FFFD, 0x10FFFF]]
    for block in blocks:
        for cp in block:
            try:
                n = name_birth("a%sb|c|2000-01-01" % chr(cp))
                print("%x %s" % (cp, n.split("|")[0].encode("utf-8").hex()))
            except Invalid:
                print("%x error" % cp)


# The examples of docs/SUBJECT_KEYS.md, in its order.
VECTORS = [
    ("bsn", "123456782"),
    ("bsn", "1234.56.782"),
    ("bsn", "111222333"),
    ("vnummer", "12 3456 7890"),
    ("document", "nw-92 bf1 k3"),
    ("name_birth", "Jansen|Jan|1990-01-01"),
    ("name_birth", "Çelik-Öztürk | Ayşe  Nur |2009-03-14"),
    ("name_birth", "van der Berg|Anne-Marie|2001-12-31"),
    ("name_birth", "Łukasiewicz|Józef|1978-06-05"),
    ("name_birth", "O'Brien|Seán|1995-02-28"),
    ("name_birth", "Ĳsselmeer|Ruth|2000-02-29"),
    ("name_birth", "Ștefănescu|Ioana|2007-07-01"),
    ("name_birth", "ИВАНОВА|Мария|1999-09-09"),
    ("phone", "06-12345678"),
    ("phone", "+31 (0)6 1234 5678"),
    ("phone", "0031 20 123 4567"),
    ("phone", "+44 (0)20 7946 0958"),
]


def vectors():
    print("| type | value | normalised | subject key |")
    print("|---|---|---|---|")
    for kind, value in VECTORS:
        n = normalise(kind, value.encode("utf-8"))
        cells = [kind, value, n, key(kind, n)]
        # A '|' inside a Markdown table cell, even in code, is written "\|".
        print("| %s |" % " | ".join("`%s`" % c.replace("|", "\\|") for c in cells))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "rows":
        rows(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "codepoints":
        codepoints()
    elif len(sys.argv) == 2 and sys.argv[1] == "vectors":
        vectors()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
