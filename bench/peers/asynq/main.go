// Command asynq-peer is bench/run.sh's Asynq peer (github.com/hibiken/asynq):
// a server with a no-op handler, and the producer side of the measurements.
//
//	asynq-peer worker REDIS_PORT QUEUE CONCURRENCY
//	    an Asynq server on QUEUE, CONCURRENCY handlers, Asynq's defaults
//	    otherwise; prints "asynq worker ready" on stderr; stops on SIGTERM
//	asynq-peer bench REDIS_PORT QUEUE e2e N PRODUCERS
//	    enqueues N no-op tasks from PRODUCERS goroutines (Asynq has no bulk
//	    enqueue: one Client.Enqueue, one script call, per task), then waits
//	    until a running worker has processed them all
//	asynq-peer bench REDIS_PORT QUEUE roundtrip N
//	    enqueues one task and waits until it is processed; N times
//
// The bench modes print `RESULT {json}` on stdout, with the field names of
// the BullMQ and Celery peers (bench/peers/node/bench.js), and give up after
// 120 s. Completion is read from Asynq's own counter of processed tasks
// (asynq:{QUEUE}:processed, one GET per poll), as BullMQ's bench polls its
// completed count: Asynq deletes a finished task that has no retention.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

const taskType = "noop"

var giveUp = time.Now().Add(120 * time.Second)

func usage() {
	fmt.Fprintln(os.Stderr, "usage: asynq-peer worker PORT QUEUE CONCURRENCY | bench PORT QUEUE e2e N PRODUCERS | bench PORT QUEUE roundtrip N")
	os.Exit(2)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "asynq-peer: %q is not a positive number\n", s)
		os.Exit(2)
	}
	return n
}

func main() {
	if len(os.Args) < 5 {
		usage()
	}
	addr := "127.0.0.1:" + os.Args[2]
	queue := os.Args[3]
	switch os.Args[1] {
	case "worker":
		worker(addr, queue, atoi(os.Args[4]))
	case "bench":
		var result map[string]any
		switch {
		case os.Args[4] == "e2e" && len(os.Args) == 7:
			result = e2e(addr, queue, atoi(os.Args[5]), atoi(os.Args[6]))
		case os.Args[4] == "roundtrip" && len(os.Args) == 6:
			result = roundtrip(addr, queue, atoi(os.Args[5]))
		default:
			usage()
		}
		line, err := json.Marshal(result)
		if err != nil {
			fail(err)
		}
		fmt.Printf("RESULT %s\n", line)
	default:
		usage()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "asynq-peer:", err)
	os.Exit(1)
}

func ping(addr string) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		fail(fmt.Errorf("redis at %s: %w", addr, err))
	}
	return rdb
}

func worker(addr, queue string, concurrency int) {
	ping(addr).Close()
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency:     concurrency,
		Queues:          map[string]int{queue: 1},
		LogLevel:        asynq.WarnLevel,
		ShutdownTimeout: 3 * time.Second,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskType, func(context.Context, *asynq.Task) error { return nil })
	if err := srv.Start(mux); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "asynq worker ready: %s, concurrency %d\n", queue, concurrency)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	srv.Shutdown()
}

// processed reads Asynq's total of tasks processed on queue (0 before the first).
func processed(ctx context.Context, rdb *redis.Client, queue string) (int, error) {
	n, err := rdb.Get(ctx, "asynq:{"+queue+"}:processed").Int()
	if err == redis.Nil {
		return 0, nil
	}
	return n, err
}

// cpuSeconds is this process's user + system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func e2e(addr, queue string, n, producers int) map[string]any {
	rdb := ping(addr)
	defer rdb.Close()
	ctx := context.Background()
	base, err := processed(ctx, rdb, queue)
	if err != nil {
		fail(err)
	}
	// One connection per producer, so that PRODUCERS enqueues are in flight.
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr, PoolSize: producers})
	defer client.Close()

	cpu0 := cpuSeconds()
	t0 := time.Now()
	var next, errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := client.Enqueue(asynq.NewTask(taskType, nil), asynq.Queue(queue)); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	enqSecs := time.Since(t0).Seconds()
	enqCPU := cpuSeconds() - cpu0
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "asynq-peer: %d enqueue errors, the first: %s\n", errs.Load(), e)
	}

	atEnqueueEnd, err := processed(ctx, rdb, queue)
	if err != nil {
		fail(err)
	}
	atEnqueueEnd -= base
	done := 0
	for time.Now().Before(giveUp) {
		if done, err = processed(ctx, rdb, queue); err != nil {
			fail(err)
		}
		done -= base
		if done >= n {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	secs := time.Since(t0).Seconds()
	drain := 0.0
	if secs > enqSecs && done > atEnqueueEnd {
		drain = float64(done-atEnqueueEnd) / (secs - enqSecs)
	}
	return map[string]any{
		"name": "asynq_e2e", "e2e_tasks": n, "e2e_succeeded": done, "e2e_seconds": secs,
		"e2e_tasks_per_s": float64(done) / secs, "enqueue_per_s": float64(n) / enqSecs,
		"enqueue_seconds": enqSecs, "enqueue_errors": errs.Load(), "producers": producers,
		// What the worker processed while the producer still ran, and its rate
		// on the backlog after that (its processor sleeps 0.5-1.5 s whenever it
		// finds the queue empty, TaskCheckInterval's default, so the figure
		// of the whole run includes one such sleep at its start).
		"done_at_enqueue_end": atEnqueueEnd, "drain_after_enqueue_per_s": drain,
		// The producer's CPU while it enqueued (the others' producers are not measured).
		"producer_cpu_s": enqCPU, "producer_cpu_us_per_item": enqCPU * 1e6 / float64(n),
	}
}

func pct(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(len(sorted)-1, i))]
}

func roundtrip(addr, queue string, n int) map[string]any {
	rdb := ping(addr)
	defer rdb.Close()
	ctx := context.Background()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer client.Close()
	warmup := min(50, n/10)
	var lat []float64
	timeouts := 0
	for i := 0; i < n+warmup && time.Now().Before(giveUp); i++ {
		before, err := processed(ctx, rdb, queue)
		if err != nil {
			fail(err)
		}
		t0 := time.Now()
		if _, err := client.Enqueue(asynq.NewTask(taskType, nil), asynq.Queue(queue)); err != nil {
			fail(err)
		}
		deadline := t0.Add(10 * time.Second)
		finished := false
		for time.Now().Before(deadline) {
			now, err := processed(ctx, rdb, queue)
			if err != nil {
				fail(err)
			}
			if now > before {
				finished = true
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		us := float64(time.Since(t0).Microseconds())
		if !finished {
			timeouts++
		} else if i >= warmup {
			lat = append(lat, us)
		}
	}
	sort.Float64s(lat)
	return map[string]any{
		"name": "asynq_roundtrip", "ok": len(lat), "timeouts": timeouts,
		"p50_us": pct(lat, 50), "p90_us": pct(lat, 90), "p99_us": pct(lat, 99), "p999_us": pct(lat, 99.9),
	}
}
