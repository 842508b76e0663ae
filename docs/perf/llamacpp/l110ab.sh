#!/bin/sh
# l110ab.sh runs, ROUNDS times, llama-bench's decode of 64 tokens (-p 0 -n 64
# -r 3) and then each unfed test binary's BenchmarkLlamaBench .../tg64 on
# model M (default llama-110m-f32), on 1 and 2 threads, printing tok/s with
# the load average before each round (docs/PERFORMANCE.md, "F32 decode:
# 16-row tiles, shared chunks").
#
#	LLAMA_BENCH=/tmp/llamacpp/lb/llama-bench UNFED_BENCH_MODELS=/tmp/models \
#		sh docs/perf/llamacpp/l110ab.sh 3 /tmp/model-before.test /tmp/model-after.test
set -eu
rounds=$1
shift
M=${M:-llama-110m-f32}
: "${LLAMA_BENCH:?set LLAMA_BENCH to the llama-bench binary}"
: "${UNFED_BENCH_MODELS:?set UNFED_BENCH_MODELS to the directory of the GGUF files}"
r=1
while [ "$r" -le "$rounds" ]; do
	for th in 1 2; do
		echo "round $r threads $th load $(cut -d' ' -f1 /proc/loadavg)"
		"$LLAMA_BENCH" -m "$UNFED_BENCH_MODELS/$M.gguf" -t "$th" -p 0 -n 64 -r 3 -o jsonl 2>/dev/null |
			python3 -c '
import sys, json
for l in sys.stdin:
    if l.startswith("{"):
        d = json.loads(l)
        print("llama-bench tg64", round(d["avg_ts"], 1), [round(x, 1) for x in d["samples_ts"]])'
		for t in "$@"; do
			"$t" -test.run '^$' -test.bench "LlamaBench/$M/tg64/threads$th\$" -test.benchtime 3x 2>&1 |
				grep -E '^Benchmark' | awk -v t="$t" '{print t, $5, $6, $7, $8}'
		done
	done
	r=$((r + 1))
done
