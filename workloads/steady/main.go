// Command steady is a GC workload whose allocation rate does not depend on the GC: it
// keeps a fixed live heap of pointerful objects (so marking costs CPU in proportion to
// it) and allocates short-lived garbage at a fixed rate, paced by the clock. A faster
// or slower GC then changes how often cycles come, not how fast the program allocates:
// what the what-if predictions of gctrace-bpf assume, and what their test checks
// against the runtime's own gctrace lines at other GOGC settings.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// node is 64 bytes with two pointers: a scannable object, like most of a real heap.
type node struct {
	left, right *node
	pad         [6]uintptr
}

var (
	// live holds the live heap for the whole run.
	live []*node
	// sink keeps each garbage allocation from being optimised away.
	sink []byte
)

func main() {
	liveMiB := flag.Int("live", 32, "live heap to keep, MiB")
	rateMiB := flag.Int("rate", 256, "garbage allocation rate, MiB/s")
	chunk := flag.Int("chunk", 1024, "bytes per garbage allocation")
	duration := flag.Duration("duration", 10*time.Second, "how long to run")
	flag.Parse()

	n := *liveMiB << 20 / 64
	live = make([]*node, n)
	for i := range live {
		live[i] = &node{}
		if i > 0 {
			live[i].left = live[i-1]
		}
	}

	rate := float64(*rateMiB) * (1 << 20)
	start := time.Now()
	allocated := 0.0
	for {
		elapsed := time.Since(start)
		if elapsed >= *duration {
			break
		}
		// Allocate what the rate allows by now, then wait a millisecond: the rate is
		// the clock's, whatever the GC costs (as long as the CPU keeps up).
		for due := rate * elapsed.Seconds(); allocated < due; allocated += float64(*chunk) {
			sink = make([]byte, *chunk)
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "steady: allocated %.0f MiB in %s, live %d objects\n",
		allocated/(1<<20), time.Since(start).Round(time.Millisecond), len(live))
}
