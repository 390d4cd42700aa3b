package keda

// The scenarios. Each one has its own pool and queue (testdata/values-keda.yaml),
// polls KEDA's scalers built from the chart's triggers, and logs at every step
// the scalers' answers, the raw lag Redis reports and the replica count KEDA
// and the HPA would aim for (Pool.Settle) from the number of workers actually
// running at that moment. run.sh runs `go test -v`, so the logs are printed.

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"
)

type scenario struct {
	t     *testing.T
	m     *Mesh
	pool  *Pool
	queue string
}

func (s *scenario) stream(suffix string) string {
	if suffix == "" {
		return fmt.Sprintf("taskmesh:{%s}:stream", s.queue)
	}
	return fmt.Sprintf("taskmesh:{%s}:stream:%s", s.queue, suffix)
}

// observe polls every trigger once and settles the replica count from
// `running` replicas; it logs the step and returns the poll and the count.
func (s *scenario) observe(step string, running int) (Poll, int) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	poll := s.pool.Poll(ctx)
	replicas, trail := s.pool.Settle(poll, running)
	s.t.Logf("[%s] %s\n    scalers: %s\n    raw XINFO lag: stream=%s high=%s low=%s\n    replicas: %s",
		s.pool.Name, step, poll, s.m.RawLag(s.stream("")), s.m.RawLag(s.stream("high")),
		s.m.RawLag(s.stream("low")), trail)
	return poll, replicas
}

// expect checks one observation: activity, the lag of the lag trigger on
// stream `suffix` (NaN: not checked) and the replica count.
func (s *scenario) expect(step string, poll Poll, replicas int, active bool, suffix string, lag float64, want int) {
	s.t.Helper()
	if poll.Active != active {
		s.t.Errorf("%s: KEDA isActive=%v, want %v", step, poll.Active, active)
	}
	if !math.IsNaN(lag) {
		got, ok := poll.Value(s.stream(suffix), "lag")
		switch {
		case !ok:
			s.t.Errorf("%s: the lag trigger on %s failed", step, s.stream(suffix))
		case got != lag:
			extra := ""
			if raw := s.m.RawLag(s.stream(suffix)); raw == "nil" {
				extra = " (Redis's XINFO GROUPS lag is nil, as after an XDEL of an entry the group had not" +
					" delivered; go-redis reads nil as -1, KEDA reports the metric as 0 (negatives are" +
					" clamped) and -1 > activationLagCount 0 is false: inactive)"
			}
			s.t.Errorf("%s: lag on %s = %g, want %g%s", step, s.stream(suffix), got, lag, extra)
		}
	}
	if replicas != want {
		s.t.Errorf("%s: KEDA+HPA replicas = %d, want %d", step, replicas, want)
	}
}

func (s *scenario) names(tasks []Task) []string {
	var out []string
	for _, t := range tasks {
		out = append(out, t.Name)
	}
	return out
}

func TestKEDAScaling(t *testing.T) {
	m := startMesh(t)
	sos := renderScaledObjects(t)
	pools := map[string]*Pool{}
	ctx := context.Background()
	queues := []string{"ka", "kb", "kc", "kd", "ke-high", "ke-low", "kf", "kg"}
	// The streams' queues per pool: a partitioned queue's partitions (broker/partitions.h).
	streamsOf := func(q string) []string {
		if q == "kg" {
			return []string{"kg", "kg~1", "kg~2"}
		}
		return []string{q}
	}

	t.Run("0_chart_renders_the_expected_triggers", func(t *testing.T) {
		for _, q := range queues {
			so, ok := sos[q]
			if !ok {
				t.Fatalf("the chart rendered no ScaledObject for pool %s", q)
			}
			checkTriggersShape(t, q, so, streamsOf(q))
			if so.Spec.MinReplicaCount != 0 || so.Spec.MaxReplicaCount != 10 {
				t.Errorf("pool %s: min/max %d/%d, want 0/10", q, so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
			}
		}
		t.Logf("pool ka triggers (as rendered, address replaced by %s at run time):", m.RedisAddr)
		for _, tr := range sos["ka"].Spec.Triggers {
			t.Logf("    %s %v", tr.Type, tr.Metadata)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	for _, q := range queues {
		pools[q] = NewPool(ctx, t, q, sos[q], m.RedisAddr, redisPassword)
	}
	sc := func(t *testing.T, q string) *scenario {
		return &scenario{t: t, m: m, pool: pools[q], queue: q}
	}
	t.Run("a_one_task_wakes_pool_at_zero", func(t *testing.T) {
		s := sc(t, "ka")
		poll, r := s.observe("empty queue, no worker", 0)
		s.expect("empty queue", poll, r, false, "", 0, 0)

		task := m.Create("ka", "echo", `{"n":1}`, "")
		poll, r = s.observe("1 DEFAULT task created, no worker", 0)
		s.expect("after one task", poll, r, true, "", 1, 1)

		w := m.StartWorker(t, "ka", "ka-w1", 2)
		if got := m.WaitState([]string{task.Name}, "SUCCEEDED", 30*time.Second); got[0].State != "SUCCEEDED" {
			t.Fatalf("the task did not succeed: %+v", got)
		}
		poll, r = s.observe("task done, 1 worker up", 1)
		s.expect("after the task ran", poll, r, false, "", 0, 0)
		if poll.Error {
			t.Errorf("a trigger failed once a worker had run (it creates all three groups): %s", poll)
		}
		stopWorker(t, w)
	})

	t.Run("b_cancel_newest_of_6_keeps_lag_5", func(t *testing.T) {
		s := sc(t, "kb")
		var tasks []Task
		for i := range 6 {
			tasks = append(tasks, m.Create("kb", "echo", fmt.Sprintf(`{"n":%d}`, i), ""))
		}
		poll, r := s.observe("6 tasks, no worker", 0)
		s.expect("6 tasks", poll, r, true, "", 6, 3)

		newest := tasks[len(tasks)-1]
		if c := m.Cancel(newest.Name); c.State != "CANCELLED" {
			t.Fatalf("cancel of a PENDING task: state %s", c.State)
		}
		poll, r = s.observe("newest cancelled, 5 still PENDING, no worker", 0)
		s.expect("after cancelling the newest", poll, r, true, "", 5, 3)

		m.Create("kb", "echo", `{"n":"after-cancel"}`, "")
		poll, r = s.observe("one more task created after the cancel, 6 PENDING, no worker", 0)
		s.expect("a new task after the cancel", poll, r, true, "", 6, 3)
	})

	t.Run("c1_delete_at_zero_keeps_the_rest_visible", func(t *testing.T) {
		s := sc(t, "kc")
		var tasks []Task
		for i := range 3 {
			tasks = append(tasks, m.Create("kc", "echo", fmt.Sprintf(`{"n":%d}`, i), ""))
		}
		poll, r := s.observe("3 tasks, no worker", 0)
		s.expect("3 tasks", poll, r, true, "", 3, 2)
		m.Delete(tasks[1].Name)
		poll, r = s.observe("middle task deleted, 2 still PENDING, no worker", 0)
		s.expect("after delete", poll, r, true, "", 2, 1)
	})

	t.Run("c2_purge_at_zero_reads_empty", func(t *testing.T) {
		s := sc(t, "kc")
		out := m.Purge("kc")
		t.Logf("PurgeQueue: %s", out)
		poll, r := s.observe("queue purged (pending included), no worker", 0)
		s.expect("after purge", poll, r, false, "", 0, 0)
	})

	t.Run("c3_task_after_purge_wakes_pool", func(t *testing.T) {
		s := sc(t, "kc")
		m.Create("kc", "echo", `{"after":"purge"}`, "")
		poll, r := s.observe("1 task created after the purge, no worker", 0)
		s.expect("after purge + create", poll, r, true, "", 1, 1)
	})

	t.Run("d_running_tasks_keep_pool_up", func(t *testing.T) {
		runningTasksKeepPoolUp(sc(t, "kd"), m)
	})

	for _, c := range []struct{ name, queue, prio, suffix string }{
		{"e1_high_priority_task_wakes_pool", "ke-high", "HIGH", "high"},
		{"e2_low_priority_task_wakes_pool", "ke-low", "LOW", "low"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := sc(t, c.queue)
			poll, r := s.observe("empty queue, no worker", 0)
			s.expect("empty", poll, r, false, c.suffix, 0, 0)
			task := m.Create(c.queue, "echo", `{}`, c.prio)
			if task.Priority != c.prio {
				t.Errorf("created task has priority %q, want %q", task.Priority, c.prio)
			}
			poll, r = s.observe(fmt.Sprintf("1 %s task created, no worker", c.prio), 0)
			s.expect("after the task", poll, r, true, c.suffix, 1, 1)
			for _, rd := range poll.Readings {
				if rd.Active && rd.Stream != s.stream(c.suffix) {
					t.Errorf("trigger on %s (%s) active, only %s should be", rd.Stream, rd.Kind, s.stream(c.suffix))
				}
			}
		})
	}

	t.Run("g_every_partition_is_seen", func(t *testing.T) {
		everyPartitionIsSeen(sc(t, "kg"), m)
	})

	t.Run("f_scale_down_during_drain_loses_nothing", func(t *testing.T) {
		s := sc(t, "kf")
		w1 := m.StartWorker(t, "kf", "kf-w1", 2, "--drain_timeout=30s")
		var tasks []Task
		for i := range 4 {
			tasks = append(tasks, m.Create("kf", "sleep", fmt.Sprintf(`{"ms":3000,"n":%d}`, i), ""))
		}
		var running []string
		waitFor(15*time.Second, func() bool {
			running = running[:0]
			for _, tk := range tasks {
				if m.Get(tk.Name).State == "RUNNING" {
					running = append(running, tk.Name)
				}
			}
			return len(running) == 2
		})
		if len(running) != 2 {
			t.Fatalf("want 2 of 4 tasks RUNNING on a worker of concurrency 2, got %d", len(running))
		}
		poll, r := s.observe("2 RUNNING, 2 waiting, 1 worker", 1)
		s.expect("before SIGTERM", poll, r, true, "", 2, 1)

		if err := w1.Terminate(); err != nil {
			t.Fatal(err)
		}
		t.Logf("SIGTERM sent to kf-w1 (pid %d): it drains", w1.Cmd.Process.Pid)
		// KEDA polls while the worker drains (bounded: 40 polls, ~20 s).
		for i := 0; i < 40 && !w1.Exited(); i++ {
			poll, r = s.observe(fmt.Sprintf("draining, poll %d", i), 1)
			if !poll.Active || r < 1 {
				t.Errorf("during the drain KEDA computed active=%v replicas=%d, want active and >= 1 (2 tasks wait)", poll.Active, r)
			}
			time.Sleep(500 * time.Millisecond)
		}
		err, exited := w1.Wait(35 * time.Second)
		if !exited {
			t.Fatalf("kf-w1 still running 35 s after SIGTERM (drain_timeout 30s)")
		}
		if err != nil {
			t.Errorf("kf-w1 exit after drain: %v, want status 0", err)
		}
		for _, n := range running {
			if tk := m.Get(n); tk.State != "SUCCEEDED" || tk.Attempt != 1 {
				t.Errorf("task %s running at SIGTERM: %s attempt %d, want SUCCEEDED attempt 1 (drained)", n, tk.State, tk.Attempt)
			}
		}
		poll, r = s.observe("kf-w1 exited, 2 tasks waiting, 0 workers", 0)
		s.expect("after the drain", poll, r, true, "", 2, 1)

		w2 := m.StartWorker(t, "kf", "kf-w2", 2)
		defer stopWorker(t, w2)
		got := m.WaitState(s.names(tasks), "SUCCEEDED", 30*time.Second)
		for _, tk := range got {
			if tk.State != "SUCCEEDED" || tk.Attempt != 1 {
				t.Errorf("task %s: %s attempt %d, want SUCCEEDED attempt 1", tk.Name, tk.State, tk.Attempt)
			}
		}
		poll, r = s.observe("all 4 SUCCEEDED, kf-w2 idle", 1)
		s.expect("after all tasks", poll, r, false, "", 0, 0)
	})
}

func allIn(tasks []Task, state string) bool {
	for _, t := range tasks {
		if t.State != state {
			return false
		}
	}
	return len(tasks) > 0
}

// stopWorker SIGTERMs a worker and waits (bounded) for it to exit.
func stopWorker(t *testing.T, w *Proc) {
	t.Helper()
	if w.Exited() {
		return
	}
	_ = w.Terminate()
	if _, ok := w.Wait(40 * time.Second); !ok {
		t.Errorf("%s did not exit 40 s after SIGTERM", w.Name)
	}
}

// runningTasksKeepPoolUp: two sleep tasks RUNNING on one worker of the pool
// (none waiting) keep it at one replica through the pending-entries
// triggers; once they are done the pool goes idle (shared by the standalone
// and the cluster scenarios).
func runningTasksKeepPoolUp(s *scenario, m *Mesh) {
	t := s.t
	w := m.StartWorker(t, s.queue, s.queue+"-w1", 2)
	defer stopWorker(t, w)
	var tasks []Task
	for range 2 {
		tasks = append(tasks, m.Create(s.queue, "sleep", `{"ms":4000}`, ""))
	}
	if got := m.WaitState(s.names(tasks), "RUNNING", 20*time.Second); !allIn(got, "RUNNING") {
		t.Fatalf("tasks not RUNNING: %+v", got)
	}
	poll, r := s.observe("2 tasks RUNNING on 1 worker, none waiting", 1)
	s.expect("while running", poll, r, true, "", 0, 1)
	if p, ok := poll.Value(s.stream(""), "pending"); !ok || p != 2 {
		t.Errorf("pending entries on %s = %g (ok=%v), want 2", s.stream(""), p, ok)
	}
	if got := m.WaitState(s.names(tasks), "SUCCEEDED", 30*time.Second); !allIn(got, "SUCCEEDED") {
		t.Fatalf("tasks did not succeed: %+v", got)
	}
	poll, r = s.observe("both done, 1 worker idle", 1)
	s.expect("after the tasks", poll, r, false, "", 0, 0)
}

// partitionFor is broker/partitions.cc PartitionFor: FNV-1a (64 bits) of the
// task id, modulo the partition count. Written again here on purpose: the
// scenario's first task must land where this says, which pins the hash.
func partitionFor(id string, count int) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return int(h % uint64(count))
}

// everyPartitionIsSeen: a queue the chart spreads over 3 partitions. Its
// workers create every partition's streams at start (--partition_limits, as
// the chart passes it), so no trigger fails before the queue is partitioned;
// once it is, one task in partition 2 alone wakes the pool at zero, through
// the triggers on {kg~2}.
func everyPartitionIsSeen(s *scenario, m *Mesh) {
	t := s.t
	seed := m.Create(s.queue, "echo", `{"seed":true}`, "")
	w := m.StartWorker(t, s.queue, "kg-w1", 2, "--partition_limits=kg=3")
	if got := m.WaitState([]string{seed.Name}, "SUCCEEDED", 30*time.Second); got[0].State != "SUCCEEDED" {
		t.Fatalf("the seed task did not succeed: %+v", got)
	}
	stopWorker(t, w)
	poll, r := s.observe("queue of 1 partition so far, its worker ran once and stopped", 0)
	s.expect("before partitioning", poll, r, false, "", 0, 0)
	if poll.Error {
		t.Errorf("a trigger on a partition failed before the queue was partitioned: %s", poll)
	}
	out, err := m.Call("UpdateQueue", `{"queue":{"name":"queues/kg","partitions":3},"updateMask":"partitions"}`)
	if err != nil {
		t.Fatalf("UpdateQueue partitions=3: %v", err)
	}
	t.Logf("UpdateQueue: %s", out)
	id := ""
	for i := 0; id == ""; i++ {
		if c := fmt.Sprintf("p2-%d", i); partitionFor(c, 3) == 2 {
			id = c
		}
	}
	task := m.callTask("CreateTask", fmt.Sprintf(`{"parent":"queues/kg","taskId":%q,"task":{"type":"echo"}}`, id))
	part2 := "taskmesh:{kg~2}:stream"
	if raw := m.RawLag(part2); raw != "1" {
		t.Errorf("task %s: raw lag of %s is %s, want 1 (the task is not in partition 2?)", id, part2, raw)
	}
	poll, r = s.observe("1 task in partition 2 only, no worker", 0)
	if !poll.Active || r != 1 {
		t.Errorf("one task in partition 2: active=%v replicas=%d, want active and 1", poll.Active, r)
	}
	for _, rd := range poll.Readings {
		if rd.Active && rd.Stream != part2 {
			t.Errorf("trigger on %s (%s) active, only %s should be", rd.Stream, rd.Kind, part2)
		}
	}
	if v, ok := poll.Value(part2, "lag"); !ok || v != 1 {
		t.Errorf("lag trigger on %s = %v (ok %v), want 1", part2, v, ok)
	}
	w = m.StartWorker(t, s.queue, "kg-w2", 2, "--partition_limits=kg=3")
	if got := m.WaitState([]string{task.Name}, "SUCCEEDED", 30*time.Second); got[0].State != "SUCCEEDED" {
		t.Fatalf("the partition-2 task did not succeed: %+v", got)
	}
	poll, r = s.observe("task done, 1 worker up", 1)
	if poll.Active || poll.Error || r != 0 {
		t.Errorf("after the task ran: active=%v error=%v replicas=%d, want inactive, no error, 0", poll.Active, poll.Error, r)
	}
	stopWorker(t, w)
}
