// Package model runs decoder-only transformers (llama and qwen2) for UNFED:
// it loads a model file (GGUF or llama2.c) whole or as a shard — a
// contiguous layer range — runs forward passes in sessions that keep a KV
// cache under limits, and names models by content with manifests and model
// ids. It implements spec/07-model.md: the manifest text form (§3), the
// model id (§4), the shard split and tensor ownership (§5) and the exact
// float32 arithmetic every node must reproduce bit for bit (§6).
//
// Typical use on a compute relay:
//
//	sh, err := model.Load(path, model.ShardOptions{First: 4, Last: 8, Limits: lim})
//	ss, err := sh.NewSession(model.SessionOptions{})
//	out, err := ss.ForwardActivations(x, n, ss.Len()) // n*Dim activations, or logits on the last shard
//
// Shards memory-map the file and touch only their own tensors; Q8_0
// matrices are packed into the kernels' layout at load and their file pages
// dropped, so they are resident once. A prompt runs in batches of up to 64
// positions, each weight read once per batch (prefill), with the same bits
// as one position at a time. A Shard is safe for concurrent use; a Session
// serialises its own calls. The package never logs: activations and token
// ids are prompt data.
package model
