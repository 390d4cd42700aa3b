package main

// Validation against the vendored schemas (../schemas): what is valid
// passes, and each kind of mistake the API server would refuse is refused.

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func schemas(t *testing.T) *Schemas {
	t.Helper()
	s, err := LoadSchemas("../schemas")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validateYAML(t *testing.T, s *Schemas, doc string) (bool, []string) {
	t.Helper()
	obj, err := decodeYAML([]byte(doc))
	if err != nil {
		t.Fatalf("decodeYAML: %v", err)
	}
	return s.Validate(obj)
}

const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, labels: {app: d}}
spec:
  replicas: 2
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers:
      - name: c
        image: busybox
        ports: [{name: grpc, containerPort: 50051}]
        resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 1}}
        readinessProbe: {grpc: {port: 50051}}
        livenessProbe: {httpGet: {path: /healthz, port: grpc}}
`

func TestValidObjectPasses(t *testing.T) {
	s := schemas(t)
	if known, problems := validateYAML(t, s, deployment); !known || len(problems) > 0 {
		t.Errorf("known=%v problems=%v", known, problems)
	}
	if got := strings.Join(s.Releases(), ","); got != "v1.25.16,v1.37.2" {
		t.Errorf("releases = %s (oldest first)", got)
	}
}

func TestInvalidObjectsAreRefused(t *testing.T) {
	s := schemas(t)
	for _, c := range []struct{ name, from, to, want string }{
		{"unknown field", "name: grpc, containerPort", "name: grpc, containerPorts: 1, containerPort",
			`spec.template.spec.containers[0].ports[0]: unknown field "containerPorts" (Kubernetes v1.25.16, v1.37.2)`},
		{"required field", "  selector: {matchLabels: {app: d}}\n", "",
			`spec: required field "selector" is missing`},
		{"type", "replicas: 2", "replicas: \"2\"", "spec.replicas: expected integer, got string"},
		{"not a whole number", "replicas: 2", "replicas: 2.5", "spec.replicas: expected integer, got number"},
		{"int32 range", "containerPort: 50051", "containerPort: 3000000000", "does not fit in int32"},
		{"quantity", "cpu: 100m", "cpu: 1 core", `"1 core" is not a quantity`},
		{"int-or-string", "port: grpc}", "port: true}", "port: expected integer or string, got boolean"},
		{"label value", "labels: {app: d}}\nspec:", "labels: {app: 7}}\nspec:", "metadata.labels.app: expected string, got number"},
	} {
		doc := strings.Replace(deployment, c.from, c.to, 1)
		if doc == deployment {
			t.Fatalf("%s: %q not in the object", c.name, c.from)
		}
		_, problems := validateYAML(t, s, doc)
		if !strings.Contains(strings.Join(problems, "\n"), c.want) {
			t.Errorf("%s: want %q in %v", c.name, c.want, problems)
		}
	}
}

func TestReleasesAreCheckedEach(t *testing.T) {
	// trafficDistribution came after 1.25: valid in 1.37 only.
	_, problems := validateYAML(t, schemas(t), "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"+
		"spec: {ports: [{port: 80}], trafficDistribution: PreferClose}\n")
	if len(problems) != 1 || problems[0] != `spec: unknown field "trafficDistribution" (Kubernetes v1.25.16)` {
		t.Errorf("problems = %v", problems)
	}
}

func TestUnknownKinds(t *testing.T) {
	s := schemas(t)
	for _, av := range []string{"policy/v1beta1", "example.com/v1"} {
		known, problems := validateYAML(t, s, "apiVersion: "+av+"\nkind: PodDisruptionBudget\nmetadata: {name: p}\n")
		if known || len(problems) != 1 || !strings.Contains(problems[0], "no schema for apiVersion/kind") {
			t.Errorf("%s: known=%v problems=%v", av, known, problems)
		}
	}
}

func TestCustomResources(t *testing.T) {
	s := schemas(t)
	so := "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: so, labels: {a: b}}\n" +
		"spec:\n  scaleTargetRef: {name: d}\n  minReplicaCount: 0\n" +
		"  triggers: [{type: redis-streams, metadata: {lagCount: \"5\"}, authenticationRef: {name: auth}}]\n"
	if known, problems := validateYAML(t, s, so); !known || len(problems) > 0 {
		t.Fatalf("valid ScaledObject: known=%v problems=%v", known, problems)
	}
	for _, c := range []struct{ from, to, want string }{
		{"minReplicaCount: 0", "minReplicas: 0", `spec: unknown field "minReplicas" (CRD keda.sh_scaledobjects.yaml)`},
		{`lagCount: "5"`, "lagCount: 5", "spec.triggers[0].metadata.lagCount: expected string, got number"},
		{"labels: {a: b}", "labels: {a: 1}", "metadata.labels.a: expected string, got number"},
		{"labels: {a: b}", "labelz: {a: b}", `metadata: unknown field "labelz"`},
		{"  scaleTargetRef: {name: d}\n", "", `spec: required field "scaleTargetRef" is missing`},
	} {
		_, problems := validateYAML(t, s, strings.Replace(so, c.from, c.to, 1))
		if !strings.Contains(strings.Join(problems, "\n"), c.want) {
			t.Errorf("want %q in %v", c.want, problems)
		}
	}
	sm := "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: m}\n" +
		"spec: {selector: {matchLabels: {a: b}}, endpoints: [{port: metrics, interval: 30s, scrape: x}]}\n"
	if _, problems := validateYAML(t, s, sm); len(problems) != 1 ||
		!strings.Contains(problems[0], `spec.endpoints[0]: unknown field "scrape" (CRD monitoring.coreos.com_servicemonitors.yaml)`) {
		t.Errorf("ServiceMonitor: %v", problems)
	}
}

func TestSecretDataMustBeBase64(t *testing.T) {
	_, problems := validateYAML(t, schemas(t), "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: \"not base64!\"}\n")
	if !strings.Contains(strings.Join(problems, "\n"), "data.k: not base64") {
		t.Errorf("problems = %v", problems)
	}
}

func TestDuplicateKeysAreRefused(t *testing.T) {
	if _, err := decodeYAML([]byte("a: 1\na: 2\n")); err == nil {
		t.Error("a duplicate key was accepted")
	}
}

func TestSchemaCommand(t *testing.T) {
	var out bytes.Buffer
	in := `[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"k":1}},` +
		`{"apiVersion":"x/v1","kind":"Y"}]`
	if _, err := cmdSchema([]string{"-json", "-schemas", "../schemas"}, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	var res []schemaResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !res[0].Known || len(res[0].Problems) != 1 || res[1].Known {
		t.Errorf("results = %+v", res)
	}

	out.Reset()
	stream := "---\n# Source: c.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n# only a comment\n"
	code, err := cmdSchema([]string{"-schemas", "../schemas"}, strings.NewReader(stream), &out)
	if err != nil || code != 0 || !strings.Contains(out.String(), "schema: 1 objects, 0 invalid") {
		t.Errorf("code=%d err=%v out=%s", code, err, out.String())
	}
}
