// Package gguf reads and writes the GGUF model container (versions 2 and 3,
// little-endian), the subset described in spec/06-model-files.md §2.
//
// It owns the container only: metadata key/value pairs, tensor descriptors and
// the location of each tensor's bytes. It does not interpret tensor contents
// (dequantisation lives with the engine) nor tokenizer metadata (see
// compute/tokenizer).
//
// Wire format (all integers little-endian):
//
//	magic      [4]byte  "GGUF"
//	version    uint32   2 or 3
//	n_tensors  uint64
//	n_kv       uint64
//	kv         n_kv × { key string, type uint32, value }
//	tensors    n_tensors × { name string, n_dims uint32, dims [n_dims]uint64,
//	                         type uint32, offset uint64 }
//	padding    to general.alignment (default 32)
//	data       tensor bytes, each tensor at data+offset
//
// where string is { len uint64, bytes [len]byte } and an array value is
// { elem_type uint32, count uint64, count × elem }.
//
// Open maps the file read-only; Parse checks an in-memory image. Both validate
// every count, length, dimension and offset against the bytes that remain and
// against fixed limits before allocating, so a truncated or hostile file gives
// an error, never a panic or an allocation larger than the file.
package gguf
