// bench.mjs runs llama.cpp (the prebuilt CPU binaries that node-llama-cpp
// ships) the way llama-bench does, on one GGUF file and one thread count:
//
//	pp128: one llama_decode of 128 tokens into an empty KV cache, logits
//	       of the last position only (llama-bench's test_prompt);
//	tg64:  64 llama_decode calls of one token each from position 0, logits
//	       of that token (llama-bench's test_gen).
//
// It drives the addon's batch API directly (initBatch, addToBatch,
// decodeBatch): no sampling, no tokenizer, no JS batch queue. What remains
// beyond llama-bench is one hop to libuv's thread pool per llama_decode
// (decodeBatch is asynchronous), a few microseconds per call.
//
//	node bench.mjs MODEL.gguf THREADS [REPS] [VOCAB]
//
// It prints one JSON line: tok/s of every repetition after one untimed
// warm-up run of each test, CPU seconds of the process, peak RSS, and the
// llama.cpp release and CPU backend that node-llama-cpp loaded.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import process from "node:process";

const [modelPath, threadsArg, repsArg, vocabArg] = process.argv.slice(2);
if (!modelPath || !threadsArg) {
    console.error("usage: node bench.mjs MODEL.gguf THREADS [REPS] [VOCAB]");
    process.exit(2);
}
const threads = Number(threadsArg);
const reps = Number(repsArg ?? 3);
const flash = process.env.FLASH_ATTN ?? "auto";

const logs = [];
const llama = await getLlama({
    gpu: false,
    build: "never",
    maxThreads: threads,
    logLevel: process.env.LOG_DEBUG ? LlamaLogLevel.debug : LlamaLogLevel.info,
    logger: (level, msg) => { logs.push(msg); if (process.env.LOG_DEBUG) process.stderr.write(msg + "\n"); },
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: true });
const vocab = Number(vocabArg ?? model.fileInfo.metadata?.[model.fileInfo.metadata.general.architecture]?.vocab_size ?? 0)
    || model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length;
const ctx = await model.createContext({
    contextSize: 512,
    batchSize: 512,
    sequences: 1,
    threads: { ideal: threads, min: threads },
    flashAttention: flash === "auto" ? "auto" : flash === "1",
});
const addon = ctx._ctx;
addon.setThreads(threads);
const seq = 0;

function clear() {
    addon.removeTokenCellsFromSequence(seq, 0, -1);
}

async function decode(tokens, pos, logitIndex) {
    addon.initBatch(tokens.length);
    addon.addToBatch(seq, pos, Uint32Array.from(tokens), Uint32Array.from([logitIndex]));
    await addon.decodeBatch();
}

const prompt = Array.from({ length: 128 }, (_, i) => (i * 7919 + 1) % vocab);

async function pp128() {
    clear();
    const t = process.hrtime.bigint();
    await decode(prompt, 0, prompt.length - 1);
    return Number(process.hrtime.bigint() - t) / 1e9;
}

async function tg64() {
    clear();
    const t = process.hrtime.bigint();
    for (let p = 0; p < 64; p++) {
        await decode([(p * 7919 + 1) % vocab], p, 0);
    }
    return Number(process.hrtime.bigint() - t) / 1e9;
}

function cpuSeconds() {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
}

const result = {
    engine: "llama.cpp",
    model: modelPath.split("/").pop(),
    threads,
    threadsUsed: addon.getThreads(),
    flashAttention: flash,
    llamaCppRelease: llama.llamaCppRelease,
    systemInfo: llama.systemInfo,
    backend: logs.filter((l) => /load_backend|CPU_REPACK|ggml-cpu-|CPU model|AVX512|flash_attn/i.test(l)).map((l) => l.trim()).slice(0, 8),
};
for (const [name, fn, n] of [["pp128", pp128, 128], ["tg64", tg64, 64]]) {
    await fn(); // warm-up, as llama-bench
    const tokps = [];
    const c0 = cpuSeconds();
    let wall = 0;
    for (let r = 0; r < reps; r++) {
        const s = await fn();
        wall += s;
        tokps.push(n / s);
    }
    result[name] = { tokps, tokPerCpuS: (n * reps) / (cpuSeconds() - c0), tokPerWallS: (n * reps) / wall };
}
result.maxRssMiB = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify(result));
await ctx.dispose();
await model.dispose();
await llama.dispose();
