#!/bin/sh
# cpu-delta.sh: tokens per CPU second of llama-bench, which reports only
# the wall clock, on one thread, interleaved with unfed's benchmark. Two
# llama-bench runs of one test, with 1 and with 4 repetitions, differ by 3
# repetitions of that test and nothing else (the load of the model and the
# warm-up run cancel), so 3 × tokens ÷ (CPU time of the second − CPU time of
# the first) is llama.cpp's rate per CPU second, as unfed's tok/cpu-s is
# (RUSAGE_THREAD of its one computing thread).
#
#	LLAMA_BENCH=/tmp/llamacpp/lb/llama-bench UNFED_BENCH_MODELS=/tmp/models sh cpu-delta.sh 3 /tmp/model.test
set -eu
rounds=$1
test=$2
cpu() { { /usr/bin/time -f "%U %S" "$LLAMA_BENCH" -o jsonl "$@" >/dev/null; } 2>&1 | tail -1 | awk '{print $1 + $2}'; }
r=1
while [ "$r" -le "$rounds" ]; do
	for m in qwen2.5-0.5b-q8_0 llama-110m-f32; do
		for t in pp128 tg64; do
			if [ $t = pp128 ]; then args="-p 128 -n 0" n=128; else args="-p 0 -n 64" n=64; fi
			a=$(cpu -m "$UNFED_BENCH_MODELS/$m.gguf" -t 1 $args -r 1)
			b=$(cpu -m "$UNFED_BENCH_MODELS/$m.gguf" -t 1 $args -r 4)
			u=$("$test" -test.run '^$' -test.bench "LlamaBench/$m/$t/threads1\$" -test.benchtime 3x 2>&1 |
				awk '/^Benchmark/ {print $5}')
			echo "round $r $m $t llama-bench $(awk "BEGIN {printf \"%.1f\", 3 * $n / ($b - $a)}") tok/cpu-s unfed $u tok/cpu-s load $(cut -d' ' -f1 /proc/loadavg)"
		done
	done
	r=$((r + 1))
done
