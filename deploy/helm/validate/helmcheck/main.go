// helmcheck renders, lints and validates the taskmesh chart with Helm's own
// library (helm.sh/helm/v4, pinned in go.mod) instead of a Helm binary, and
// validates rendered objects against vendored schemas (../schemas).
//
//	helmcheck template -chart DIR [-f FILE]... [-set-yaml PATH=YAML]... [-name N]
//	    [-namespace NS] [-kube-version V] [-api-versions A,B] [-notes FILE] [-upgrade]
//	  `helm template N DIR`: the manifest (hooks included) on stdout, NOTES.txt
//	  to -notes. Exit 1 with Helm's message when the chart refuses the values.
//
//	helmcheck lint -chart DIR [-f FILE]... [-set-yaml PATH=YAML]... [-namespace NS]
//	  `helm lint --strict`: its messages, then "lint: N messages, FAILED|OK".
//
//	helmcheck schema -schemas DIR [-json] [FILE...]
//	  Validates every object of the YAML streams FILE... (or stdin): one line
//	  per problem, then a summary. With -json, reads a JSON array of objects
//	  on stdin and writes [{"known": bool, "problems": [...]}, ...] (check.py).
//
// Example:
//
//	helmcheck template -chart deploy/helm/taskmesh -f values-production.yaml \
//	    -name prod -namespace taskmesh -notes /tmp/NOTES.txt > /tmp/manifest.yaml
//	helmcheck schema -schemas deploy/helm/validate/schemas /tmp/manifest.yaml
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	code := 0
	switch os.Args[1] {
	case "template":
		err = cmdTemplate(os.Args[2:])
	case "lint":
		code, err = cmdLint(os.Args[2:])
	case "schema":
		code, err = cmdSchema(os.Args[2:], os.Stdin, os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helmcheck %s: Error: %v\n", os.Args[1], err)
		os.Exit(1)
	}
	os.Exit(code)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: helmcheck template|lint|schema [flags] (see main.go)")
	os.Exit(2)
}

func valueFlags(fs *flag.FlagSet) *Values {
	v := &Values{}
	fs.Var((*stringList)(&v.Files), "f", "values file (repeatable; later files win)")
	fs.Var((*stringList)(&v.SetYAML), "set-yaml", "PATH=VALUE, VALUE read as YAML (repeatable; applied last)")
	return v
}

func cmdTemplate(args []string) error {
	fs := flag.NewFlagSet("template", flag.ExitOnError)
	o := TemplateOptions{}
	fs.StringVar(&o.Chart, "chart", "", "chart directory")
	v := valueFlags(fs)
	fs.StringVar(&o.Name, "name", "release-name", "release name")
	fs.StringVar(&o.Namespace, "namespace", "default", "release namespace")
	fs.StringVar(&o.KubeVersion, "kube-version", "", "Kubernetes version for .Capabilities (default: Helm's)")
	apis := fs.String("api-versions", "", "extra API versions, comma separated")
	notes := fs.String("notes", "", "write the rendered NOTES.txt here")
	fs.BoolVar(&o.IsUpgrade, "upgrade", false, "render as an upgrade (.Release.IsUpgrade)")
	fs.Parse(args)
	if o.Chart == "" {
		return fmt.Errorf("-chart is required")
	}
	o.Values = *v
	for _, a := range strings.Split(*apis, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.APIVersions = append(o.APIVersions, a)
		}
	}
	r, err := Template(o)
	if err != nil {
		return err
	}
	if *notes != "" {
		if err := os.WriteFile(*notes, []byte(r.Notes), 0o644); err != nil {
			return err
		}
	}
	_, err = io.WriteString(os.Stdout, r.Manifest)
	return err
}

func cmdLint(args []string) (int, error) {
	fs := flag.NewFlagSet("lint", flag.ExitOnError)
	chart := fs.String("chart", "", "chart directory")
	v := valueFlags(fs)
	ns := fs.String("namespace", "default", "namespace")
	kv := fs.String("kube-version", "", "Kubernetes version (default: Helm's)")
	fs.Parse(args)
	if *chart == "" {
		return 0, fmt.Errorf("-chart is required")
	}
	r, err := Lint(*chart, *ns, *v, *kv)
	if err != nil {
		return 0, err
	}
	for _, m := range r.Messages {
		fmt.Println(m)
	}
	verdict := "OK"
	if r.Failed {
		verdict = "FAILED"
	}
	fmt.Printf("lint: %d messages, %s\n", len(r.Messages), verdict)
	if r.Failed {
		return 1, nil
	}
	return 0, nil
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// splitStream splits a YAML stream into its documents (comment-only and
// empty ones dropped), with the "# Source:" each came from.
func splitStream(data []byte) (docs [][]byte, sources []string) {
	source := ""
	for _, chunk := range docSeparator.Split(string(data), -1) {
		empty := true
		for _, line := range strings.Split(chunk, "\n") {
			t := strings.TrimSpace(line)
			if s, ok := strings.CutPrefix(t, "# Source: "); ok {
				source = s
			}
			if t != "" && !strings.HasPrefix(t, "#") {
				empty = false
			}
		}
		if !empty {
			docs = append(docs, []byte(chunk))
			sources = append(sources, source)
		}
	}
	return docs, sources
}

type schemaResult struct {
	Known    bool     `json:"known"`
	Problems []string `json:"problems"`
}

func cmdSchema(args []string, stdin io.Reader, stdout io.Writer) (int, error) {
	fs := flag.NewFlagSet("schema", flag.ExitOnError)
	dir := fs.String("schemas", "", "the vendored schemas (deploy/helm/validate/schemas)")
	asJSON := fs.Bool("json", false, "JSON array of objects in, results out")
	fs.Parse(args)
	if *dir == "" {
		return 0, fmt.Errorf("-schemas is required")
	}
	s, err := LoadSchemas(*dir)
	if err != nil {
		return 0, err
	}
	if *asJSON {
		doc, err := jsonschema.UnmarshalJSON(bufio.NewReader(stdin))
		if err != nil {
			return 0, err
		}
		objs, ok := doc.([]any)
		if !ok {
			return 0, fmt.Errorf("want a JSON array of objects")
		}
		out := make([]schemaResult, len(objs))
		for i, o := range objs {
			known, problems := s.Validate(o)
			out[i] = schemaResult{known, append([]string{}, problems...)}
		}
		return 0, json.NewEncoder(stdout).Encode(out)
	}

	var inputs [][]byte
	names := fs.Args()
	if len(names) == 0 {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return 0, err
		}
		inputs, names = append(inputs, data), []string{"-"}
	}
	for _, n := range fs.Args() {
		data, err := os.ReadFile(n)
		if err != nil {
			return 0, err
		}
		inputs = append(inputs, data)
	}
	objects, invalid := 0, 0
	against := map[string]int{}
	for i, data := range inputs {
		docs, sources := splitStream(data)
		for j, d := range docs {
			objects++
			obj, err := decodeYAML(d)
			var known bool
			var problems []string
			if err != nil {
				problems = []string{"YAML: " + strings.Join(strings.Fields(err.Error()), " ")}
			} else {
				known, problems = s.Validate(obj)
			}
			id := describeObject(obj, j+1, names[i], sources[j])
			if len(problems) > 0 {
				invalid++
				for _, p := range problems {
					fmt.Fprintf(stdout, "%s: %s\n", id, p)
				}
			}
			if known {
				m := obj.(map[string]any)
				g, _ := GVKOf(m)
				if ref, ok := s.crds[g]; ok {
					against["CRD "+filepath.Base(ref.file)]++
				} else {
					against["Kubernetes "+strings.Join(s.Releases(), " and ")]++
				}
			}
		}
	}
	var targets []string
	for k := range against {
		targets = append(targets, k)
	}
	sort.Slice(targets, func(i, j int) bool { // Kubernetes first, then the CRDs
		ki, kj := strings.HasPrefix(targets[i], "Kubernetes"), strings.HasPrefix(targets[j], "Kubernetes")
		if ki != kj {
			return ki
		}
		return targets[i] < targets[j]
	})
	var parts []string
	for _, k := range targets {
		parts = append(parts, fmt.Sprintf("%d against %s", against[k], k))
	}
	fmt.Fprintf(stdout, "schema: %d objects, %d invalid (%s)\n", objects, invalid, strings.Join(parts, "; "))
	if invalid > 0 || objects == 0 {
		return 1, nil
	}
	return 0, nil
}

func describeObject(obj any, n int, file, source string) string {
	m, _ := obj.(map[string]any)
	md, _ := m["metadata"].(map[string]any)
	var b bytes.Buffer
	if k, name := m["kind"], md["name"]; k != nil && name != nil {
		fmt.Fprintf(&b, "%v/%v", k, name)
	} else {
		fmt.Fprintf(&b, "document %d", n)
	}
	if source != "" {
		fmt.Fprintf(&b, " (%s)", source)
	} else if file != "-" {
		fmt.Fprintf(&b, " (%s)", file)
	}
	return b.String()
}
