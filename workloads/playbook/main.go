// Command playbook reproduces, one at a time, the causes the Go GC tuning playbook names,
// so each finding of gctrace-bpf has a program that shows it (and `-cause healthy` one
// that shows none of the code-level or thrashing findings). Each cause's allocation is
// on a line of its own function, so a test can check that a finding points there.
//
// It prints `goroutines N at T` (runtime.NumGoroutine, CLOCK_MONOTONIC ns: the clock of
// the tracer's timestamps) whenever the count changes, for checking the tracer's
// goroutine count, and `done` at the end.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
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
)

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

// box puts non-constant integers into interfaces (runtime.convT64).
func box(n int) {
	out := make([]interface{}, 0, n)
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

// leak starts goroutines that never exit, in steps, and keeps a little memory each.
func leak(stop <-chan struct{}, every time.Duration, step int) {
	block := make(chan struct{})
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			for i := 0; i < step; i++ {
				go func(b []byte) { <-block; _ = b }(make([]byte, 4096))
			}
			printGoroutines()
		}
	}
}

func main() {
	cause := flag.String("cause", "healthy", "healthy, concat, append, box, map, leak, heap-growth or thrash")
	duration := flag.Duration("duration", 10*time.Second, "how long to run")
	flag.Parse()

	fmt.Printf("playbook %s pid %d\n", *cause, os.Getpid())
	if *cause == "leak" {
		churn(2000)
	}
	printGoroutines()
	stop := make(chan struct{})
	deadline := time.Now().Add(*duration)
	var buf []byte
	switch *cause {
	case "leak":
		go leak(stop, 250*time.Millisecond, 200)
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
			// Keeps 64 KiB more per millisecond: the live heap grows cycle after cycle.
			retained = append(retained, make([]byte, 64<<10))
			buf = healthy(buf, 2000)
			time.Sleep(time.Millisecond)
		case "thrash":
			// A tight loop of short-lived garbage over a small heap: GC runs all the time.
			for i := 0; i < 1000; i++ {
				buf = make([]byte, 256)
			}
		default:
			fmt.Fprintf(os.Stderr, "unknown -cause %q\n", *cause)
			os.Exit(2)
		}
	}
	close(stop)
	_ = buf
	fmt.Println("done")
}
