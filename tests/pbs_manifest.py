"""PBS's manifest signature rule, written from the spec (pbs-format.md
§4.3) to check manifests independently of dsfs: HMAC-SHA256 with the key's
id key (PBKDF2-HMAC-SHA256 of the key, salt "_id_key", 10 rounds) over the
canonical JSON (sorted keys, no spaces) of the manifest without its
"unprotected" and "signature" members.

    python3 -m pbs_manifest KEYFILE MANIFEST.json   prints True or False
"""
import base64
import hashlib
import hmac
import json
import sys


def signature_ok(keyfile, manifest):
    """Whether manifest (a dict) carries the signature of the key in
    keyfile (a key without KDF, as the fixtures' is)."""
    k = json.load(open(keyfile))
    assert k["kdf"] is None, "a key file without KDF"
    id_key = hashlib.pbkdf2_hmac("sha256", base64.b64decode(k["data"]), b"_id_key", 10)
    m = dict(manifest)
    sig = m.pop("signature", None)
    m.pop("unprotected", None)
    canon = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return sig is not None and hmac.new(id_key, canon, hashlib.sha256).hexdigest() == sig


if __name__ == "__main__":
    print(signature_ok(sys.argv[1], json.load(open(sys.argv[2]))))
