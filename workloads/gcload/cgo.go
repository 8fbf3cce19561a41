//go:build cgo

package main

// A cgo build of gcload (CGO_ENABLED=1) calls into C once at start-up, so the binary is
// a real cgo program: linked with the C runtime, runtime/cgo initialised, and
// runtime.NumCgoCall() above zero in -memstats-out.

/*
static int gcload_c_answer(void) { return 42; }
*/
import "C"

func cgoCall() {
	if C.gcload_c_answer() != 42 {
		panic("gcload: the C call returned a wrong value")
	}
}
