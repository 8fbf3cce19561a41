// Command playbook reproduces, one at a time, the causes the Go GC tuning playbook names,
// so each finding of gctrace-bpf has a program that shows it (and `-cause healthy` one
// that shows none of the code-level or thrashing findings). Each cause's allocation is
// on a line of its own function, so a test can check that a finding points there.
//
// It prints `goroutines N at T` (runtime.NumGoroutine, CLOCK_MONOTONIC ns: the clock of
// the tracer's timestamps) whenever the count changes, for checking the tracer's
// goroutine count, `phase NAME at T` when a phase starts, and `done` at the end.
//
// `-then D` adds a recovery phase of length D after the cause: the leaked goroutines
// exit, the retained memory is dropped and only light garbage is made (so cycles, and
// the tracer's judgements, go on), for checking that a finding ends.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

var (
	sinkString string
	sinkSlice  []int
	sinkAny    []interface{}
	sinkMap    map[int]int
	retained   [][]byte
	// nodes is live memory made of pointers, so marking it costs (unlike []byte).
	nodes *node
)

// node is 64 bytes with a pointer: a live heap of them is real mark work.
type node struct {
	next *node
	pad  [56]byte
}

// keepNodes adds n nodes to the live list.
func keepNodes(n int) {
	for i := 0; i < n; i++ {
		nodes = &node{next: nodes}
	}
}

// concat builds a string with += in a loop: every step copies the whole string
// (runtime.concatstrings).
func concat(n int) {
	s := ""
	for i := 0; i < n; i++ {
		s += "item-" // playbook:concat
	}
	sinkString = s
}

// appendNoCap grows a slice by append without a capacity (runtime.growslice).
func appendNoCap(n int) {
	var xs []int
	for i := 0; i < n; i++ {
		xs = append(xs, i) // playbook:append
	}
	sinkSlice = xs
}

// boxed is box's slice, made once: its only allocations are then the boxes.
var boxed []interface{}

// box puts non-constant integers into interfaces (runtime.convT64). The slice is reused:
// made afresh, its one 320 KB allocation per call carried two thirds of the bytes, and a
// sampling burst catches an allocation that rare only now and then, so the boxes' share
// of the bursts' bytes ran anywhere from 7 % to 100 % (see docs/engineering-notes.md).
func box(n int) {
	if cap(boxed) < n {
		boxed = make([]interface{}, 0, n)
	}
	out := boxed[:0]
	for i := 0; i < n; i++ {
		out = append(out, interface{}(i+1000)) // playbook:box
	}
	sinkAny = out
}

// mapNoHint grows a map without a size hint (runtime.hashGrow, growing tables).
func mapNoHint(n int) {
	m := map[int]int{}
	for i := 0; i < n; i++ {
		m[i] = i // playbook:map
	}
	sinkMap = m
}

// healthy allocates moderately with reused buffers and sized containers.
func healthy(buf []byte, n int) []byte {
	buf = buf[:0]
	for i := 0; i < n; i++ {
		buf = strconv.AppendInt(buf, int64(i), 10)
	}
	m := make(map[int]int, 64)
	for i := 0; i < 64; i++ {
		m[i] = i
	}
	sinkMap = m
	return buf
}

// monotonic is CLOCK_MONOTONIC in ns (the runtime's nanotime, the tracer's clock).
func monotonic() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func printGoroutines() {
	fmt.Printf("goroutines %d at %d\n", runtime.NumGoroutine(), monotonic())
}

// churn starts and ends n goroutines, so the runtime holds dead ones on its free lists
// (what a goroutine count read from allglen alone would wrongly include).
func churn(n int) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { wg.Done() }()
	}
	wg.Wait()
}

// leak starts goroutines that do not exit until release is closed, in steps, and keeps
// a little memory each.
func leak(stop, release <-chan struct{}, every time.Duration, step int) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			for i := 0; i < step; i++ {
				go func(b []byte) { <-release; _ = b }(make([]byte, 4096))
			}
			printGoroutines()
		}
	}
}

// spin loops `iterations` times without a function call: with GODEBUG=asyncpreemptoff=1
// nothing can preempt it, so a stop of the world waits for it to end.
//
//go:noinline
func spin(iterations int) int {
	x := 0
	for i := 0; i < iterations; i++ {
		x += i * i
	}
	return x
}

var sinkInt int

// spinners keep n goroutines in non-preemptible loops of about 2 ms, between which they
// allocate (so cycles come, and each cycle's stops wait for the loops).
func spinners(stop <-chan struct{}, n int) {
	// Calibrate: iterations for about 2 ms.
	iterations := 1 << 20
	for {
		t := time.Now()
		sinkInt = spin(iterations)
		if time.Since(t) >= 2*time.Millisecond || iterations > 1<<30 {
			break
		}
		iterations *= 2
	}
	for i := 0; i < n; i++ {
		go func() {
			var b []byte
			for {
				select {
				case <-stop:
					return
				default:
				}
				sinkInt = spin(iterations)
				for j := 0; j < 64; j++ {
					b = make([]byte, 4096)
				}
				_ = b
			}
		}()
	}
}

func printPhase(name string) {
	fmt.Printf("phase %s at %d\n", name, monotonic())
}

func main() {
	cause := flag.String("cause", "healthy", "healthy, concat, append, box, map, leak, heap-growth, thrash, limit or stw")
	duration := flag.Duration("duration", 10*time.Second, "how long to run the cause")
	then := flag.Duration("then", 0, "a recovery phase after the cause, this long")
	limitMiB := flag.Int("limit-mib", 128, "-cause limit: GOMEMLIMIT it sets, MiB")
	flag.Parse()

	fmt.Printf("playbook %s pid %d\n", *cause, os.Getpid())
	if *cause == "leak" {
		churn(2000)
	}
	printGoroutines()
	printPhase(*cause)
	stop := make(chan struct{})
	release := make(chan struct{})
	start := time.Now()
	deadline := start.Add(*duration)
	var buf []byte
	limit := int64(*limitMiB) << 20
	kept := int64(0) // -cause limit: nodes kept
	switch *cause {
	case "leak":
		go leak(stop, release, 250*time.Millisecond, 200)
	case "limit":
		debug.SetMemoryLimit(limit)
		fmt.Printf("memory limit %d\n", limit)
	case "stw":
		spinners(stop, runtime.GOMAXPROCS(0))
	}
	for time.Now().Before(deadline) {
		switch *cause {
		case "healthy":
			buf = healthy(buf, 2000)
			time.Sleep(time.Millisecond)
		case "concat":
			concat(400)
		case "append":
			appendNoCap(20000)
		case "box":
			box(20000)
		case "map":
			mapNoHint(4000)
		case "leak":
			// Short-lived garbage, so cycles (and goroutine readings) come often.
			for i := 0; i < 200; i++ {
				buf = make([]byte, 1024)
			}
			time.Sleep(time.Millisecond)
		case "heap-growth":
			// Keeps 16 KiB more per millisecond: the live heap grows cycle after cycle;
			// 256 KiB of garbage a millisecond makes the cycles come (a growing heap alone
			// would double its goal each cycle, and cycles would get rare).
			retained = append(retained, make([]byte, 16<<10))
			for i := 0; i < 64; i++ {
				buf = make([]byte, 4096)
			}
			time.Sleep(time.Millisecond)
		case "thrash":
			// A tight loop of short-lived garbage over a small heap of pointers (1 MiB
			// of nodes, set up once): GC runs all the time and each cycle marks it all.
			if nodes == nil {
				keepNodes(1 << 20 / 64)
			}
			for i := 0; i < 1000; i++ {
				buf = make([]byte, 256)
			}
		case "limit":
			// The live heap (nodes: mark work) climbs from half of GOMEMLIMIT to 95 % of
			// it while garbage
			// comes at a steady rate: the limit, not GOGC, sets the goal, the headroom
			// shrinks and cycles (and GC CPU) come faster and faster.
			frac := 0.5 + 0.45*float64(time.Since(start))/float64(*duration)
			for ; kept*64 < int64(frac*float64(limit)); kept += 1024 {
				keepNodes(1024)
			}
			for i := 0; i < 64; i++ {
				buf = make([]byte, 4096)
			}
			time.Sleep(100 * time.Microsecond)
		case "stw":
			// The spinners do the work; main only waits.
			time.Sleep(10 * time.Millisecond)
		default:
			fmt.Fprintf(os.Stderr, "unknown -cause %q\n", *cause)
			os.Exit(2)
		}
	}
	close(stop)
	if *then > 0 {
		close(release)
		retained, nodes = nil, nil
		printPhase("recovery")
		end := time.Now().Add(*then)
		for time.Now().Before(end) {
			// About 1 MiB of garbage per 10 ms: a cycle every few hundred ms at the
			// 4 MiB minimum heap, little GC CPU.
			for i := 0; i < 256; i++ {
				buf = make([]byte, 4096)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Let the released goroutines be counted out.
		printGoroutines()
	}
	_ = buf
	fmt.Println("done")
}
