package main

// Fidelity tests: the renderer must behave like Helm where the chart relies
// on it, and fail where Helm fails.

import (
	"io/ioutil"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeChart(t *testing.T, values string, templates map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
	must(ioutil.WriteFile(filepath.Join(dir, "Chart.yaml"),
		[]byte("apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\nkubeVersion: \">=1.25.0-0\"\n"), 0o644))
	must(ioutil.WriteFile(filepath.Join(dir, "values.yaml"), []byte(values), 0o644))
	for name, text := range templates {
		must(os.MkdirAll(filepath.Dir(filepath.Join(dir, "templates", name)), 0o755))
		must(ioutil.WriteFile(filepath.Join(dir, "templates", name), []byte(text), 0o644))
	}
	return dir
}

func renderOK(t *testing.T, dir string, files []string, sets ...string) (string, string) {
	t.Helper()
	m, n, err := render(dir, files, sets, "rel", "ns", "1.29.0", "", true, false)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return m, n
}

func TestNumbersAreFloat64LikeHelm(t *testing.T) {
	// Helm loads values through JSON: 1000000 prints as 1e+06 unless int'ed.
	dir := writeChart(t, "big: 1000000\nsmall: 8\n", map[string]string{
		"a.yaml": "a: {{ .Values.big }}\nb: {{ int .Values.big }}\nc: {{ .Values.small | quote }}\n"})
	m, _ := renderOK(t, dir, nil)
	for _, want := range []string{"a: 1e+06", "b: 1000000", `c: "8"`} {
		if !strings.Contains(m, want) {
			t.Errorf("want %q in\n%s", want, m)
		}
	}
}

func TestValuesMergeAndNullDeletes(t *testing.T) {
	dir := writeChart(t, "a: {x: 1, y: 2}\nlist: [1, 2]\n", map[string]string{
		"a.yaml": "x: {{ .Values.a.x }}\ny: {{ hasKey .Values.a \"y\" }}\nz: {{ .Values.a.z }}\nlist: {{ len .Values.list }}\n"})
	over := filepath.Join(t.TempDir(), "o.yaml")
	if err := ioutil.WriteFile(over, []byte("a: {x: 5, y: null, z: 7}\nlist: [9]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := renderOK(t, dir, []string{over})
	for _, want := range []string{"x: 5", "y: false", "z: 7", "list: 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("want %q in\n%s", want, m)
		}
	}
}

func TestToYamlSortsKeysAndIncludeTplRequired(t *testing.T) {
	dir := writeChart(t, "m: {b: 1, a: \"x\"}\nt: \"{{ .Release.Name }}-suffix\"\n", map[string]string{
		"_h.tpl": `{{- define "demo.name" -}}{{ .Chart.Name }}-{{ .Release.Namespace }}{{- end -}}`,
		"a.yaml": "m:\n  {{- toYaml .Values.m | nindent 2 }}\nn: {{ include \"demo.name\" . }}\nt: {{ tpl .Values.t . }}\nv: {{ .Chart.AppVersion }}\nk: {{ .Capabilities.KubeVersion.Minor }}\n"})
	m, _ := renderOK(t, dir, nil)
	for _, want := range []string{"m:\n  a: x\n  b: 1", "n: demo-ns", "t: rel-suffix", "v: 4.5", "k: 29"} {
		if !strings.Contains(m, want) {
			t.Errorf("want %q in\n%s", want, m)
		}
	}
}

func TestFailures(t *testing.T) {
	cases := map[string]struct {
		tmpl, kube, want string
	}{
		"required":       {`x: {{ required "x is required" .Values.nope }}`, "1.29.0", "x is required"},
		"fail":           {`{{ fail "bad values" }}`, "1.29.0", "bad values"},
		"strict missing": {`x: {{ .Values.nope }}`, "1.29.0", "<no value>"},
		"kubeVersion":    {`x: 1`, "1.24.3", "kubeVersion"},
		"parse error":    {`{{ if }}`, "1.29.0", "parse"},
		"no env func":    {`x: {{ env "HOME" }}`, "1.29.0", "env"},
	}
	for name, c := range cases {
		dir := writeChart(t, "a: 1\n", map[string]string{"a.yaml": c.tmpl})
		_, _, err := render(dir, nil, nil, "rel", "ns", c.kube, "", true, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error with %q, got %v", name, c.want, err)
		}
	}
}

func TestSplitsDocumentsAndSkipsPartialsAndNotes(t *testing.T) {
	dir := writeChart(t, "enabled: true\n", map[string]string{
		"_h.tpl":       `{{- define "x" -}}y{{- end -}}`,
		"a.yaml":       "a: 1\n---\n\n---\nb: 2\n",
		"NOTES.txt":    "hello {{ .Release.Name }}",
		"tests/t.yaml": "{{- if .Values.enabled }}\nt: 1\n{{- end }}\n",
	})
	m, n := renderOK(t, dir, nil, "extra=3")
	if strings.Count(m, "# Source: ") != 3 || !strings.Contains(m, "# Source: demo/templates/tests/t.yaml") {
		t.Errorf("want 3 documents incl. tests/t.yaml, got\n%s", m)
	}
	if n != "hello rel" {
		t.Errorf("NOTES: got %q", n)
	}
}

func TestToJsonLikeHelm(t *testing.T) {
	// Values numbers are float64 but print as JSON integers; keys are sorted;
	// toPrettyJson indents by two spaces (Helm's json.MarshalIndent).
	dir := writeChart(t, "p: {name: x, count: 3, big: 1000000, list: [a, {z: 1, b: true}]}\n", map[string]string{
		"a.yaml": "j: {{ toJson .Values.p }}\npretty: |-\n  {{- toPrettyJson (dict \"p\" .Values.p) | nindent 2 }}\n"})
	m, _ := renderOK(t, dir, nil)
	for _, want := range []string{
		`j: {"big":1000000,"count":3,"list":["a",{"b":true,"z":1}],"name":"x"}`,
		"pretty: |-\n  {\n    \"p\": {\n      \"big\": 1000000,\n      \"count\": 3,\n      \"list\": [\n        \"a\",",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("want %q in\n%s", want, m)
		}
	}
}
