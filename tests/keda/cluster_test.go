package keda

// KEDA's redis-cluster-streams scaler (scalers.NewRedisStreamsScaler(ctx,
// true, false, cfg), what KEDA's scalers_builder.go builds for that type)
// against a real local Redis Cluster of 3 masters and 3 replicas that this
// test starts, with the triggers the chart renders for an external Redis
// Cluster (testdata/values-keda-cluster.yaml: redis.external.cluster,
// `addresses`).
//
// Two kinds of scenarios:
//   - g_*: no taskmesh binary. The streams and the consumer group are made the
//     way taskmesh makes them (XGROUP CREATE ... MKSTREAM on all three priority
//     streams of a queue, XADD, XREADGROUP, XACK), directly in the cluster, and
//     the real cluster scaler must report the lag, the pending entries,
//     activity and the replica count. The queues' slots lie on all three
//     masters, and one pool is also built from a single seed that does not
//     own its queue's slot: KEDA's client must find the owner itself.
//   - h_*: taskmesh's task_service and worker on the cluster, with --redis as
//     the seed list the chart renders (redis://:PW@H1:P1,H2:P2,H3:P3); the
//     binaries open it with redis::AutoClient.
//
// Every process started here is killed by its pid at the end; every wait is
// bounded; all traffic is on 127.0.0.1.

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const clusterPassword = "kedatest-cluster-pw"

// Cluster is a local Redis Cluster: six redis-server processes.
type Cluster struct {
	Nodes   []string // 127.0.0.1:P, in the order given to redis-cli --cluster create
	Masters []string // the masters, by their first slot (masters[0] serves slot 0)
	Client  *redis.ClusterClient
	procs   []*Proc
}

// clusterPort returns a free port P below 55535 whose bus port P+10000 is
// free too (a cluster node listens on both).
func clusterPort(t *testing.T, taken map[int]bool) int {
	t.Helper()
	for range 200 {
		p := freePort(t)
		if p >= 55535 || taken[p] || taken[p+10000] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		l.Close()
		taken[p], taken[p+10000] = true, true
		return p
	}
	t.Fatal("no free port pair P, P+10000 below 65535 after 200 tries")
	return 0
}

// startCluster starts 3 masters + 3 replicas with a password, makes them a
// cluster with redis-cli --cluster create, and waits (bounded) until every
// node reports cluster_state:ok and knows all six.
func startCluster(t *testing.T) *Cluster {
	t.Helper()
	redisBin := os.Getenv("REDIS_SERVER")
	if redisBin == "" {
		redisBin = "redis-server"
	}
	redisBin, err := exec.LookPath(redisBin)
	if err != nil {
		t.Fatalf("redis-server not found (apt-get install redis-server, or set REDIS_SERVER): %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redis-cli not found (Debian's redis-tools): %v", err)
	}
	c := &Cluster{}
	dir := t.TempDir()
	taken := map[int]bool{}
	for range 6 {
		var addr string
		for attempt := 0; ; attempt++ {
			port := clusterPort(t, taken)
			data := filepath.Join(dir, fmt.Sprintf("node-%d", port))
			if err := os.MkdirAll(data, 0o755); err != nil {
				t.Fatal(err)
			}
			p := startProc(t, dir, fmt.Sprintf("cluster-node-%d", port), redisBin,
				"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", data,
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
				"--requirepass", clusterPassword, "--masterauth", clusterPassword, "--daemonize", "no")
			addr = fmt.Sprintf("127.0.0.1:%d", port)
			probe := redis.NewClient(&redis.Options{Addr: addr, Password: clusterPassword})
			ok := waitFor(10*time.Second, func() bool {
				return p.Exited() || probe.Ping(context.Background()).Err() == nil
			})
			probe.Close()
			if ok && !p.Exited() {
				c.procs = append(c.procs, p)
				break
			}
			if attempt == 4 {
				t.Fatalf("cluster node on %s did not start:\n%s", addr, p.Tail(20))
			}
		}
		c.Nodes = append(c.Nodes, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"-a", clusterPassword, "--no-auth-warning", "--cluster", "create"}, c.Nodes...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	// Bounded: every node must see the whole cluster as ok.
	var last string
	ok := waitFor(30*time.Second, func() bool {
		for _, n := range c.Nodes {
			cl := redis.NewClient(&redis.Options{Addr: n, Password: clusterPassword})
			info, err := cl.ClusterInfo(context.Background()).Result()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:6") {
				last = fmt.Sprintf("%s: %v %s", n, err, info)
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatalf("the cluster did not reach cluster_state:ok with 6 nodes within 30 s; last: %s", last)
	}
	c.Client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Nodes, Password: clusterPassword})
	t.Cleanup(func() { c.Client.Close() })
	// The masters, ordered by the first slot they serve.
	shards, err := c.Client.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	sort.Slice(shards, func(i, j int) bool { return shards[i].Start < shards[j].Start })
	seen := map[string]bool{}
	for _, s := range shards {
		if a := s.Nodes[0].Addr; !seen[a] {
			seen[a] = true
			c.Masters = append(c.Masters, a)
		}
	}
	if len(c.Masters) != 3 {
		t.Fatalf("want 3 masters, CLUSTER SLOTS has %v", shards)
	}
	return c
}

// Owner is the master serving key's slot now (CLUSTER KEYSLOT + CLUSTER SLOTS).
func (c *Cluster) Owner(t *testing.T, key string) (int64, string) {
	t.Helper()
	ctx := context.Background()
	slot, err := c.Client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	shards, err := c.Client.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatalf("CLUSTER SLOTS: %v", err)
	}
	for _, s := range shards {
		if int64(s.Start) <= slot && slot <= int64(s.End) {
			return slot, s.Nodes[0].Addr
		}
	}
	t.Fatalf("slot %d of %s has no owner", slot, key)
	return 0, ""
}

// streams of a queue, DEFAULT first (broker/keys.h).
func queueStreams(q string) []string {
	return []string{fmt.Sprintf("taskmesh:{%s}:stream", q), fmt.Sprintf("taskmesh:{%s}:stream:high", q),
		fmt.Sprintf("taskmesh:{%s}:stream:low", q)}
}

// makeGroups creates a queue's three streams with the "workers" group, as
// taskmesh's first enqueue on a queue (or a worker's start) does.
func (c *Cluster) makeGroups(t *testing.T, q string) {
	t.Helper()
	for _, s := range queueStreams(q) {
		if err := c.Client.XGroupCreateMkStream(context.Background(), s, "workers", "$").Err(); err != nil {
			t.Fatalf("XGROUP CREATE %s workers $ MKSTREAM: %v", s, err)
		}
	}
}

func (c *Cluster) add(t *testing.T, stream string, n int) {
	t.Helper()
	for i := range n {
		if err := c.Client.XAdd(context.Background(), &redis.XAddArgs{Stream: stream,
			Values: map[string]any{"task": fmt.Sprintf("t%d", i)}}).Err(); err != nil {
			t.Fatalf("XADD %s: %v", stream, err)
		}
	}
}

// read delivers up to n entries of stream to consumer (XREADGROUP, no BLOCK)
// and returns their ids.
func (c *Cluster) read(t *testing.T, stream, consumer string, n int) []string {
	t.Helper()
	res, err := c.Client.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: "workers",
		Consumer: consumer, Streams: []string{stream, ">"}, Count: int64(n), Block: -1}).Result()
	if err != nil {
		t.Fatalf("XREADGROUP %s: %v", stream, err)
	}
	var ids []string
	for _, s := range res {
		for _, m := range s.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

func (c *Cluster) ack(t *testing.T, stream string, ids []string) {
	t.Helper()
	if err := c.Client.XAck(context.Background(), stream, "workers", ids...).Err(); err != nil {
		t.Fatalf("XACK %s: %v", stream, err)
	}
}

func TestKEDAClusterScaling(t *testing.T) {
	start := time.Now()
	c := startCluster(t)
	t.Logf("Redis Cluster up in %.1fs: nodes %v, masters by slot range %v",
		time.Since(start).Seconds(), c.Nodes, c.Masters)
	sos := renderScaledObjectsFrom(t, "values-keda-cluster.yaml")
	queues := []string{"cb", "ca", "cd", "ce", "ch", "ci", "cf"}
	seeds := strings.Join(c.Masters, ",") // the rendered 3 addresses, replaced in order
	ctx := context.Background()
	diag := &Mesh{t: t, Redis: c.Client} // RawLag only
	owners := map[string]string{}

	t.Run("0_chart_renders_cluster_triggers", func(t *testing.T) {
		want := "redis-cluster-0.data.svc.cluster.local:6379,redis-cluster-1.data.svc.cluster.local:6379," +
			"redis-cluster-2.data.svc.cluster.local:6379"
		for _, q := range queues {
			so, ok := sos[q]
			if !ok {
				t.Fatalf("the chart rendered no ScaledObject for pool %s", q)
			}
			checkTriggersShapeOf(t, q, so, []string{q}, "redis-cluster-streams")
			for i, tr := range so.Spec.Triggers {
				if tr.Metadata["addresses"] != want {
					t.Errorf("pool %s trigger %d: addresses %q, want %q", q, i, tr.Metadata["addresses"], want)
				}
				for _, k := range []string{"address", "host", "port", "databaseIndex"} {
					if _, ok := tr.Metadata[k]; ok {
						t.Errorf("pool %s trigger %d: %s set on a cluster trigger: %v", q, i, k, tr.Metadata)
					}
				}
				if tr.AuthenticationRef == nil || tr.AuthenticationRef.Name == "" {
					t.Errorf("pool %s trigger %d: no authenticationRef (the password)", q, i)
				}
			}
		}
		t.Logf("pool cb triggers (as rendered; addresses replaced by %s at run time):", seeds)
		for _, tr := range sos["cb"].Spec.Triggers {
			t.Logf("    %s %v auth=%v", tr.Type, tr.Metadata, tr.AuthenticationRef)
		}
		spread := map[string][]string{}
		for _, q := range queues {
			slot, owner := c.Owner(t, queueStreams(q)[0])
			owners[q] = owner
			spread[owner] = append(spread[owner], fmt.Sprintf("%s(slot %d)", q, slot))
		}
		for _, m := range c.Masters {
			t.Logf("    master %s serves %v", m, spread[m])
		}
		if len(spread) != 3 {
			t.Errorf("the queues lie on %d masters, want all 3: %v", len(spread), spread)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	pools := map[string]*Pool{}
	for _, q := range queues {
		pools[q] = NewPool(ctx, t, q, sos[q], seeds, clusterPassword)
	}
	sc := func(t *testing.T, q string) *scenario {
		return &scenario{t: t, m: diag, pool: pools[q], queue: q}
	}
	nonFirst := func(t *testing.T, q string) {
		t.Helper()
		if owners[q] == c.Masters[0] {
			t.Fatalf("queue %s lies on the first seed %s; the scenario needs another master", q, c.Masters[0])
		}
		t.Logf("queue %s lies on %s, not on the first seed %s", q, owners[q], c.Masters[0])
	}

	t.Run("g1_empty_queues_on_every_master_read_zero", func(t *testing.T) {
		for _, q := range []string{"cb", "ca", "cd"} {
			c.makeGroups(t, q)
			s := sc(t, q)
			poll, r := s.observe(fmt.Sprintf("queue %s on %s: 3 streams with group workers, empty", q, owners[q]), 0)
			s.expect("empty", poll, r, false, "", 0, 0)
			if poll.Error {
				t.Errorf("queue %s: a trigger failed on an empty queue with its groups: %s", q, poll)
			}
		}
	})

	t.Run("g2_backlog_on_each_master_scales_each_pool", func(t *testing.T) {
		// 1, 4 and 7 waiting entries: ceil(n / lagCount 2) = 1, 2 and 4 pods.
		for _, c2 := range []struct {
			q    string
			n    int
			want int
		}{{"cb", 1, 1}, {"ca", 4, 2}, {"cd", 7, 4}} {
			c.add(t, queueStreams(c2.q)[0], c2.n)
			s := sc(t, c2.q)
			poll, r := s.observe(fmt.Sprintf("queue %s on %s: %d entries added, no consumer", c2.q, owners[c2.q], c2.n), 0)
			s.expect(fmt.Sprintf("%s with %d waiting", c2.q, c2.n), poll, r, true, "", float64(c2.n), c2.want)
		}
	})

	t.Run("g3_single_seed_finds_a_queue_on_another_master", func(t *testing.T) {
		nonFirst(t, "cd")
		one := NewPool(ctx, t, "cd", sos["cd"], c.Masters[0], clusterPassword)
		s := &scenario{t: t, m: diag, pool: one, queue: "cd"}
		poll, r := s.observe(fmt.Sprintf("queue cd (7 waiting) read through the single seed %s", c.Masters[0]), 0)
		s.expect("cd through one seed", poll, r, true, "", 7, 4)
	})

	t.Run("g4_consumers_in_flight_then_done", func(t *testing.T) {
		nonFirst(t, "ce")
		q := "ce"
		c.makeGroups(t, q)
		st := queueStreams(q)[0]
		s := sc(t, q)
		c.add(t, st, 5)
		poll, r := s.observe("5 entries waiting, no consumer", 0)
		s.expect("5 waiting", poll, r, true, "", 5, 3)

		ids := c.read(t, st, "ce-w1", 2)
		if len(ids) != 2 {
			t.Fatalf("XREADGROUP COUNT 2 delivered %d entries", len(ids))
		}
		poll, r = s.observe("2 delivered to ce-w1 (in flight), 3 waiting, 1 worker", 1)
		s.expect("2 in flight, 3 waiting", poll, r, true, "", 3, 2)
		if p, ok := poll.Value(st, "pending"); !ok || p != 2 {
			t.Errorf("pending entries on %s = %g (ok=%v), want 2", st, p, ok)
		}

		rest := c.read(t, st, "ce-w1", 10)
		c.ack(t, st, ids)
		poll, r = s.observe("first 2 acked, the other 3 delivered: 0 waiting, 3 in flight, 2 workers", 2)
		s.expect("0 waiting, 3 in flight", poll, r, true, "", 0, 2)
		if p, ok := poll.Value(st, "pending"); !ok || p != 3 {
			t.Errorf("pending entries on %s = %g (ok=%v), want 3", st, p, ok)
		}

		c.ack(t, st, rest)
		poll, r = s.observe("all acked, 2 workers idle", 2)
		s.expect("all done", poll, r, false, "", 0, 0)
	})

	t.Run("g5_high_priority_on_another_master_wakes_only_its_trigger", func(t *testing.T) {
		nonFirst(t, "ch")
		q := "ch"
		c.makeGroups(t, q)
		s := sc(t, q)
		poll, r := s.observe("empty", 0)
		s.expect("empty", poll, r, false, "high", 0, 0)
		c.add(t, queueStreams(q)[1], 1)
		poll, r = s.observe("1 entry on :stream:high, no consumer", 0)
		s.expect("one HIGH entry", poll, r, true, "high", 1, 1)
		for _, rd := range poll.Readings {
			if rd.Active && rd.Stream != queueStreams(q)[1] {
				t.Errorf("trigger on %s (%s) active, only %s should be", rd.Stream, rd.Kind, queueStreams(q)[1])
			}
		}
	})

	// ---- taskmesh's binaries on the cluster.
	url := fmt.Sprintf("redis://:%s@%s", clusterPassword, seeds) // as the chart renders it
	m := &Mesh{t: t, dir: t.TempDir(), bins: binDir(t), RedisURL: url, Redis: c.Client}
	m.startTaskService(t)

	t.Run("h1_task_service_on_cluster_wakes_pool_at_zero", func(t *testing.T) {
		nonFirst(t, "ci")
		s := &scenario{t: t, m: m, pool: pools["ci"], queue: "ci"}
		var tasks []Task
		for i := range 5 {
			tasks = append(tasks, m.Create("ci", "echo", fmt.Sprintf(`{"n":%d}`, i), ""))
		}
		poll, r := s.observe("5 tasks created through task_service on the cluster, no worker", 0)
		s.expect("5 tasks", poll, r, true, "", 5, 3)
		if poll.Error {
			t.Errorf("a trigger failed once a task existed (the first task creates all three groups): %s", poll)
		}
		w := m.StartWorker(t, "ci", "ci-w1", 2)
		defer stopWorker(t, w)
		if got := m.WaitState(s.names(tasks), "SUCCEEDED", 60*time.Second); !allIn(got, "SUCCEEDED") {
			t.Fatalf("tasks did not succeed on the cluster: %+v", got)
		}
		poll, r = s.observe("all 5 SUCCEEDED, 1 worker idle", 1)
		s.expect("after the tasks", poll, r, false, "", 0, 0)
	})

	t.Run("h2_running_tasks_keep_pool_up_on_cluster", func(t *testing.T) {
		runningTasksKeepPoolUp(&scenario{t: t, m: m, pool: pools["cf"], queue: "cf"}, m)
	})
}
