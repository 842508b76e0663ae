//go:build !linux

package mmap

func anonHuge(n int) ([]byte, func() error, error) { return anon(n) }
