package main

// Strict validation of rendered objects against vendored schemas (see
// ../schemas/SOURCE.md): the Kubernetes OpenAPI v3 documents of pinned
// releases, and the CustomResourceDefinitions of KEDA and the Prometheus
// operator. Each object is checked against every vendored Kubernetes release
// that has a schema for it, or against its CRD.
//
// The schemas are read as JSON Schema (draft 4, the dialect OpenAPI 3.0's
// schema objects derive from) with the changes that make them say what the
// API server enforces, and no more:
//   - an object schema that lists its properties gets additionalProperties:
//     false, unless it is x-kubernetes-preserve-unknown-fields: unknown fields
//     are rejected, as `kubectl apply --validate=strict` (server-side field
//     validation) rejects them;
//   - x-kubernetes-int-or-string becomes "integer or string", nullable: true
//     adds null to the type;
//   - Quantity and IntOrString are one schema each (a Quantity string must
//     match the API's quantity syntax);
//   - formats int32/int64 (a plain integer in range: 1e+06 is refused, as
//     the API server's decoder refuses it) and byte (base64) are checked;
//   - a CRD's metadata is the API's ObjectMeta (the API server validates it so).
// Not evaluated: CRDs' x-kubernetes-validations (CEL rules).
//
// Example:
//
//	s, err := LoadSchemas("deploy/helm/validate/schemas")
//	known, problems := s.Validate(obj) // obj: a decoded object (json.Number numbers)
//
// Not safe for concurrent use: schemas are compiled lazily.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"sigs.k8s.io/yaml"
)

// GVK names a kind as an object's apiVersion and kind do.
type GVK struct{ Group, Version, Kind string }

func (g GVK) String() string {
	if g.Group == "" {
		return g.Version + "/" + g.Kind
	}
	return g.Group + "/" + g.Version + "/" + g.Kind
}

// GVKOf splits an object's apiVersion ("v1", "apps/v1") and kind.
func GVKOf(obj map[string]any) (GVK, bool) {
	av, _ := obj["apiVersion"].(string)
	k, _ := obj["kind"].(string)
	if av == "" || k == "" {
		return GVK{}, false
	}
	g, v, found := strings.Cut(av, "/")
	if !found {
		g, v = "", av
	}
	return GVK{g, v, k}, true
}

// Schemas validates objects; it loads and compiles schemas on first use.
type Schemas struct {
	dir      string
	releases []string // kubernetes/<release>, oldest first
	crds     map[GVK]crdRef
	compiler *jsonschema.Compiler
	added    map[string]bool               // resource paths given to the compiler
	index    map[string]map[GVK]string     // resource path -> kind -> schema name
	compiled map[string]*jsonschema.Schema // schema URL -> schema
}

type crdRef struct {
	file    string // absolute path of the CRD file
	pointer string // JSON pointer to the version's openAPIV3Schema
}

// Releases are the vendored Kubernetes releases, oldest first.
func (s *Schemas) Releases() []string { return s.releases }

// LoadSchemas indexes dir: kubernetes/<release>/<group-version>.json and
// crds/*.yaml.
func LoadSchemas(dir string) (*Schemas, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Schemas{dir: abs, crds: map[GVK]crdRef{}, added: map[string]bool{},
		index: map[string]map[GVK]string{}, compiled: map[string]*jsonschema.Schema{}}
	rels, err := os.ReadDir(filepath.Join(abs, "kubernetes"))
	if err != nil {
		return nil, err
	}
	for _, r := range rels {
		if r.IsDir() {
			s.releases = append(s.releases, r.Name())
		}
	}
	sort.Slice(s.releases, func(i, j int) bool { return versionLess(s.releases[i], s.releases[j]) })
	if len(s.releases) == 0 {
		return nil, fmt.Errorf("%s/kubernetes: no release", abs)
	}

	s.compiler = jsonschema.NewCompiler()
	s.compiler.DefaultDraft(jsonschema.Draft4)
	s.compiler.AssertFormat()
	for _, f := range kubernetesFormats {
		s.compiler.RegisterFormat(f)
	}
	// Every reference is inside the vendored files: load nothing else.
	s.compiler.UseLoader(noLoader{})

	crdFiles, err := filepath.Glob(filepath.Join(abs, "crds", "*.yaml"))
	if err != nil {
		return nil, err
	}
	for _, f := range crdFiles {
		if err := s.addCRD(f); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return s, nil
}

type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("%s: not a vendored schema", u)
}

// fileURL is how the compiler names a resource given by absolute path.
func fileURL(path string) string { return (&url.URL{Scheme: "file", Path: path}).String() }

// objectMetaURL: CRDs take ObjectMeta from the newest release.
func (s *Schemas) objectMetaURL() (string, error) {
	core := filepath.Join(s.dir, "kubernetes", s.releases[len(s.releases)-1], "api__v1.json")
	if err := s.ensure(core); err != nil {
		return "", err
	}
	return fileURL(core) + "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", nil
}

func (s *Schemas) addCRD(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc, err := decodeYAML(data)
	if err != nil {
		return err
	}
	crd, _ := doc.(map[string]any)
	if kind, _ := crd["kind"].(string); kind != "CustomResourceDefinition" {
		return errors.New("not a CustomResourceDefinition")
	}
	spec, _ := crd["spec"].(map[string]any)
	group, _ := spec["group"].(string)
	names, _ := spec["names"].(map[string]any)
	kindName, _ := names["kind"].(string)
	versions, _ := spec["versions"].([]any)
	meta, err := s.objectMetaURL()
	if err != nil {
		return err
	}
	for i, v := range versions {
		vm, _ := v.(map[string]any)
		name, _ := vm["name"].(string)
		sch, _ := vm["schema"].(map[string]any)
		root, _ := sch["openAPIV3Schema"].(map[string]any)
		if name == "" || root == nil {
			continue
		}
		strictify(root)
		if props, ok := root["properties"].(map[string]any); ok {
			props["metadata"] = map[string]any{"$ref": meta}
		}
		s.crds[GVK{group, name, kindName}] = crdRef{path, fmt.Sprintf("/spec/versions/%d/schema/openAPIV3Schema", i)}
	}
	if err := s.compiler.AddResource(path, doc); err != nil {
		return err
	}
	s.added[path] = true
	return nil
}

// ensure gives a Kubernetes group-version document to the compiler once,
// made strict, and indexes its kinds.
func (s *Schemas) ensure(path string) error {
	if s.added[path] {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	comps, _ := doc.(map[string]any)["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	if schemas == nil {
		return fmt.Errorf("%s: no components.schemas", path)
	}
	idx := map[GVK]string{}
	for name, v := range schemas {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if f, ok := special[name]; ok {
			m = f()
			schemas[name] = m
		}
		strictify(m)
		gvks, _ := m["x-kubernetes-group-version-kind"].([]any)
		// A schema listing several kinds is a shared one (DeleteOptions,
		// WatchEvent): never an object a chart renders.
		if len(gvks) != 1 {
			continue
		}
		g, _ := gvks[0].(map[string]any)
		gs, _ := g["group"].(string)
		vs, _ := g["version"].(string)
		ks, _ := g["kind"].(string)
		idx[GVK{gs, vs, ks}] = name
	}
	if err := s.compiler.AddResource(path, doc); err != nil {
		return err
	}
	s.added[path] = true
	s.index[path] = idx
	return nil
}

// groupVersionFile is the vendored file of a group-version in a release, as
// the Kubernetes repository names it (api/openapi-spec/v3).
func (s *Schemas) groupVersionFile(release string, g GVK) string {
	name := "api__" + g.Version
	if g.Group != "" {
		name = "apis__" + g.Group + "__" + g.Version
	}
	return filepath.Join(s.dir, "kubernetes", release, name+".json")
}

func (s *Schemas) compile(u string) (*jsonschema.Schema, error) {
	if c, ok := s.compiled[u]; ok {
		return c, nil
	}
	c, err := s.compiler.Compile(u)
	if err != nil {
		return nil, err
	}
	s.compiled[u] = c
	return c, nil
}

func (s *Schemas) servedBy(release string, g GVK) (bool, string) {
	f := s.groupVersionFile(release, g)
	if _, err := os.Stat(f); err != nil {
		return false, ""
	}
	if err := s.ensure(f); err != nil {
		return false, ""
	}
	name, ok := s.index[f][g]
	if !ok {
		return false, ""
	}
	return true, fileURL(f) + "#/components/schemas/" + name
}

// Validate checks one object. known is false when no vendored schema
// describes its apiVersion/kind; problems are then that alone.
func (s *Schemas) Validate(obj any) (known bool, problems []string) {
	m, ok := obj.(map[string]any)
	if !ok {
		return false, []string{fmt.Sprintf("document is a %T, not an object", obj)}
	}
	g, ok := GVKOf(m)
	if !ok {
		return false, []string{"no apiVersion and kind"}
	}
	if ref, ok := s.crds[g]; ok {
		c, err := s.compile(fileURL(ref.file) + "#" + ref.pointer)
		if err != nil {
			return true, []string{fmt.Sprintf("schema of %s: %v", g, err)}
		}
		return true, describe(c.Validate(m), "CRD "+filepath.Base(ref.file))
	}
	// release -> problems; then each problem once, with the releases it has.
	where := map[string][]string{}
	var order []string
	add := func(p, release string) {
		if _, seen := where[p]; !seen {
			order = append(order, p)
		}
		where[p] = append(where[p], release)
	}
	for _, r := range s.releases {
		served, u := s.servedBy(r, g)
		if !served {
			add(fmt.Sprintf("%s is not served", g), r)
			continue
		}
		known = true
		c, err := s.compile(u)
		if err != nil {
			add(fmt.Sprintf("schema of %s: %v", g, err), r)
			continue
		}
		for _, p := range describe(c.Validate(m), "") {
			add(p, r)
		}
	}
	if !known {
		return false, []string{fmt.Sprintf("no schema for apiVersion/kind %s (Kubernetes %s, or a vendored CRD)",
			g, strings.Join(s.releases, ", "))}
	}
	for _, p := range order {
		problems = append(problems, fmt.Sprintf("%s (Kubernetes %s)", p, strings.Join(where[p], ", ")))
	}
	return true, problems
}

var printer = message.NewPrinter(language.English)

// describe turns a validation error into one line per failed leaf, with the
// object path in kubectl's form: spec.template.spec.containers[0].name.
func describe(err error, suffix string) []string {
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []string{err.Error()}
	}
	var leaves []*jsonschema.ValidationError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, e)
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	// A value that fits no branch of "integer or string" fails two type
	// checks at one place: say it once.
	wants := map[string][]string{}
	var out []string
	for _, e := range leaves {
		path := objectPath(e.InstanceLocation)
		var msg string
		switch k := e.ErrorKind.(type) {
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				out = append(out, fmt.Sprintf("%s: unknown field %q", path, p))
			}
			continue
		case *kind.Required:
			for _, p := range k.Missing {
				out = append(out, fmt.Sprintf("%s: required field %q is missing", path, p))
			}
			continue
		case *kind.Type:
			key := path + "\x00" + k.Got
			if _, seen := wants[key]; !seen {
				out = append(out, key)
			}
			wants[key] = append(wants[key], k.Want...)
			continue
		case *kind.Format:
			msg = k.Err.Error()
		default:
			msg = e.ErrorKind.LocalizedString(printer)
		}
		out = append(out, fmt.Sprintf("%s: %s", path, msg))
	}
	for i, line := range out {
		if path, got, ok := strings.Cut(line, "\x00"); ok {
			out[i] = fmt.Sprintf("%s: expected %s, got %s", path, strings.Join(dedupe(wants[line]), " or "), got)
		}
	}
	if suffix != "" {
		for i := range out {
			out[i] += " (" + suffix + ")"
		}
	}
	return dedupe(out)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func objectPath(loc []string) string {
	var b strings.Builder
	for _, p := range loc {
		if isIndex(p) {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	if b.Len() == 0 {
		return "(object)"
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// strictify rewrites one OpenAPI schema object (and those inside it) as
// described at the top of this file.
func strictify(s map[string]any) {
	delete(s, "description")
	if props, ok := s["properties"].(map[string]any); ok {
		for _, p := range props {
			if m, ok := p.(map[string]any); ok {
				strictify(m)
			}
		}
		if _, has := s["additionalProperties"]; !has && s["x-kubernetes-preserve-unknown-fields"] != true {
			s["additionalProperties"] = false
		}
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		strictify(ap)
	}
	if it, ok := s["items"].(map[string]any); ok {
		strictify(it)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		list, _ := s[k].([]any)
		for _, v := range list {
			if m, ok := v.(map[string]any); ok {
				strictify(m)
			}
		}
	}
	if n, ok := s["not"].(map[string]any); ok {
		strictify(n)
	}
	if s["x-kubernetes-int-or-string"] == true {
		// CRDs spell it anyOf: [{type: integer}, {type: string}].
		delete(s, "anyOf")
		s["type"] = []any{"integer", "string"}
	}
	if s["nullable"] == true {
		if t, ok := s["type"].(string); ok {
			s["type"] = []any{t, "null"}
		}
	}
}

// quantityRE is k8s.io/apimachinery's resource.Quantity syntax.
var quantityRE = regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?[0-9]+)?$`)

// special replaces the two apimachinery types that are "one of two JSON
// types" by one schema each, so that a wrong value gets one clear message.
var special = map[string]func() map[string]any{
	"io.k8s.apimachinery.pkg.api.resource.Quantity": func() map[string]any {
		return map[string]any{"type": []any{"string", "number"}, "format": "quantity"}
	},
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": func() map[string]any {
		return map[string]any{"type": []any{"integer", "string"}}
	},
}

var plainInteger = regexp.MustCompile(`^-?[0-9]+$`)

func intFormat(name string, bits int) *jsonschema.Format {
	lo := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	hi := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(bits-1)), big.NewInt(1))
	return &jsonschema.Format{Name: name, Validate: func(v any) error {
		n, ok := v.(json.Number)
		if !ok {
			return nil // the type keyword speaks for other values
		}
		if !plainInteger.MatchString(string(n)) {
			return fmt.Errorf("%s is not written as a whole number (the API server's decoder refuses it)", n)
		}
		x, _ := new(big.Int).SetString(string(n), 10)
		if x.Cmp(lo) < 0 || x.Cmp(hi) > 0 {
			return fmt.Errorf("%s does not fit in %s", n, name)
		}
		return nil
	}}
}

// kubernetesFormats are the formats of the Kubernetes schemas worth checking.
var kubernetesFormats = []*jsonschema.Format{
	intFormat("int32", 32),
	intFormat("int64", 64),
	{Name: "byte", Validate: func(v any) error {
		s, ok := v.(string)
		if !ok {
			return nil
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return fmt.Errorf("not base64: %v", err)
		}
		return nil
	}},
	{Name: "int-or-string", Validate: func(any) error { return nil }},
	{Name: "quantity", Validate: func(v any) error {
		if s, ok := v.(string); ok && !quantityRE.MatchString(s) {
			return fmt.Errorf("%q is not a quantity (such as 500m, 128Mi, 2)", s)
		}
		return nil
	}},
}

// decodeYAML reads one YAML document as JSON values (numbers as
// json.Number), refusing duplicate keys as the API server does.
func decodeYAML(data []byte) (any, error) {
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

// versionLess orders "v1.25.16" before "v1.37.2".
func versionLess(a, b string) bool {
	pa, pb := versionParts(a), versionParts(b)
	for i := range pa {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return a < b
}

func versionParts(v string) [3]int {
	var out [3]int
	for i, p := range strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3) {
		fmt.Sscanf(p, "%d", &out[i])
	}
	return out
}
