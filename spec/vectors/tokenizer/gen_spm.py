#!/usr/bin/env python3
"""Generate SentencePiece-BPE test vectors with an independent reference.

The reference is llama2.c's encode() (run.c), transcribed: dummy " " prefix,
one symbol per UTF-8 character (byte fallback id = byte + 3 for characters
not in the vocabulary), then repeatedly merge the adjacent pair whose
concatenation is in the vocabulary with the highest score (first on ties).
Vocabularies are read with a minimal GGUF reader written here, or from a
llama2.c tokenizer.bin; "\u2581" is replaced by " " as llama2.c's export does.

usage: gen_spm.py MODEL_DIR > spm.json
"""
import json, struct, sys

def read_gguf_vocab(path):
    b = open(path, "rb").read()
    assert b[:4] == b"GGUF"
    ver, nt, nkv = struct.unpack_from("<IQQ", b, 4)
    off = 24
    def rstr(off):
        n, = struct.unpack_from("<Q", b, off)
        return b[off + 8:off + 8 + n], off + 8 + n
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    fmts = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    kv = {}
    for _ in range(nkv):
        key, off = rstr(off)
        t, = struct.unpack_from("<I", b, off); off += 4
        if t == 8:
            v, off = rstr(off)
        elif t == 9:
            et, n = struct.unpack_from("<IQ", b, off); off += 12
            v = []
            for _ in range(n):
                if et == 8:
                    s, off = rstr(off); v.append(s)
                else:
                    v.append(struct.unpack_from("<" + fmts[et], b, off)[0]); off += sizes[et]
        else:
            v = struct.unpack_from("<" + fmts[t], b, off)[0]; off += sizes[t]
        kv[key.decode()] = v
    toks = [t.decode("utf-8", "surrogateescape").replace("\u2581", " ") for t in kv["tokenizer.ggml.tokens"]]
    return toks, kv["tokenizer.ggml.scores"]

def read_llama2c_vocab(path, n):
    b = open(path, "rb").read()
    off = 4
    toks, scores = [], []
    for _ in range(n):
        s, l = struct.unpack_from("<fi", b, off); off += 8
        toks.append(b[off:off + l].decode("utf-8", "surrogateescape")); off += l
        scores.append(s)
    return toks, scores

def encode(toks, scores, text, bos):
    lookup = {}
    for i, t in enumerate(toks):
        lookup.setdefault(t, i)
    out = [1] if bos else []
    if text:
        out.append(lookup[" "])
    for ch in text:
        if ch in lookup:
            out.append(lookup[ch])
        else:
            out.extend(b + 3 for b in ch.encode("utf-8"))
    while True:
        best, best_id, best_i = -1e10, -1, -1
        start = 1 if bos else 0
        for i in range(start, len(out) - 1):
            s = toks[out[i]] + toks[out[i + 1]]
            if s in lookup and scores[lookup[s]] > best:
                best, best_id, best_i = scores[lookup[s]], lookup[s], i
        if best_i < 0:
            break
        out[best_i:best_i + 2] = [best_id]
    return out

TEXTS = [
    "Once upon a time",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.",
    "Hello world",
    "",
    " ",
    "  leading and trailing  ",
    "a\tb\nc\n\nd",
    "Tom's dog can't run!?",
    "3.14159 and 2025-11-25",
    "日本語のテキスト",
    "emoji 🙂 and 🚀🚀",
    "naïve café — “quotes”",
]

def random_texts(n):
    """Pseudo-random texts from a fixed seed (a small LCG, so the list never
    depends on Python's random module)."""
    alphabet = list("aeiou tnsrhl THE.,!?'\n\t  0123") + ["é", "日", "本", "🙂", "ß", "ñ", "—"]
    seed, out = 2024, []
    for _ in range(n):
        seed = (seed * 1103515245 + 12345) % 2**31
        length = 1 + seed % 40
        s = ""
        for _ in range(length):
            seed = (seed * 1103515245 + 12345) % 2**31
            s += alphabet[seed % len(alphabet)]
        out.append(s)
    return out

TEXTS += random_texts(40)

def main():
    d = sys.argv[1]
    out = []
    for name, (toks, scores) in [
        ("tok512.bin", read_llama2c_vocab(d + "/tok512.bin", 512)),
        ("stories260K.gguf", read_gguf_vocab(d + "/stories260K.gguf")),
        ("llama-2-tiny-random.gguf", read_gguf_vocab(d + "/llama-2-tiny-random.gguf")),
    ]:
        cases = []
        for text in TEXTS:
            for bos in (True, False):
                ids = encode(toks, scores, text, bos)
                assert all(i > 2 or (bos and k == 0) for k, i in enumerate(ids)), (name, text)
                cases.append({"text": text, "bos": bos, "ids": ids})
        out.append({"vocab": name, "cases": cases})
    w = sys.stdout.write
    w('{"reference": "llama2.c encode (gen_spm.py)", "vocabularies": [\n')
    for k, v in enumerate(out):
        w(' {"vocab": %s, "cases": [\n' % json.dumps(v["vocab"]))
        w(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in v["cases"]))
        w("\n ]}%s\n" % ("," if k < len(out) - 1 else ""))
    w("]}\n")

main()
