package gguf
