// Command gcload is the integration-test workload of gctrace-bpf: a few goroutines
// allocate a mix of small objects, slices and maps while keeping a bounded live set,
// so the heap cycles through many GC cycles; on request it also forces cycles and
// stops the world with runtime.ReadMemStats, and writes what the runtime itself
// recorded (MemStats) as JSON so tests can compare the tracer against it.
//
// It must build with every Go toolchain the tests use (1.19 and later): stdlib only,
// no min/max builtins, no slices package.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// node is a small pointer-carrying object, so the collector has something to trace.
type node struct {
	next  *node
	value [4]uint64
	name  string
}

// memStatsOut is the JSON written by -memstats-out.
type memStatsOut struct {
	NumGC       uint32
	NumForcedGC uint32
	// PauseNs holds the stop-the-world pause of the last min(NumGC, 256) cycles, in
	// cycle order; PauseNs[0] is the pause of cycle PauseNsFirstCycle.
	PauseNs           []uint64
	PauseNsFirstCycle uint32
	TotalAlloc        uint64
	Mallocs           uint64
	// ReadMemStatsCalls counts the -readmemstats calls made; the one extra call that
	// produces this file is not included.
	ReadMemStatsCalls int
	// NumCgoCall is runtime.NumCgoCall(): above zero only in a cgo build (cgo.go),
	// which proves the binary really went through cgo.
	NumCgoCall int64
	// ElapsedNs is the wall time from the start of main to the end of the work, without
	// the process start-up and exit (the benchmark's measure).
	ElapsedNs int64
	// UserNs and SysNs are the CPU time of the whole process so far (getrusage), less
	// sensitive than wall time to other load on the machine; a uprobe's trap is
	// accounted as the traced thread's system time.
	UserNs            int64
	SysNs             int64
	MaxReadMemStatsNs int64
	// LargeBytes is what -large-every's goroutine allocated in large objects (320 KiB
	// each, exactly 40 pages: the bytes the runtime counts for them).
	LargeBytes uint64
}

// xorshift is a tiny deterministic PRNG per goroutine (math/rand's global source
// takes a lock and its seeding changed across Go versions).
type xorshift uint64

func (x *xorshift) next() uint64 {
	v := uint64(*x)
	v ^= v << 13
	v ^= v >> 7
	v ^= v << 17
	*x = xorshift(v)
	return v
}

func (x *xorshift) intn(n int) int {
	return int(x.next() % uint64(n))
}

// sink keeps allocations from being optimised away.
var sink atomic.Value

// worker allocates until stop is closed or, when budget > 0, until it has allocated
// budget bytes (then without the pacing sleep: a fixed amount of work, as fast as it goes).
func worker(id int, liveSlots int, batchBytes int, budget int64, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := xorshift(uint64(id)*0x9E3779B97F4A7C15 + 1)
	live := make([]interface{}, liveSlots)
	var total int64
	for {
		select {
		case <-stop:
			sink.Store(live[rng.intn(liveSlots)] != nil)
			return
		default:
		}
		allocated := 0
		for allocated < batchBytes {
			var obj interface{}
			switch rng.intn(4) {
			case 0:
				// A short linked list of small objects.
				var head *node
				n := 1 + rng.intn(8)
				for i := 0; i < n; i++ {
					head = &node{next: head, name: "n"}
					head.value[0] = uint64(i)
				}
				obj = head
				allocated += n * 64
			case 1:
				// A byte slice, usually small, sometimes a few KiB.
				size := 16 + rng.intn(512)
				if rng.intn(16) == 0 {
					size = 1024 + rng.intn(16*1024)
				}
				b := make([]byte, size)
				b[0] = byte(id)
				obj = b
				allocated += size
			case 2:
				// A small map.
				n := 1 + rng.intn(16)
				m := make(map[int]string, n)
				for i := 0; i < n; i++ {
					m[i] = "v"
				}
				obj = m
				allocated += 48 * n
			default:
				// A slice of pointers.
				n := 4 + rng.intn(64)
				s := make([]*node, n)
				s[0] = &node{}
				obj = s
				allocated += 8*n + 64
			}
			// Replace a random slot: the live set stays bounded by liveSlots, the rest
			// becomes garbage.
			live[rng.intn(liveSlots)] = obj
		}
		if budget > 0 {
			total += int64(allocated)
			if total >= budget {
				sink.Store(live[rng.intn(liveSlots)] != nil)
				return
			}
			continue
		}
		// Pace the allocation so the tracer sees tens of cycles per second, not
		// thousands.
		time.Sleep(time.Millisecond)
	}
}

// largeObjectSize is rareLarge's allocation: more than 32 KiB, so a large object, and a
// whole number of 8 KiB pages, so the runtime counts exactly these bytes for it.
const largeObjectSize = 320 << 10

// largeObjects counts rareLarge's large objects; smallSink and largeSink keep the last
// of each reachable so the allocations are not optimised away.
var (
	largeObjects int64
	smallSink    *[2]uint64
	largeSink    []byte
)

// rareLarge allocates one large object, then `every` 16-byte objects, a round: large
// objects rare by count but, with every = 20,000, two thirds of the bytes. A sampling
// burst catches an allocation that rare only now and then; the allocation tests check
// that the tracer still gives the large objects their share (LargeBytes).
//
//go:noinline
func rareLarge(every int) {
	largeSink = make([]byte, largeObjectSize)
	atomic.AddInt64(&largeObjects, 1)
	for i := 0; i < every; i++ {
		smallSink = new([2]uint64)
	}
}

// hotspotSink keeps the last hotspot buffer reachable so the allocation is not optimised
// away.
var hotspotSink []byte

// hotspot allocates 64 byte slices of 32 KiB a round (untilStopped runs the rounds
// without pause), so its bytes dominate everything the other goroutines allocate: the
// allocation tests know it must come out on top, as site main.hotspot and type uint8.
//
//go:noinline
func hotspot() {
	for i := 0; i < 64; i++ {
		hotspotSink = make([]byte, 32<<10)
	}
}

// untilStopped runs round until stop closes, yielding between rounds so the other
// goroutines get the CPU. The allocating goroutines (hotspot, rareLarge) keep their
// allocations in their own named function, the site the allocation tests look for.
func untilStopped(stop <-chan struct{}, wg *sync.WaitGroup, round func()) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		round()
		runtime.Gosched()
	}
}

// maxReadMemStats is the longest single runtime.ReadMemStats call of -stw-loop: no stop
// of the world it caused can have lasted longer (a test's oracle).
var maxReadMemStats time.Duration

func writeMemStats(path string, readMemStatsCalls int, elapsed time.Duration) error {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return err
	}
	out := memStatsOut{
		NumGC:             ms.NumGC,
		NumForcedGC:       ms.NumForcedGC,
		TotalAlloc:        ms.TotalAlloc,
		Mallocs:           ms.Mallocs,
		ReadMemStatsCalls: readMemStatsCalls,
		NumCgoCall:        runtime.NumCgoCall(),
		ElapsedNs:         int64(elapsed),
		MaxReadMemStatsNs: int64(maxReadMemStats),
		UserNs:            ru.Utime.Nano(),
		SysNs:             ru.Stime.Nano(),
		PauseNs:           []uint64{},
		LargeBytes:        uint64(atomic.LoadInt64(&largeObjects)) * largeObjectSize,
	}
	n := ms.NumGC
	if n > 256 {
		n = 256
	}
	out.PauseNsFirstCycle = ms.NumGC - n + 1
	// Cycle c's pause is at PauseNs[(c-1)%256]; the most recent one is at
	// PauseNs[(NumGC+255)%256].
	for c := out.PauseNsFirstCycle; c <= ms.NumGC && n > 0; c++ {
		out.PauseNs = append(out.PauseNs, ms.PauseNs[(c-1)%256])
	}
	data, err := json.Marshal(&out)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	return os.WriteFile(path, data, 0o644)
}

// actionKind is what a scheduled action does.
type actionKind int

const (
	actForcedGC actionKind = iota
	actReadMemStats
	actSetGOMAXPROCS
)

// parseProcs parses -set-gomaxprocs ("" is none).
func parseProcs(list string) ([]int, error) {
	var out []int
	if list == "" {
		return out, nil
	}
	for _, field := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil {
			return nil, err
		}
		if n < 1 {
			return nil, fmt.Errorf("GOMAXPROCS %d is not positive", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// idleSink keeps parkDeep's frames from being optimised away.
var idleSink atomic.Value

// parkDeep recurses depth frames of about 180 bytes (the pad array and the frame
// around it), then blocks until release is closed: a parked goroutine with a few KiB of
// live stack that every GC cycle has to scan.
//
//go:noinline
func parkDeep(depth int, release <-chan struct{}, parked *sync.WaitGroup) byte {
	var pad [128]byte
	pad[depth%len(pad)] = byte(depth)
	if depth == 0 {
		parked.Done()
		<-release
		return pad[0]
	}
	return parkDeep(depth-1, release, parked) + pad[depth%len(pad)]
}

// parkIdle starts n goroutines parked 16 frames deep and waits until all are parked
// (printing one line about them when n > 0); the returned function releases them and
// waits until they have all returned.
func parkIdle(n int) func() {
	if n == 0 {
		return func() {}
	}
	release := make(chan struct{})
	var parked, done sync.WaitGroup
	parked.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			idleSink.Store(parkDeep(16, release, &parked))
		}()
	}
	parked.Wait()
	fmt.Printf("gcload idle goroutines: %d parked\n", n)
	return func() {
		close(release)
		done.Wait()
		fmt.Printf("gcload idle goroutines: %d released\n", n)
	}
}

type action struct {
	at   time.Duration
	kind actionKind
	// procs is the GOMAXPROCS value of an actSetGOMAXPROCS action.
	procs int
}

// schedule spreads forced GCs, ReadMemStats calls and GOMAXPROCS changes evenly over
// the run: the i-th of n of a kind happens at i*duration/(n+1).
func schedule(duration time.Duration, forced, readMemStats int, gomaxprocs []int) []action {
	var acts []action
	at := func(i, n int) time.Duration {
		return duration * time.Duration(i) / time.Duration(n+1)
	}
	add := func(n int, kind actionKind) {
		for i := 1; i <= n; i++ {
			acts = append(acts, action{at: at(i, n), kind: kind})
		}
	}
	add(forced, actForcedGC)
	add(readMemStats, actReadMemStats)
	for i, procs := range gomaxprocs {
		acts = append(acts, action{at: at(i+1, len(gomaxprocs)), kind: actSetGOMAXPROCS, procs: procs})
	}
	// Insertion sort: stable, and fine for the handful of actions.
	for i := 1; i < len(acts); i++ {
		for j := i; j > 0 && acts[j].at < acts[j-1].at; j-- {
			acts[j], acts[j-1] = acts[j-1], acts[j]
		}
	}
	return acts
}

func main() {
	duration := flag.Duration("duration", 3*time.Second, "how long to run (ignored with -forever, except for spreading -forced and -readmemstats)")
	goroutines := flag.Int("goroutines", 4, "allocating goroutines")
	forced := flag.Int("forced", 0, "call runtime.GC() this many times, spread over the run")
	readMemStats := flag.Int("readmemstats", 0, "call runtime.ReadMemStats this many times, spread over the run")
	memStatsPath := flag.String("memstats-out", "", "at exit, write the runtime's MemStats (NumGC, PauseNs, ...) as JSON to this file")
	forever := flag.Bool("forever", false, "run until SIGTERM or SIGINT, then exit 0")
	exitCode := flag.Int("exit-code", 0, "exit with this status")
	liveSlots := flag.Int("live-slots", 4096, "objects each goroutine keeps alive")
	batchBytes := flag.Int("batch-bytes", 64*1024, "bytes each goroutine allocates between 1 ms sleeps")
	execPath := flag.String("exec", "", "at the end, replace this program with PATH (execve, no arguments) instead of exiting: tests what a tracer does when its target execs")
	withHotspot := flag.Bool("hotspot", false, "add a goroutine whose 32 KiB []byte allocations (in main.hotspot) dominate the allocated bytes: a known hottest allocation site and type for the allocation tests")
	workMiB := flag.Int64("work", 0, "fixed work instead of a duration: allocate this many MiB in total (split over the goroutines) without pacing, then exit; -duration, -forever, -forced and -readmemstats do not apply")
	idle := flag.Bool("idle", false, "after the work, -memstats-out and the done line, stay idle (no allocation, so no GC cycle and no stop of the world) until SIGTERM or SIGINT, then exit: a quiet end in which a test can read what a tracer saw; cannot be combined with -forever, -work or -stw-loop")
	stwLoop := flag.Int("stw-loop", 0, "fixed work of another kind: stop the world this many times back to back (runtime.ReadMemStats), no allocating goroutines, then exit; cannot be combined with -work, -forever, -forced or -readmemstats")
	stwRate := flag.Int("stw-rate", 0, "with -stw-loop: at most this many stops per second, evenly paced (0: back to back)")
	setGOMAXPROCS := flag.String("set-gomaxprocs", "", "comma-separated GOMAXPROCS values set one after the other with runtime.GOMAXPROCS, spread over the run like -forced; each must differ from the value before it (a change stops the world)")
	largeEvery := flag.Int("large-every", 0, "add a goroutine (main.rareLarge) allocating one 320 KiB []byte, a large object, after every N 16-byte objects: rare by count, a large share of the bytes; -memstats-out's LargeBytes counts them")
	idleGoroutines := flag.Int("idle-goroutines", 0, "park this many extra goroutines for the whole run, each blocked a few frames deep (about 3 KiB of stack each), so the collector has that many stacks to scan")
	flag.Parse()
	procsList, err := parseProcs(*setGOMAXPROCS)
	if err != nil || *idleGoroutines < 0 || *stwRate < 0 {
		fmt.Fprintln(os.Stderr, "gcload: -set-gomaxprocs takes positive integers separated by commas; -idle-goroutines and -stw-rate must not be negative")
		os.Exit(2)
	}
	if (len(procsList) > 0 || *idleGoroutines > 0) && (*workMiB > 0 || *stwLoop > 0) {
		fmt.Fprintln(os.Stderr, "gcload: -set-gomaxprocs and -idle-goroutines cannot be combined with -work or -stw-loop")
		os.Exit(2)
	}
	if *stwRate > 0 && *stwLoop == 0 {
		fmt.Fprintln(os.Stderr, "gcload: -stw-rate needs -stw-loop")
		os.Exit(2)
	}
	// Each change must really change GOMAXPROCS: the same value again returns without
	// stopping the world, and the tests count those stops.
	prev := runtime.GOMAXPROCS(0)
	for _, n := range procsList {
		if n == prev {
			fmt.Fprintf(os.Stderr, "gcload: -set-gomaxprocs: %d is already the value before it\n", n)
			os.Exit(2)
		}
		prev = n
	}
	if *goroutines < 1 || *liveSlots < 1 || *batchBytes < 1 || *forced < 0 || *readMemStats < 0 || *workMiB < 0 {
		fmt.Fprintln(os.Stderr, "gcload: -goroutines, -live-slots and -batch-bytes must be positive, -forced, -readmemstats and -work not negative")
		os.Exit(2)
	}
	if *workMiB > 0 && (*forever || *forced > 0 || *readMemStats > 0) {
		fmt.Fprintln(os.Stderr, "gcload: -work cannot be combined with -forever, -forced or -readmemstats")
		os.Exit(2)
	}
	if *idle && (*forever || *workMiB > 0 || *stwLoop > 0) {
		fmt.Fprintln(os.Stderr, "gcload: -idle cannot be combined with -forever, -work or -stw-loop")
		os.Exit(2)
	}
	if *stwLoop < 0 || (*stwLoop > 0 && (*workMiB > 0 || *forever || *forced > 0 || *readMemStats > 0)) {
		fmt.Fprintln(os.Stderr, "gcload: -stw-loop must not be negative, and cannot be combined with -work, -forever, -forced or -readmemstats")
		os.Exit(2)
	}
	start := time.Now()
	cgoCall()

	if *stwLoop > 0 {
		// Many stops of the world for little other work: what the default mode's
		// stop-the-world probes cost per hit, large enough to measure (the benchmark).
		var ms runtime.MemStats
		for i := 0; i < *stwLoop; i++ {
			if *stwRate > 0 {
				// Stop i is due at i/rate seconds; sleep only when ahead by more than a
				// millisecond (shorter sleeps oversleep), so the average rate holds.
				due := time.Duration(i) * time.Second / time.Duration(*stwRate)
				if ahead := due - time.Since(start); ahead > time.Millisecond {
					time.Sleep(ahead)
				}
			}
			t := time.Now()
			runtime.ReadMemStats(&ms)
			if d := time.Since(t); d > maxReadMemStats {
				maxReadMemStats = d
			}
		}
		elapsed := time.Since(start)
		if *memStatsPath != "" {
			if err := writeMemStats(*memStatsPath, *stwLoop, elapsed); err != nil {
				fmt.Fprintln(os.Stderr, "gcload: writing memstats:", err)
				os.Exit(1)
			}
		}
		fmt.Printf("gcload done: stw-loop=%d\n", *stwLoop)
		os.Exit(*exitCode)
	}

	// Deterministic: traced and untraced runs must print the same lines.
	if len(procsList) > 0 {
		fmt.Printf("gcload gomaxprocs: %d", runtime.GOMAXPROCS(0))
		for _, n := range procsList {
			fmt.Printf(" -> %d", n)
		}
		fmt.Println()
	}
	releaseIdle := parkIdle(*idleGoroutines)

	signals := make(chan os.Signal, 1)
	if *forever || *idle {
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	budget := *workMiB << 20 / int64(*goroutines)
	for i := 0; i < *goroutines; i++ {
		wg.Add(1)
		go worker(i, *liveSlots, *batchBytes, budget, stop, &wg)
	}
	if *withHotspot {
		wg.Add(1)
		go untilStopped(stop, &wg, hotspot)
	}
	if *largeEvery > 0 {
		wg.Add(1)
		every := *largeEvery
		go untilStopped(stop, &wg, func() { rareLarge(every) })
	}
	if *workMiB > 0 {
		wg.Wait()
		elapsed := time.Since(start)
		if *memStatsPath != "" {
			if err := writeMemStats(*memStatsPath, 0, elapsed); err != nil {
				fmt.Fprintln(os.Stderr, "gcload: writing memstats:", err)
				os.Exit(1)
			}
		}
		fmt.Printf("gcload done: goroutines=%d work=%dMiB\n", *goroutines, *workMiB)
		os.Exit(*exitCode)
	}

	var ms runtime.MemStats
	readMemStatsCalls := 0
	for _, act := range schedule(*duration, *forced, *readMemStats, procsList) {
		if d := act.at - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		switch act.kind {
		case actForcedGC:
			runtime.GC()
		case actReadMemStats:
			runtime.ReadMemStats(&ms)
			readMemStatsCalls++
		case actSetGOMAXPROCS:
			runtime.GOMAXPROCS(act.procs)
		}
	}
	if *forever {
		<-signals
	} else if d := *duration - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	close(stop)
	wg.Wait()
	releaseIdle()
	elapsed := time.Since(start)

	if *memStatsPath != "" {
		if err := writeMemStats(*memStatsPath, readMemStatsCalls, elapsed); err != nil {
			fmt.Fprintln(os.Stderr, "gcload: writing memstats:", err)
			os.Exit(1)
		}
	}
	// Deterministic: traced and untraced runs must print the same line.
	fmt.Printf("gcload done: goroutines=%d forced=%d readmemstats=%d\n", *goroutines, *forced, *readMemStats)
	if *idle {
		<-signals
	}
	if *execPath != "" {
		err := syscall.Exec(*execPath, []string{*execPath}, os.Environ())
		fmt.Fprintln(os.Stderr, "gcload: exec:", err)
		os.Exit(1)
	}
	os.Exit(*exitCode)
}
