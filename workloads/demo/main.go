// Command demo is a small fake service for `cargo xtask demo`: it goes through a few
// phases that make the garbage collector behave visibly differently, so there is
// something to watch under gctrace-bpf.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// request is what the fake service allocates per request.
type request struct {
	id      int
	path    string
	headers map[string]string
	body    []byte
}

type phase struct {
	name string
	// share of the total duration
	weight int
	// requests per millisecond per worker, and bytes of body per request
	rate, body int
	// bytes kept alive in the cache during the phase
	cacheBytes  int
	description string
}

// The first four phases are the collector's ordinary moods; the next three each make a
// finding of gctrace-bpf start (see docs/findings.md), the last lets them end.
var phases = []phase{
	{"steady", 6, 4, 512, 4 << 20, "steady traffic: small requests, a small cache; regular heap-triggered cycles"},
	{"burst", 4, 32, 2048, 4 << 20, "traffic burst: 8x the allocation rate; cycles come much faster"},
	{"big-heap", 7, 24, 2048, 128 << 20, "cache warm-up: ~128 MiB stays live; fewer, longer cycles with more mark work"},
	{"cooldown", 3, 2, 512, 1 << 20, "cool-down: the cache is dropped; the heap shrinks back"},
	{"concat", 12, 4, 512, 1 << 20, "responses built with += in a loop: alloc-string-concat (with --allocs sample)"},
	{"thrash", 8, 0, 0, 1 << 20, "a tight loop of tiny garbage over a small heap: gc-thrashing, gc-frequency"},
	{"leak", 16, 4, 512, 1 << 20, "every 40th request leaves a goroutine blocked (~200/s): goroutine-growth, heap-growth"},
	{"recovery", 4, 2, 512, 1 << 20, "the leaked goroutines exit: the findings end (after their windows)"},
}

func main() {
	duration := flag.Duration("duration", 60*time.Second, "total run time (the finding phases need their share of a minute)")
	workers := flag.Int("workers", 2, "request-handling goroutines")
	flag.Parse()

	totalWeight := 0
	for _, p := range phases {
		totalWeight += p.weight
	}
	fmt.Printf("demo (pid %d): a fake service that runs for %v in %d phases:\n", os.Getpid(), *duration, len(phases))
	for _, p := range phases {
		fmt.Printf("  %-9s %5.1fs  %s\n", p.name, (*duration * time.Duration(p.weight) / time.Duration(totalWeight)).Seconds(), p.description)
	}
	fmt.Println("Throughout: runtime.ReadMemStats every 2 s (a short stop-the-world each time)")
	fmt.Println("and runtime.GC() every 7 s (a forced cycle). Ctrl-C stops it early.")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		select {
		case <-signals:
			close(done)
		case <-time.After(*duration):
			close(done)
		}
	}()
	go background(done)

	var cache [][]byte
	for _, p := range phases {
		length := *duration * time.Duration(p.weight) / time.Duration(totalWeight)
		fmt.Printf("demo: phase %s (%.1fs)\n", p.name, length.Seconds())
		cache = resizeCache(cache, p.cacheBytes)
		if p.name == "recovery" {
			close(leaked)
		}
		if !runPhase(p, *workers, length, done) {
			break
		}
	}
	runtime.KeepAlive(cache)
	fmt.Println("demo: done")
}

// background stops the world now and then, like a metrics exporter and an impatient
// operator would.
func background(done <-chan struct{}) {
	stats := time.NewTicker(2 * time.Second)
	gc := time.NewTicker(7 * time.Second)
	defer stats.Stop()
	defer gc.Stop()
	var ms runtime.MemStats
	for {
		select {
		case <-done:
			return
		case <-stats.C:
			runtime.ReadMemStats(&ms)
		case <-gc.C:
			runtime.GC()
		}
	}
}

// resizeCache keeps about n bytes alive in 64 KiB chunks.
func resizeCache(cache [][]byte, n int) [][]byte {
	chunks := n / (64 << 10)
	if len(cache) > chunks {
		for i := chunks; i < len(cache); i++ {
			cache[i] = nil
		}
		return cache[:chunks]
	}
	for len(cache) < chunks {
		chunk := make([]byte, 64<<10)
		for i := 0; i < len(chunk); i += 4096 {
			chunk[i] = 1
		}
		cache = append(cache, chunk)
	}
	return cache
}

// runPhase runs the workers for length; false when the run was stopped.
func runPhase(p phase, workers int, length time.Duration, done <-chan struct{}) bool {
	end := time.After(length)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			handle(w, p, stop)
		}(w)
	}
	stopped := false
	select {
	case <-end:
	case <-done:
		stopped = true
	}
	close(stop)
	wg.Wait()
	return !stopped
}

// leaked is closed when the leak phase is over: its goroutines wait for it.
var leaked = make(chan struct{})

// node is a small object with a pointer: the thrash phase's live heap is made of them,
// so every cycle has marking to do.
type node struct {
	next *node
	pad  [48]byte
}

var sink interface{}

func handle(worker int, p phase, stop <-chan struct{}) {
	if p.name == "thrash" {
		thrash(stop)
		return
	}
	// A small window of in-flight requests stays live.
	inflight := make([]*request, 256)
	id := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		for i := 0; i < p.rate; i++ {
			id++
			r := &request{
				id:      id,
				path:    "/api/item/" + strconv.Itoa(id),
				headers: map[string]string{"worker": strconv.Itoa(worker), "phase": p.name},
				body:    make([]byte, p.body),
			}
			inflight[id%len(inflight)] = r
			switch p.name {
			case "concat":
				sink = render(r)
			case "leak":
				// Every 40th request's goroutine waits for a reply nobody sends, holding the
				// request: the goroutine count and the live heap grow.
				if id%40 == 0 {
					go func(r *request) { <-leaked; _ = r }(r)
				}
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// render builds a response the slow way: += copies the whole string each time.
func render(r *request) string {
	out := ""
	for i := 0; i < 64; i++ {
		out += r.path + ";"
	}
	return out
}

// thrash allocates tiny objects as fast as it can over a small live list of pointers:
// the heap stays at its 4 MiB floor and the GC runs all the time.
func thrash(stop <-chan struct{}) {
	var live *node
	for i := 0; i < (512<<10)/64; i++ {
		live = &node{next: live}
	}
	for {
		select {
		case <-stop:
			runtime.KeepAlive(live)
			return
		default:
		}
		for i := 0; i < 1000; i++ {
			sink = &node{}
		}
	}
}
