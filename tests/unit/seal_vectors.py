#!/usr/bin/python3
"""seal_vectors.py - a second, independent implementation of proto/SIGNING.md.

Reads a JSON description of a sealed envelope (header fields and, per seal,
its path and either a typed value with its salt or, for a withheld field, only
its digest), recomputes every visible field's canonical bytes and digest from
SIGNING.md with hashlib, builds the signed bytes and prints the SHA-256 hex of
them on one line. The C test (tests/unit/check_seal.c) compares that with its
own; an agency can use this file as a reference when porting verification.

    seal_vectors.py [--dump] FILE

--dump also prints the signed bytes item by item (the layout in SIGNING.md).
Exit status 0 on success; 1 (with the reason on stderr) if a given digest does
not match the recomputed one or the input is malformed.

Input (all byte strings are lowercase hex):
{
  "header": {"message_id": HEX, "sender": STR, "recipients": [STR],
             "kind": INT, "purpose": INT, "handling": INT,
             "legal_basis": {"basis": STR, "consent": INT,
                             "consent_reference": STR},   (may be omitted)
             "created_us": INT, "correlation_id": HEX,
             "subject_keys": [HEX], "officer": STR, "payload": STR},
  "seals": [{"path": STR, "type": TYPE, "repeated": BOOL (optional),
             "value": V, "salt": HEX, "digest": HEX (optional)},
            {"path": STR, "digest": HEX}]                (a withheld field)
}
TYPE is one of bool, int32, enum, uint32, int64, uint64, string, bytes (the
value of bytes is hex).
"""
import hashlib
import json
import struct
import sys

DOMAIN = b"ketenbus-envelope-v1\n"
SALT_LEN = 16
DIGEST_LEN = 32


class Malformed(Exception):
    pass


def u32(n):
    return struct.pack(">I", n)


def blob(b):
    return u32(len(b)) + b


def scalar(typ, v):
    """Canonical bytes of one value (SIGNING.md, "Leaf values")."""
    if typ == "bool":
        return b"\x01" if v else b"\x00"
    if typ in ("int32", "enum"):
        return int(v).to_bytes(4, "big", signed=True)
    if typ == "uint32":
        return int(v).to_bytes(4, "big", signed=False)
    if typ == "int64":
        return int(v).to_bytes(8, "big", signed=True)
    if typ == "uint64":
        return int(v).to_bytes(8, "big", signed=False)
    if typ == "string":
        return v.encode("utf-8")
    if typ == "bytes":
        return bytes.fromhex(v)
    raise Malformed("unknown type %r" % typ)


def leaf_value(seal):
    typ = seal["type"]
    if seal.get("repeated"):
        out = u32(len(seal["value"]))
        for element in seal["value"]:
            out += blob(scalar(typ, element))
        return out
    return scalar(typ, seal["value"])


def digest(salt, path, value):
    p = path.encode("utf-8")
    return hashlib.sha256(salt + blob(p) + blob(value)).digest()


def signed_items(doc):
    """The signed bytes as (label, bytes) items, in SIGNING.md order."""
    h = doc["header"]
    lb = h.get("legal_basis") or {}
    items = [("domain", DOMAIN),
             ("message_id", blob(bytes.fromhex(h["message_id"]))),
             ("sender", blob(h["sender"].encode("utf-8"))),
             ("recipients count", u32(len(h["recipients"])))]
    for r in h["recipients"]:
        items.append(("  recipient", blob(r.encode("utf-8"))))
    items += [("kind", blob(scalar("int32", h["kind"]))),
              ("purpose", blob(scalar("int32", h["purpose"]))),
              ("handling", blob(scalar("int32", h["handling"]))),
              ("legal_basis.basis", blob(lb.get("basis", "").encode("utf-8"))),
              ("legal_basis.consent", blob(scalar("int32", lb.get("consent", 0)))),
              ("legal_basis.consent_reference",
               blob(lb.get("consent_reference", "").encode("utf-8"))),
              ("created_us", blob(scalar("int64", h["created_us"]))),
              ("correlation_id", blob(bytes.fromhex(h["correlation_id"]))),
              ("subject_keys count", u32(len(h["subject_keys"])))]
    for k in h["subject_keys"]:
        items.append(("  subject_key", blob(bytes.fromhex(k))))
    items += [("officer", blob(h["officer"].encode("utf-8"))),
              ("payload member", blob(h["payload"].encode("utf-8")))]

    seals = []
    for s in doc["seals"]:
        path = s["path"]
        if "salt" in s:
            salt = bytes.fromhex(s["salt"])
            if len(salt) != SALT_LEN:
                raise Malformed("%s: salt is %d bytes" % (path, len(salt)))
            d = digest(salt, path, leaf_value(s))
            if "digest" in s and bytes.fromhex(s["digest"]) != d:
                raise Malformed("%s: given digest %s, recomputed %s"
                                % (path, s["digest"], d.hex()))
        else:
            d = bytes.fromhex(s["digest"])  # withheld: only the digest is known
        if len(d) != DIGEST_LEN:
            raise Malformed("%s: digest is %d bytes" % (path, len(d)))
        seals.append((path.encode("utf-8"), d))
    seals.sort(key=lambda pd: pd[0])  # bytewise order of the UTF-8 paths
    for a, b in zip(seals, seals[1:]):
        if a[0] == b[0]:
            raise Malformed("duplicate seal path %s" % a[0].decode())
    items.append(("seals count", u32(len(seals))))
    for path, d in seals:
        items.append(("  seal path", blob(path)))
        items.append(("  seal digest", blob(d)))
    return items


def main(argv):
    args = argv[1:]
    dump = bool(args) and args[0] == "--dump"
    if dump:
        args = args[1:]
    if len(args) != 1:
        sys.stderr.write("usage: seal_vectors.py [--dump] FILE\n")
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            doc = json.load(f)
        items = signed_items(doc)
    except (OSError, ValueError, KeyError, TypeError, Malformed) as e:
        sys.stderr.write("seal_vectors.py: %s\n" % e)
        return 1
    if dump:
        for label, b in items:
            print("%-32s %s" % (label, b.hex()))
    print(hashlib.sha256(b"".join(b for _, b in items)).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
