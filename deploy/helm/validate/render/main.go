// render renders a Helm chart the way `helm template` does, without Helm.
//
// No Helm binary can be installed on the build machines, so the chart is
// rendered with the same engine Helm uses: Go's text/template, the sprig
// function library, and re-implementations of the Helm built-ins the chart
// uses (include, tpl, required, toYaml, fromYaml, toJson, toPrettyJson, fromJson, lookup,
// .Release, .Chart, .Values, .Capabilities, .Template). Values files are
// loaded and merged with Helm's semantics: numbers become float64 (as in
// Helm), later files win, maps merge deeply and a null deletes a default.
//
// It builds offline against Debian's Go packages:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o render .
//
// Example:
//
//	render -chart deploy/helm/taskmesh -f values-production.yaml \
//	    -name prod -namespace taskmesh -notes /tmp/NOTES.txt > /tmp/manifest.yaml
//
// Output: a YAML stream, each document preceded by `# Source: <template>`,
// like `helm template`. With -strict a "<no value>" in the output (a template
// printing a value that does not exist) is an error instead of being blanked.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

// ChartMeta mirrors the fields of Helm's chart.Metadata that templates read
// as .Chart.Name, .Chart.Version, .Chart.AppVersion, ...
type ChartMeta struct {
	Name         string
	Version      string
	AppVersion   string
	Description  string
	Type         string
	APIVersion   string
	KubeVersion  string
	Home         string
	Icon         string
	Keywords     []string
	Sources      []string
	Annotations  map[string]string
	Deprecated   bool
	Maintainers  []map[string]interface{}
	Dependencies []map[string]interface{}
}

// Release mirrors Helm's .Release.
type Release struct {
	Name      string
	Namespace string
	Service   string
	Revision  int
	IsInstall bool
	IsUpgrade bool
}

// KubeVersion mirrors .Capabilities.KubeVersion.
type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// VersionSet mirrors .Capabilities.APIVersions (with its Has method).
type VersionSet []string

// Has reports whether "group/version" or "group/version/Kind" is available.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// Capabilities mirrors Helm's .Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// The API versions every cluster of the supported range serves (what Helm
// reports for `helm template` without a cluster, plus the versions used here).
var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1",
	"storage.k8s.io/v1", "apiextensions.k8s.io/v1", "coordination.k8s.io/v1",
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var valueFiles, setValues stringList
	chartDir := flag.String("chart", "", "chart directory (with Chart.yaml)")
	flag.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flag.Var(&setValues, "set", "a.b.c=value (repeatable; value parsed as YAML; applied last)")
	name := flag.String("name", "release", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "1.29.0", "Kubernetes version for .Capabilities")
	apiVersions := flag.String("api-versions", "", "extra API versions, comma separated (e.g. keda.sh/v1alpha1)")
	notesOut := flag.String("notes", "", "write the rendered NOTES.txt here")
	strict := flag.Bool("strict", false, "fail when a template prints a missing value")
	isUpgrade := flag.Bool("upgrade", false, "render as an upgrade (.Release.IsUpgrade)")
	flag.Parse()
	if *chartDir == "" {
		die("-chart is required")
	}
	manifest, notes, err := render(*chartDir, valueFiles, setValues, *name, *namespace,
		*kubeVersion, *apiVersions, *strict, *isUpgrade)
	if err != nil {
		die(err.Error())
	}
	os.Stdout.WriteString(manifest)
	if *notesOut != "" {
		if err := ioutil.WriteFile(*notesOut, []byte(notes), 0o644); err != nil {
			die(err.Error())
		}
	}
}

func die(msg string) {
	fmt.Fprintf(os.Stderr, "render: ERROR: %s\n", msg)
	os.Exit(1)
}

// ---- values, with Helm's semantics ----

// loadYAMLMap parses YAML the way sigs.k8s.io/yaml (used by Helm) does:
// YAML -> JSON -> map[string]interface{}, so every number is a float64.
func loadYAMLMap(data []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	j, err := json.Marshal(jsonable(raw))
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("top level is not a map: %v", err)
	}
	return out, nil
}

// jsonable turns yaml.v2's map[interface{}]interface{} into JSON-able maps.
func jsonable(v interface{}) interface{} {
	switch x := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(x))
		for k, val := range x {
			m[fmt.Sprint(k)] = jsonable(val)
		}
		return m
	case []interface{}:
		out := make([]interface{}, len(x))
		for i, val := range x {
			out[i] = jsonable(val)
		}
		return out
	default:
		return v
	}
}

// coalesce merges src (lower priority) into dst (higher priority) like
// Helm's chartutil.CoalesceTables: maps merge deeply, a null in dst deletes
// the key, anything else in dst wins.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	if dst == nil {
		dst = map[string]interface{}{}
	}
	for k, sv := range src {
		dv, present := dst[k]
		if !present {
			dst[k] = sv
			continue
		}
		if dv == nil {
			delete(dst, k)
			continue
		}
		dm, dIsMap := dv.(map[string]interface{})
		sm, sIsMap := sv.(map[string]interface{})
		if dIsMap && sIsMap {
			dst[k] = coalesce(dm, sm)
		}
	}
	// Nulls given by the user for keys without defaults are dropped too.
	for k, v := range dst {
		if v == nil {
			delete(dst, k)
		}
	}
	return dst
}

func applySet(vals map[string]interface{}, expr string) error {
	eq := strings.Index(expr, "=")
	if eq <= 0 {
		return fmt.Errorf("-set %q: want path=value", expr)
	}
	path := strings.Split(expr[:eq], ".")
	parsed, err := loadYAMLMap([]byte("v: " + expr[eq+1:]))
	if err != nil {
		return fmt.Errorf("-set %q: %v", expr, err)
	}
	m := vals
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[p] = next
		}
		m = next
	}
	if parsed["v"] == nil {
		delete(m, path[len(path)-1])
	} else {
		m[path[len(path)-1]] = parsed["v"]
	}
	return nil
}

// ---- Helm's extra template functions ----

func toYAML(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yaml.Unmarshal(j, &obj); err != nil {
		return ""
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m, err := loadYAMLMap([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	m, err := loadYAMLMap([]byte("a:\n" + indent(s, "  ")))
	if err != nil {
		return []interface{}{err.Error()}
	}
	a, _ := m["a"].([]interface{})
	return a
}

func indent(s, pad string) string {
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

func toJSON(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(j)
}

// toPrettyJSON is Helm's toPrettyJson: two-space indentation, keys sorted.
func toPrettyJSON(v interface{}) string {
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(j)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func required(warn string, val interface{}) (interface{}, error) {
	if val == nil {
		return val, errors.New(warn)
	}
	if s, ok := val.(string); ok && s == "" {
		return val, errors.New(warn)
	}
	return val, nil
}

// lookup answers like `helm template` does: no cluster, so nothing exists.
func lookup(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
	return map[string]interface{}{}, nil
}

// ---- the engine ----

type engine struct {
	tmpl          *template.Template
	includeDepth  map[string]int
	missingValues []string
}

const noValue = "<no value>"

func (e *engine) funcs() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":           toYAML,
		"mustToYaml":       toYAML,
		"fromYaml":         fromYAML,
		"fromYamlArray":    fromYAMLArray,
		"toJson":           toJSON,
		"mustToJson":       toJSON,
		"toPrettyJson":     toPrettyJSON,
		"mustToPrettyJson": toPrettyJSON,
		"fromJson":         fromJSON,
		"required":         required,
		"lookup":           lookup,
		// include and tpl need the parsed template set; bound in render().
		"include": func(string, interface{}) (string, error) { return "", errors.New("unbound") },
		"tpl":     func(string, interface{}) (string, error) { return "", errors.New("unbound") },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func (e *engine) include(name string, data interface{}) (string, error) {
	if e.includeDepth[name] > 1000 {
		return "", fmt.Errorf("include %q: recursion too deep", name)
	}
	e.includeDepth[name]++
	defer func() { e.includeDepth[name]-- }()
	var buf bytes.Buffer
	if err := e.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func (e *engine) tpl(text string, data interface{}) (string, error) {
	t, err := e.tmpl.Clone()
	if err != nil {
		return "", err
	}
	t, err = t.New("tpl").Parse(text)
	if err != nil {
		return "", fmt.Errorf("tpl: %v", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("tpl: %v", err)
	}
	return e.scrub("tpl", buf.String()), nil
}

// scrub does what Helm does with "<no value>" (blanks it), remembering where
// it happened so that -strict can fail on it.
func (e *engine) scrub(where, s string) string {
	if strings.Contains(s, noValue) {
		for _, line := range strings.Split(s, "\n") {
			if strings.Contains(line, noValue) {
				e.missingValues = append(e.missingValues, fmt.Sprintf("%s: %s", where, strings.TrimSpace(line)))
			}
		}
		s = strings.ReplaceAll(s, noValue, "")
	}
	return s
}

var docSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

func render(chartDir string, valueFiles, setValues []string, name, namespace, kubeVersion,
	apiVersions string, strict, isUpgrade bool) (string, string, error) {
	chartYAML, err := ioutil.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", "", err
	}
	meta, err := loadChartMeta(chartYAML)
	if err != nil {
		return "", "", fmt.Errorf("Chart.yaml: %v", err)
	}

	defaults := map[string]interface{}{}
	if data, err := ioutil.ReadFile(filepath.Join(chartDir, "values.yaml")); err == nil {
		if defaults, err = loadYAMLMap(data); err != nil {
			return "", "", fmt.Errorf("values.yaml: %v", err)
		}
	}
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		data, err := ioutil.ReadFile(f)
		if err != nil {
			return "", "", err
		}
		m, err := loadYAMLMap(data)
		if err != nil {
			return "", "", fmt.Errorf("%s: %v", f, err)
		}
		user = coalesce(m, user)
	}
	for _, s := range setValues {
		if err := applySet(user, s); err != nil {
			return "", "", err
		}
	}
	values := coalesce(user, defaults)

	kv := strings.TrimPrefix(kubeVersion, "v")
	parts := strings.SplitN(kv, ".", 3)
	if len(parts) < 2 {
		return "", "", fmt.Errorf("bad -kube-version %q", kubeVersion)
	}
	if meta.KubeVersion != "" {
		if err := checkKubeVersion(meta.KubeVersion, kv); err != nil {
			return "", "", err
		}
	}
	apis := append(VersionSet{}, builtinAPIVersions...)
	for _, a := range strings.Split(apiVersions, ",") {
		if a = strings.TrimSpace(a); a != "" {
			apis = append(apis, a)
		}
	}
	caps := Capabilities{
		KubeVersion: KubeVersion{Version: "v" + kv, Major: parts[0], Minor: parts[1], GitVersion: "v" + kv},
		APIVersions: apis,
		HelmVersion: map[string]string{"Version": "v3.14.0"},
	}
	release := Release{Name: name, Namespace: namespace, Service: "Helm", Revision: 1,
		IsInstall: !isUpgrade, IsUpgrade: isUpgrade}
	if isUpgrade {
		release.Revision = 2
	}

	// Parse every template of the chart into one set, as Helm does.
	var files []string
	tdir := filepath.Join(chartDir, "templates")
	err = filepath.Walk(tdir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	sort.Strings(files)

	e := &engine{includeDepth: map[string]int{}}
	// Helm renders with missingkey=zero and blanks "<no value>"; -strict
	// reports those blanks instead (see scrub).
	root := template.New("gotpl").Option("missingkey=zero")
	funcs := e.funcs()
	funcs["include"] = e.include
	funcs["tpl"] = e.tpl
	root.Funcs(funcs)
	e.tmpl = root

	names := map[string]string{} // template name -> file
	for _, f := range files {
		rel, _ := filepath.Rel(chartDir, f)
		tname := meta.Name + "/" + filepath.ToSlash(rel)
		data, err := ioutil.ReadFile(f)
		if err != nil {
			return "", "", err
		}
		if _, err := root.New(tname).Parse(string(data)); err != nil {
			return "", "", fmt.Errorf("parse %s: %v", tname, err)
		}
		names[tname] = f
	}

	var tnames []string
	for n := range names {
		tnames = append(tnames, n)
	}
	sort.Strings(tnames)

	var out strings.Builder
	notes := ""
	for _, tname := range tnames {
		base := filepath.Base(tname)
		if strings.HasPrefix(base, "_") {
			continue // partials only define templates
		}
		isNotes := base == "NOTES.txt"
		if !isNotes && !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") &&
			!strings.HasSuffix(base, ".tpl") {
			continue
		}
		top := map[string]interface{}{
			"Values":       values,
			"Release":      release,
			"Chart":        meta,
			"Capabilities": caps,
			"Template":     map[string]interface{}{"Name": tname, "BasePath": meta.Name + "/templates"},
			"Files":        map[string]interface{}{},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, tname, top); err != nil {
			return "", "", cleanErr(err)
		}
		text := e.scrub(tname, buf.String())
		if isNotes {
			notes = text
			continue
		}
		for _, doc := range docSeparator.Split(text, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", tname, strings.TrimRight(doc, " \t\n"))
		}
	}
	if strict && len(e.missingValues) > 0 {
		return "", "", fmt.Errorf("templates printed missing values (%s):\n  %s", noValue,
			strings.Join(e.missingValues, "\n  "))
	}
	return out.String(), notes, nil
}

// cleanErr keeps template errors on one readable line, like Helm's.
func cleanErr(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
}

func loadChartMeta(data []byte) (ChartMeta, error) {
	m, err := loadYAMLMap(data)
	if err != nil {
		return ChartMeta{}, err
	}
	str := func(k string) string {
		if v, ok := m[k]; ok {
			switch x := v.(type) {
			case string:
				return x
			case float64:
				return strconv.FormatFloat(x, 'f', -1, 64)
			default:
				return fmt.Sprint(x)
			}
		}
		return ""
	}
	meta := ChartMeta{
		Name: str("name"), Version: str("version"), AppVersion: str("appVersion"),
		Description: str("description"), Type: str("type"), APIVersion: str("apiVersion"),
		KubeVersion: str("kubeVersion"), Home: str("home"), Icon: str("icon"),
	}
	if meta.Name == "" || meta.Version == "" || meta.APIVersion == "" {
		return meta, errors.New("name, version and apiVersion are required")
	}
	if meta.APIVersion != "v2" {
		return meta, fmt.Errorf("apiVersion %q: Helm 3 charts use v2", meta.APIVersion)
	}
	if a, ok := m["annotations"].(map[string]interface{}); ok {
		meta.Annotations = map[string]string{}
		for k, v := range a {
			meta.Annotations[k] = fmt.Sprint(v)
		}
	}
	for _, k := range []string{"keywords", "sources"} {
		if l, ok := m[k].([]interface{}); ok {
			for _, v := range l {
				if k == "keywords" {
					meta.Keywords = append(meta.Keywords, fmt.Sprint(v))
				} else {
					meta.Sources = append(meta.Sources, fmt.Sprint(v))
				}
			}
		}
	}
	if l, ok := m["maintainers"].([]interface{}); ok {
		for _, v := range l {
			if mm, ok := v.(map[string]interface{}); ok {
				meta.Maintainers = append(meta.Maintainers, mm)
			}
		}
	}
	return meta, nil
}

// checkKubeVersion supports the constraint form the chart uses: ">=1.X.Y-0"
// (optionally followed by more space-separated constraints of the same form).
func checkKubeVersion(constraint, version string) error {
	for _, c := range strings.Fields(constraint) {
		c = strings.TrimSuffix(c, ",")
		op := ""
		for _, p := range []string{">=", "<=", ">", "<", "="} {
			if strings.HasPrefix(c, p) {
				op = p
				break
			}
		}
		want := parseVersion(strings.TrimPrefix(c, op))
		have := parseVersion(version)
		cmp := 0
		for i := 0; i < 3 && cmp == 0; i++ {
			if have[i] < want[i] {
				cmp = -1
			} else if have[i] > want[i] {
				cmp = 1
			}
		}
		ok := map[string]bool{">=": cmp >= 0, "<=": cmp <= 0, ">": cmp > 0, "<": cmp < 0, "=": cmp == 0, "": cmp == 0}[op]
		if !ok {
			return fmt.Errorf("chart requires kubeVersion %s, which %s does not satisfy", constraint, version)
		}
	}
	return nil
}

func parseVersion(v string) [3]int {
	var out [3]int
	v = strings.SplitN(strings.TrimPrefix(v, "v"), "-", 2)[0]
	for i, p := range strings.SplitN(v, ".", 3) {
		n, _ := strconv.Atoi(p)
		out[i] = n
	}
	return out
}
