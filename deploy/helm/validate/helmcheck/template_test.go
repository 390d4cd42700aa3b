package main

// Template and Lint drive Helm's library as `helm template` and
// `helm lint --strict` do; these tests pin the behaviour run.sh relies on.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeChart(t *testing.T, values string, templates map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("Chart.yaml", "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\nkubeVersion: \">=1.25.0-0\"\n")
	write("values.yaml", values)
	for name, text := range templates {
		write(filepath.Join("templates", name), text)
	}
	return dir
}

// kube is the cluster version the tests render for: Helm's default, its
// client-go's version, is a fixed v1.20 in test binaries.
const kube = "v1.37.2"

func render(t *testing.T, dir string, v Values) Rendered {
	t.Helper()
	r, err := Template(TemplateOptions{Chart: dir, Values: v, Name: "rel", Namespace: "ns", KubeVersion: kube})
	if err != nil {
		t.Fatalf("Template: %v", err)
	}
	return r
}

func TestTemplateMergesValuesLikeHelm(t *testing.T) {
	dir := writeChart(t, "a: {x: 1, y: 2}\nbig: 1000000\n", map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata:\n" +
			"  x: {{ .Values.a.x | quote }}\n  y: {{ hasKey .Values.a \"y\" | quote }}\n" +
			"  big: {{ .Values.big | quote }}\n  list: {{ .Values.pools | toJson | quote }}\n"})
	over := filepath.Join(t.TempDir(), "over.yaml")
	if err := os.WriteFile(over, []byte("a: {x: 5, y: null}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := render(t, dir, Values{Files: []string{over},
		SetYAML: []string{"pools=[{name: a, queues: [default]}]"}})
	for _, want := range []string{"# Source: demo/templates/cm.yaml", `x: "5"`, `y: "false"`, `big: "1e+06"`,
		`list: "[{\"name\":\"a\",\"queues\":[\"default\"]}]"`} {
		if !strings.Contains(r.Manifest, want) {
			t.Errorf("want %q in\n%s", want, r.Manifest)
		}
	}
}

func TestTemplateIncludesHooksAndNotes(t *testing.T) {
	dir := writeChart(t, "", map[string]string{
		"NOTES.txt": "release {{ .Release.Name }} in {{ .Release.Namespace }}\n",
		"tests/t.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations: {helm.sh/hook: test}\n" +
			"spec: {containers: [{name: c, image: busybox}]}\n"})
	r := render(t, dir, Values{})
	if !strings.Contains(r.Manifest, "# Source: demo/templates/tests/t.yaml") {
		t.Errorf("the test hook is not in the manifest:\n%s", r.Manifest)
	}
	if len(r.TestHooks) != 1 || r.TestHooks[0] != "Pod/t" {
		t.Errorf("TestHooks = %v, want [Pod/t]", r.TestHooks)
	}
	if strings.TrimSpace(r.Notes) != "release rel in ns" {
		t.Errorf("Notes = %q", r.Notes)
	}
}

func TestTemplateRefuses(t *testing.T) {
	dir := writeChart(t, "mode: a\n", map[string]string{
		"x.yaml": "{{ if ne .Values.mode \"a\" }}{{ fail \"mode must be a\" }}{{ end }}\n"})
	if _, err := Template(TemplateOptions{Chart: dir, Name: "rel", Namespace: "ns", KubeVersion: kube,
		Values: Values{SetYAML: []string{"mode=b"}}}); err == nil || !strings.Contains(err.Error(), "mode must be a") {
		t.Errorf("fail: err = %v", err)
	}
	_, err := Template(TemplateOptions{Chart: dir, Name: "rel", Namespace: "ns", KubeVersion: "1.23.0"})
	if err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("kubeVersion constraint: err = %v", err)
	}
	if _, err := (Values{SetYAML: []string{"novalue"}}).Merge(); err == nil {
		t.Error("-set-yaml without = was accepted")
	}
}

func TestLintStrictFailsOnAWarning(t *testing.T) {
	good := writeChart(t, "", map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n"})
	r, err := Lint(good, "ns", Values{}, "")
	if err != nil || r.Failed {
		t.Fatalf("a clean chart: %v %+v", err, r)
	}
	if !strings.Contains(strings.Join(r.Messages, "\n"), "[INFO] Chart.yaml: icon is recommended") {
		t.Errorf("INFO lines are reported: %v", r.Messages)
	}
	// A name Kubernetes refuses is a WARNING in helm lint; --strict fails it.
	bad := writeChart(t, "", map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_A_Name}\n"})
	r, err = Lint(bad, "ns", Values{}, "")
	if err != nil || !r.Failed || !strings.Contains(strings.Join(r.Messages, "\n"), "[WARNING]") {
		t.Errorf("a warning must fail: %v %+v", err, r)
	}
}

// The chart's `helm test` hook is one Pod that Helm itself classifies as a
// test hook (what `helm test` runs), with its default values.
func TestChartHasOneHelmTestPod(t *testing.T) {
	r, err := Template(TemplateOptions{Chart: filepath.Join("..", "..", "taskmesh"), Name: "taskmesh",
		Namespace: "taskmesh", KubeVersion: kube, APIVersions: []string{"keda.sh/v1alpha1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.TestHooks) != 1 || !strings.HasPrefix(r.TestHooks[0], "Pod/") {
		t.Errorf("test hooks = %v, want one Pod", r.TestHooks)
	}
}
