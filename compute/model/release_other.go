//go:build !linux

package model

// fileMapped is false where dropPages does nothing, so no caller relies on it.
const fileMapped = false

func dropPages(b []byte) {}
