//go:build !cgo

package main

// cgoCall is a no-op in the default (CGO_ENABLED=0) build; see cgo.go.
func cgoCall() {}
