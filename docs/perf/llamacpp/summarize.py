#!/usr/bin/env python3
"""summarize.py OUT.txt: the table of docs/PERFORMANCE.md from interleave.sh's output.

Per model, threads and test: the median and range over the rounds of
llama-bench's tok/s (every repetition), bench.mjs's tok/s and tok/cpu-s
(node-llama-cpp's addon), and each unfed binary's tok/s and tok/cpu-s (the
mean of its three iterations); then unfed's median over llama-bench's.
"""
import json
import re
import statistics as st
import sys
from collections import defaultdict

runs = defaultdict(list)  # (model, threads, test, engine, metric) -> values
rss = defaultdict(list)   # (model, engine) -> MiB
loads = []
cur = None
engine = None
for line in open(sys.argv[1]):
    line = line.strip()
    m = re.match(r"round \d+ (\S+) threads (\d)", line)
    if m:
        cur = (m.group(1), int(m.group(2)))
        continue
    if line.startswith("load "):
        loads.append(float(line.split()[1]))
        continue
    if line.startswith("unfed /"):
        engine = "unfed:" + line.split()[1].rsplit("/", 1)[-1]
        continue
    if line.startswith("{") and '"build_commit"' in line:
        d = json.loads(line)
        test = "pp128" if d["n_prompt"] else "tg64"
        runs[cur + (test, "llama-bench", "tok/s")] += d["samples_ts"]
        continue
    if line.startswith("{"):
        d = json.loads(line)
        for test in ("pp128", "tg64"):
            runs[cur + (test, "node", "tok/s")] += d[test]["tokps"]
            runs[cur + (test, "node", "tok/cpu-s")].append(d[test]["tokPerCpuS"])
        rss[(cur[0], "node")].append(d["maxRssMiB"])
        continue
    if line.startswith("Benchmark"):
        f = line.split()
        test = f[0].split("/")[2]
        vals = dict(zip(f[3::2], f[2::2]))
        runs[cur + (test, engine, "tok/s")].append(float(vals["tok/s"]))
        runs[cur + (test, engine, "tok/cpu-s")].append(float(vals["tok/cpu-s"]))
        continue
    m = re.match(r"(llama-bench|unfed) maxrss (\d+) KiB", line)
    if m:
        rss[(cur[0], "llama-bench" if m.group(1) == "llama-bench" else engine)].append(int(m.group(2)) / 1024)

def fmt(v):
    if not v:
        return "—"
    return "%.1f (%.1f–%.1f)" % (st.median(v), min(v), max(v))

print("load average (1 min) %.1f–%.1f" % (min(loads), max(loads)))
engines = sorted({k[3] for k in runs if k[3].startswith("unfed:")})
print("| model | threads | test | llama-bench tok/s | node-llama-cpp tok/s | node-llama-cpp tok/cpu-s | "
      + " | ".join("%s tok/s | %s tok/cpu-s" % (e, e) for e in engines) + " | " + " | ".join("%s ÷ llama-bench" % e for e in engines) + " |")
print("|" + "---|" * (6 + 3 * len(engines)))
for key in sorted({k[:3] for k in runs}):
    lb = runs[key + ("llama-bench", "tok/s")]
    row = [key[0], str(key[1]), key[2], fmt(lb), fmt(runs[key + ("node", "tok/s")]), fmt(runs[key + ("node", "tok/cpu-s")])]
    ratios = []
    for e in engines:
        u = runs[key + (e, "tok/s")]
        row += [fmt(u), fmt(runs[key + (e, "tok/cpu-s")])]
        ratios.append("%.2f" % (st.median(u) / st.median(lb)) if u and lb else "—")
    print("| " + " | ".join(row + ratios) + " |")
for k in sorted(rss):
    print("peak RSS %s %s: %s MiB" % (k[0], k[1], ", ".join("%.0f" % v for v in rss[k])))
