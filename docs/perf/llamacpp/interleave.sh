#!/bin/sh
# interleave.sh runs llama.cpp and unfed one after the other, ROUNDS times,
# on both models and 1 and 2 threads: llama-bench (pp128 and tg64, three
# repetitions after its warm-up), then bench.mjs (the same through
# node-llama-cpp's addon, when LLAMACPP_DIR is set), then every unfed test
# binary given (BenchmarkLlamaBench, -benchtime 3x). Each run is preceded
# by the load average and followed by its peak RSS. See docs/PERFORMANCE.md,
# "Engine against llama.cpp on the same machine (issue 21)".
#
#	mkdir -p /tmp/llamacpp && cp docs/perf/llamacpp/* /tmp/llamacpp
#	(cd /tmp/llamacpp && npm install --no-audit --no-fund && sh build-llama-bench.sh .)
#	go test -c -o /tmp/model.test ./compute/model
#	UNFED_BENCH_MODELS=/tmp/models /tmp/model.test -test.run '^$' -test.bench LlamaBench -test.benchtime 1x  # writes the models once
#	LLAMA_BENCH=/tmp/llamacpp/lb/llama-bench LLAMACPP_DIR=/tmp/llamacpp UNFED_BENCH_MODELS=/tmp/models \
#		sh docs/perf/llamacpp/interleave.sh 3 /tmp/model.test > out.txt
set -eu
rounds=$1
shift
: "${UNFED_BENCH_MODELS:?set UNFED_BENCH_MODELS to the directory of the GGUF files}"
: "${LLAMA_BENCH:?set LLAMA_BENCH to the llama-bench binary}"
load() { echo "load $(cut -d' ' -f1-3 /proc/loadavg)"; }
r=1
while [ "$r" -le "$rounds" ]; do
	for m in qwen2.5-0.5b-q8_0:151936 llama-110m-f32:32000; do
		name=${m%%:*}
		vocab=${m##*:}
		for th in 1 2; do
			echo "round $r $name threads $th"
			load
			/usr/bin/time -f "llama-bench maxrss %M KiB" "$LLAMA_BENCH" -m "$UNFED_BENCH_MODELS/$name.gguf" \
				-t "$th" -p 128 -n 64 -r 3 -o jsonl 2>&1 | grep -E '^\{|maxrss'
			if [ -n "${LLAMACPP_DIR:-}" ]; then
				load
				node "$LLAMACPP_DIR/bench.mjs" "$UNFED_BENCH_MODELS/$name.gguf" "$th" 3 "$vocab"
			fi
			for test in "$@"; do
				load
				echo "unfed $test"
				/usr/bin/time -f "unfed maxrss %M KiB" "$test" -test.run '^$' \
					-test.bench "LlamaBench/$name/.*/threads$th\$" -test.benchtime 3x 2>&1 |
					grep -E '^Benchmark|maxrss'
			done
		done
	done
	r=$((r + 1))
done
load
