package keda

// The ScaledObjects the Helm chart renders, read from the chart itself: the
// test renders deploy/helm/taskmesh with testdata/values-keda.yaml through
// Helm's own engine (deploy/helm/validate/helmcheck, helm.sh/helm/v4 as a
// library, built as deploy/helm/validate/run.sh builds it), so the trigger
// metadata handed to KEDA's scalers below is what `helm template` gives
// KEDA's operator.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// Trigger is one entry of a ScaledObject's spec.triggers.
type Trigger struct {
	Type              string            `json:"type"`
	Metadata          map[string]string `json:"metadata"`
	AuthenticationRef *struct {
		Name string `json:"name"`
	} `json:"authenticationRef"`
}

// ScaledObject holds the fields of a rendered keda.sh/v1alpha1 ScaledObject
// that decide the replica count.
type ScaledObject struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		PollingInterval int `json:"pollingInterval"`
		CooldownPeriod  int `json:"cooldownPeriod"`
		MinReplicaCount int `json:"minReplicaCount"`
		MaxReplicaCount int `json:"maxReplicaCount"`
		Fallback        *struct {
			FailureThreshold int `json:"failureThreshold"`
			Replicas         int `json:"replicas"`
		} `json:"fallback"`
		Triggers []Trigger `json:"triggers"`
	} `json:"spec"`
}

// repoRoot is the checkout this module lives in (tests/keda/../..).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Clean(filepath.Join(wd, "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "deploy", "helm", "taskmesh", "Chart.yaml")); err != nil {
		t.Fatalf("the chart is not at %s/deploy/helm/taskmesh: %v", root, err)
	}
	return root
}

// renderScaledObjects renders the chart with testdata/values-keda.yaml and
// returns its ScaledObjects by pool name (label taskmesh.io/pool).
func renderScaledObjects(t *testing.T) map[string]ScaledObject {
	t.Helper()
	return renderScaledObjectsFrom(t, "values-keda.yaml")
}

// renderScaledObjectsFrom renders the chart with testdata/<values> and
// returns its ScaledObjects by pool name.
func renderScaledObjectsFrom(t *testing.T, values string) map[string]ScaledObject {
	t.Helper()
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "helmcheck")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(root, "deploy", "helm", "validate", "helmcheck")
	// As deploy/helm/validate/run.sh builds it: its own go.mod/go.sum, the
	// modules from Go's module cache.
	build.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building deploy/helm/validate/helmcheck: %v\n%s", err, out)
	}
	render := exec.Command(bin, "template", "-chart", filepath.Join(root, "deploy", "helm", "taskmesh"),
		"-f", filepath.Join(root, "tests", "keda", "testdata", values),
		"-name", "kedatest", "-namespace", "kedatest")
	var stderr strings.Builder
	render.Stderr = &stderr
	out, err := render.Output()
	if err != nil {
		t.Fatalf("rendering the chart: %v\n%s", err, stderr.String())
	}
	result := map[string]ScaledObject{}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		if !strings.Contains(doc, "kind: ScaledObject") {
			continue
		}
		var so ScaledObject
		if err := yaml.Unmarshal([]byte(doc), &so); err != nil {
			t.Fatalf("parsing a rendered ScaledObject: %v\n%s", err, doc)
		}
		if so.Kind != "ScaledObject" {
			continue
		}
		pool := so.Metadata.Labels["taskmesh.io/pool"]
		if pool == "" {
			t.Fatalf("ScaledObject %s has no taskmesh.io/pool label", so.Metadata.Name)
		}
		result[pool] = so
	}
	if len(result) == 0 {
		t.Fatalf("the chart rendered no ScaledObject (keda.enabled?)")
	}
	return result
}

// checkTriggersShape fails unless the pool's triggers are the ones this test
// was written for: per queue, per stream (DEFAULT, :high, :low), a lag
// trigger (lagCount, activationLagCount "0") and a pending-entries trigger,
// all redis-streams on consumer group "workers". A chart change that drops
// one of them must be looked at here, not silently tested around.
func checkTriggersShape(t *testing.T, pool string, so ScaledObject, queues []string) {
	t.Helper()
	checkTriggersShapeOf(t, pool, so, queues, "redis-streams")
}

// checkTriggersShapeOf is checkTriggersShape for triggers of type wantType
// (redis-cluster-streams for an external Redis Cluster).
func checkTriggersShapeOf(t *testing.T, pool string, so ScaledObject, queues []string, wantType string) {
	t.Helper()
	type key struct{ stream, kind string }
	seen := map[key]bool{}
	for _, tr := range so.Spec.Triggers {
		m := tr.Metadata
		if tr.Type != wantType {
			t.Errorf("pool %s: trigger type %q, want %s", pool, tr.Type, wantType)
		}
		if m["consumerGroup"] != "workers" {
			t.Errorf("pool %s: consumerGroup %q, want workers (broker/keys.h kConsumerGroup)", pool, m["consumerGroup"])
		}
		kind := "pending"
		if _, ok := m["lagCount"]; ok {
			kind = "lag"
			if m["activationLagCount"] != "0" {
				t.Errorf("pool %s: activationLagCount %q, want \"0\"", pool, m["activationLagCount"])
			}
		} else if _, ok := m["pendingEntriesCount"]; !ok {
			t.Errorf("pool %s: trigger on %s has neither lagCount nor pendingEntriesCount", pool, m["stream"])
		}
		seen[key{m["stream"], kind}] = true
	}
	for _, q := range queues {
		for _, s := range []string{"stream", "stream:high", "stream:low"} {
			for _, kind := range []string{"lag", "pending"} {
				name := fmt.Sprintf("taskmesh:{%s}:%s", q, s)
				if !seen[key{name, kind}] {
					t.Errorf("pool %s: no %s trigger on %s", pool, kind, name)
				}
			}
		}
	}
	if len(so.Spec.Triggers) != 6*len(queues) {
		t.Errorf("pool %s: %d triggers, want %d", pool, len(so.Spec.Triggers), 6*len(queues))
	}
}
