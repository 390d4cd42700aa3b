package keda

// The mesh under test: a redis-server of its own (a free 127.0.0.1 port, data
// directory in a temp dir, no persistence, a password as the chart sets one),
// taskmesh's task_service, and workers started and stopped by the scenarios.
// Binaries come from $TASKMESH_BIN_DIR (a bazel-bin); its absence is a test
// failure, not a skip.
//
// taskmesh is driven over its gRPC API, TaskService, with messages built at
// run time from the descriptors task_service serves by gRPC server reflection
// (dynamicpb): no generated code to keep in step with protos/, and every RPC
// the scenarios need (CreateTask with a priority, CancelTask, DeleteTask,
// PurgeQueue, GetTask) is reachable; taskctl has no priority, delete or purge.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

const redisPassword = "kedatest-pw"

// binDir is $TASKMESH_BIN_DIR with the three binaries checked.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TASKMESH_BIN_DIR")
	if dir == "" {
		t.Fatal("TASKMESH_BIN_DIR is not set: point it at a bazel-bin holding task_service/task_service, " +
			"workers/worker (bazel build //task_service:task_service //workers:worker), e.g. tests/keda/run.sh bazel-bin")
	}
	for _, b := range []string{"task_service/task_service", "workers/worker"} {
		if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
			t.Fatalf("TASKMESH_BIN_DIR=%s: no %s (%v)", dir, b, err)
		}
	}
	return dir
}

// freePort returns a 127.0.0.1 TCP port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Proc is a child process with its output in a log file.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

func startProc(t *testing.T, dir, name string, argv ...string) *Proc {
	t.Helper()
	p := &Proc{Name: name, Log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd = exec.Command(argv[0], argv[1:]...)
	p.Cmd.Stdout, p.Cmd.Stderr = f, f
	if err := p.Cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.Cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.Cmd.Process.Kill() // this process only, by its pid
			<-p.done
		}
		if t.Failed() {
			t.Logf("---- %s log (tail) ----\n%s", name, p.Tail(40))
		}
	})
	return p
}

func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to exit; it returns its exit error.
func (p *Proc) Wait(d time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Mesh is redis-server + task_service, and a gRPC client of the latter.
type Mesh struct {
	t         *testing.T
	dir, bins string
	RedisAddr string
	RedisURL  string
	Redis     redis.UniversalClient // for diagnostics (raw XINFO GROUPS), never for driving taskmesh
	conn      *grpc.ClientConn
	files     *protoregistryFiles
	workers   int
}

func startMesh(t *testing.T) *Mesh {
	t.Helper()
	m := &Mesh{t: t, dir: t.TempDir(), bins: binDir(t)}
	redisBin := os.Getenv("REDIS_SERVER")
	if redisBin == "" {
		redisBin = "redis-server"
	}
	redisBin, err := exec.LookPath(redisBin)
	if err != nil {
		t.Fatalf("redis-server not found (apt-get install redis-server, or set REDIS_SERVER): %v", err)
	}
	// A port can be taken between picking and binding: a few tries.
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		data := filepath.Join(m.dir, fmt.Sprintf("redis-%d", port))
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, m.dir, fmt.Sprintf("redis-%d", port), redisBin,
			"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", data,
			"--save", "", "--appendonly", "no", "--requirepass", redisPassword, "--daemonize", "no")
		m.RedisAddr = fmt.Sprintf("127.0.0.1:%d", port)
		m.Redis = redis.NewClient(&redis.Options{Addr: m.RedisAddr, Password: redisPassword})
		ok := waitFor(10*time.Second, func() bool {
			return p.Exited() || m.Redis.Ping(context.Background()).Err() == nil
		})
		if ok && !p.Exited() {
			break
		}
		if attempt == 4 {
			t.Fatalf("redis-server did not start:\n%s", p.Tail(20))
		}
	}
	t.Cleanup(func() { m.Redis.Close() })
	m.RedisURL = fmt.Sprintf("redis://:%s@%s", redisPassword, m.RedisAddr)
	m.startTaskService(t)
	return m
}

// startTaskService starts task_service on m.RedisURL and waits until it
// answers over gRPC with a read that reached Redis.
func (m *Mesh) startTaskService(t *testing.T) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		svc := startProc(t, m.dir, fmt.Sprintf("task_service-%d", port),
			filepath.Join(m.bins, "task_service/task_service"),
			"--listen="+addr, "--redis="+m.RedisURL, "--metrics_listen=")
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		m.conn = conn
		// Ready once a read reaches Redis (NOT_FOUND), as tests/support/mesh.cc waits.
		ready := waitFor(15*time.Second, func() bool {
			if svc.Exited() {
				return true
			}
			if m.files == nil {
				if f, err := m.loadDescriptors(); err == nil {
					m.files = f
				} else {
					return false
				}
			}
			_, err := m.Call("GetTask", `{"name":"queues/probe/tasks/probe"}`)
			return status.Code(err) == codes.NotFound
		})
		if ready && !svc.Exited() {
			break
		}
		conn.Close()
		if attempt == 4 {
			t.Fatalf("task_service did not become ready:\n%s", svc.Tail(20))
		}
	}
	t.Cleanup(func() { m.conn.Close() })
}

// protoregistryFiles wraps the descriptors read by reflection.
type protoregistryFiles struct {
	service protoreflect.ServiceDescriptor
}

// loadDescriptors asks task_service (gRPC reflection, v1alpha: what gRPC C++
// 1.51 serves) for the file of taskmesh.v1.TaskService and its dependencies.
func (m *Mesh) loadDescriptors() (*protoregistryFiles, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(m.conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.CloseSend()
	byName := map[string]*descriptorpb.FileDescriptorProto{}
	var ask func(req *rpb.ServerReflectionRequest) error
	ask = func(req *rpb.ServerReflectionRequest) error {
		if err := stream.Send(req); err != nil {
			return err
		}
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if e := resp.GetErrorResponse(); e != nil {
			return fmt.Errorf("reflection: %s", e.GetErrorMessage())
		}
		var missing []string
		for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(raw, fd); err != nil {
				return err
			}
			byName[fd.GetName()] = fd
		}
		for _, fd := range byName {
			for _, dep := range fd.GetDependency() {
				if _, ok := byName[dep]; !ok {
					missing = append(missing, dep)
				}
			}
		}
		for _, dep := range missing {
			if _, ok := byName[dep]; ok {
				continue
			}
			if err := ask(&rpb.ServerReflectionRequest{
				MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep}}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "taskmesh.v1.TaskService"}}); err != nil {
		return nil, err
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range byName {
		set.File = append(set.File, fd)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, err
	}
	d, err := files.FindDescriptorByName("taskmesh.v1.TaskService")
	if err != nil {
		return nil, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, errors.New("taskmesh.v1.TaskService is not a service")
	}
	return &protoregistryFiles{service: sd}, nil
}

// Call runs TaskService.method with a request given as proto JSON and
// returns the response as proto JSON.
func (m *Mesh) Call(method, requestJSON string) (string, error) {
	md := m.files.service.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return "", fmt.Errorf("TaskService has no method %s", method)
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal([]byte(requestJSON), req); err != nil {
		return "", fmt.Errorf("%s request %s: %w", method, requestJSON, err)
	}
	resp := dynamicpb.NewMessage(md.Output())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	full := fmt.Sprintf("/%s/%s", m.files.service.FullName(), md.Name())
	if err := m.conn.Invoke(ctx, full, req, resp); err != nil {
		return "", err
	}
	out, err := protojson.Marshal(resp)
	return string(out), err
}

// Task is the part of taskmesh.v1.Task the scenarios read.
type Task struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Priority string `json:"priority"`
	Attempt  int    `json:"attempt"`
}

func (m *Mesh) callTask(method, requestJSON string) Task {
	m.t.Helper()
	out, err := m.Call(method, requestJSON)
	if err != nil {
		m.t.Fatalf("%s %s: %v", method, requestJSON, err)
	}
	var task Task
	if err := json.Unmarshal([]byte(out), &task); err != nil {
		m.t.Fatalf("%s: %v in %s", method, err, out)
	}
	return task
}

// Create creates a task on `queue`; priority "" is DEFAULT.
func (m *Mesh) Create(queue, typ, payloadJSON, priority string) Task {
	m.t.Helper()
	task := fmt.Sprintf(`{"type":%q`, typ)
	if payloadJSON != "" {
		task += `,"payload":` + payloadJSON
	}
	if priority != "" {
		task += fmt.Sprintf(`,"priority":%q`, priority)
	}
	task += "}"
	return m.callTask("CreateTask", fmt.Sprintf(`{"parent":"queues/%s","task":%s}`, queue, task))
}

func (m *Mesh) Get(name string) Task {
	m.t.Helper()
	return m.callTask("GetTask", fmt.Sprintf(`{"name":%q}`, name))
}

func (m *Mesh) Cancel(name string) Task {
	m.t.Helper()
	return m.callTask("CancelTask", fmt.Sprintf(`{"name":%q}`, name))
}

func (m *Mesh) Delete(name string) {
	m.t.Helper()
	if _, err := m.Call("DeleteTask", fmt.Sprintf(`{"name":%q}`, name)); err != nil {
		m.t.Fatalf("DeleteTask %s: %v", name, err)
	}
}

// Purge deletes every task of the queue, waiting ones included.
func (m *Mesh) Purge(queue string) string {
	m.t.Helper()
	out, err := m.Call("PurgeQueue", fmt.Sprintf(`{"name":"queues/%s","includePending":true}`, queue))
	if err != nil {
		m.t.Fatalf("PurgeQueue %s: %v", queue, err)
	}
	return out
}

// WaitState waits (bounded) until every task is in `state`; it reports the
// ones that are not.
func (m *Mesh) WaitState(names []string, state string, d time.Duration) []Task {
	m.t.Helper()
	var last []Task
	waitFor(d, func() bool {
		last = last[:0]
		all := true
		for _, n := range names {
			task := m.Get(n)
			last = append(last, task)
			all = all && task.State == state
		}
		return all
	})
	return last
}

// StartWorker starts a worker on `queue`, named `consumer`.
func (m *Mesh) StartWorker(t *testing.T, queue, consumer string, concurrency int, extra ...string) *Proc {
	t.Helper()
	m.workers++
	argv := []string{filepath.Join(m.bins, "workers/worker"), "--redis=" + m.RedisURL,
		"--queues=" + queue, "--consumer=" + consumer, fmt.Sprintf("--concurrency=%d", concurrency),
		"--health_listen=127.0.0.1:0", "--metrics_listen=", "--periodic_config="}
	return startProc(t, m.dir, fmt.Sprintf("worker-%s-%d", consumer, m.workers), append(argv, extra...)...)
}

// Terminate sends SIGTERM (the kubelet's signal on scale-down) to one worker.
func (p *Proc) Terminate() error { return p.Cmd.Process.Signal(syscall.SIGTERM) }

// RawLag is the group's lag as Redis reports it ("nil" when Redis cannot
// tell), for the log only.
func (m *Mesh) RawLag(stream string) string {
	res, err := m.Redis.Do(context.Background(), "XINFO", "GROUPS", stream).Slice()
	if err != nil {
		return "ERR " + err.Error()
	}
	for _, g := range res {
		kv, ok := g.(map[interface{}]interface{})
		if ok {
			if kv["name"] == "workers" {
				if kv["lag"] == nil {
					return "nil"
				}
				return fmt.Sprint(kv["lag"])
			}
			continue
		}
		if list, ok := g.([]interface{}); ok {
			for i := 0; i+1 < len(list); i += 2 {
				if list[i] == "lag" {
					if list[i+1] == nil {
						return "nil"
					}
					return fmt.Sprint(list[i+1])
				}
			}
		}
	}
	return "no group"
}

// waitFor polls `cond` every 100 ms for at most d; it reports whether cond held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}
