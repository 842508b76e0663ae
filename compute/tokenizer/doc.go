// Package tokenizer turns text into token ids and back for the model families
// UNFED serves (spec/06-model-files.md §3):
//
//   - "llama": SentencePiece-style BPE with per-token scores and byte fallback
//     (<0xXX> tokens), as llama.cpp's SPM tokenizer and llama2.c's encode do:
//     spaces become "▁", a dummy "▁" prefix is added, then the adjacent pair
//     whose concatenation is the highest-scoring vocabulary entry is merged
//     until none is left. Characters without a token fall back to byte tokens.
//   - "gpt2": byte-level BPE (GPT-2, Qwen2, Llama 3): text is split by the
//     model's pre-tokenizer, each piece's bytes are mapped to printable
//     characters, and ranked merges are applied.
//
// Vocabularies come from a GGUF file (FromGGUF) or a llama2.c tokenizer.bin
// (FromLlama2C). Merging uses a priority queue, so encoding is O(n log n) in
// the input length. Inputs are text from the local user; vocabularies are
// files: both are bounded (MaxVocab, MaxTokenBytes, MaxInputBytes).
//
// The package never logs: text and token ids are prompt data.
package tokenizer
