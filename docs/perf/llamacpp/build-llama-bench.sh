#!/bin/sh
# build-llama-bench.sh builds llama.cpp's own llama-bench against the
# prebuilt CPU libraries of node-llama-cpp (package.json pins the version),
# from the llama.cpp source that the package ships as a git bundle, so that
# the libraries measured are exactly the prebuilt ones (the ggml CPU backend
# picks the variant for this CPU at run time, libggml-cpu-zen4.so on an
# AMD EPYC with AVX-512). Only llama-bench's two files are compiled.
#
#	sh build-llama-bench.sh DIR    # DIR: where `npm install` ran; writes DIR/lb/llama-bench
set -eu
dir=$(cd "$1" && pwd)
bins=$dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
src=$dir/src
lb=$dir/lb
[ -d "$src" ] || git clone -q "$dir/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$src"
mkdir -p "$lb"
cp "$bins"/*.so "$lb"/
g++ -O2 -DNDEBUG -std=c++17 -I "$src/include" -I "$src/ggml/include" -I "$src/common" \
	-I "$src/tools/llama-bench" -I "$src/vendor" \
	"$src/tools/llama-bench/llama-bench.cpp" "$src/tools/llama-bench/main.cpp" \
	-L "$lb" -l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so -l:libllama-common.so \
	-Wl,-rpath,"$lb" -lpthread -o "$lb/llama-bench"
"$lb/llama-bench" --version
