package main

// `helm template` and `helm lint --strict`, as Helm's own library runs them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli/values"
	"helm.sh/helm/v4/pkg/getter"
	release "helm.sh/helm/v4/pkg/release/v1"
)

// Values are what a user passes: values files (-f, later wins) and values
// set on the command line. Helm's own --set syntax cannot express a list of
// maps, so SetYAML entries are PATH=VALUE with VALUE read as YAML and given
// to Helm as --set-json (its parser reads PATH).
type Values struct {
	Files   []string
	SetYAML []string
}

// Merge gives the user's values as Helm's MergeValues does.
func (v Values) Merge() (map[string]any, error) {
	opts := values.Options{ValueFiles: v.Files}
	for _, s := range v.SetYAML {
		path, val, ok := strings.Cut(s, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("-set-yaml %q: want PATH=VALUE", s)
		}
		parsed, err := decodeYAML([]byte("v: " + val))
		if err != nil {
			return nil, fmt.Errorf("-set-yaml %q: %w", s, err)
		}
		j, err := json.Marshal(parsed.(map[string]any)["v"])
		if err != nil {
			return nil, err
		}
		opts.JSONValues = append(opts.JSONValues, path+"="+string(j))
	}
	return opts.MergeValues(getter.Providers{})
}

// TemplateOptions are `helm template`'s flags that taskmesh uses.
type TemplateOptions struct {
	Chart       string
	Values      Values
	Name        string
	Namespace   string
	KubeVersion string   // empty: Helm's default (its client-go's version)
	APIVersions []string // added to .Capabilities.APIVersions
	IsUpgrade   bool
}

// Rendered is `helm template`'s output, split.
type Rendered struct {
	Manifest string // YAML stream, each document after "# Source: <template>"
	Notes    string
	// TestHooks are the hooks Helm classified as `helm test` hooks, as
	// Kind/name: what `helm test` would run.
	TestHooks []string
}

func quietConfig() *action.Configuration {
	return action.NewConfiguration(func(c *action.Configuration) {
		c.SetLogger(slog.New(slog.NewTextHandler(io.Discard, nil)).Handler())
	})
}

// Template renders like `helm template NAME CHART` (client-only dry run:
// the kubeVersion constraint, values.schema.json, hooks and NOTES.txt
// included; the test hooks too, as without --skip-tests).
func Template(o TemplateOptions) (Rendered, error) {
	vals, err := o.Values.Merge()
	if err != nil {
		return Rendered{}, err
	}
	ch, err := loader.Load(o.Chart)
	if err != nil {
		return Rendered{}, err
	}
	if t := ch.Metadata.Type; t != "" && t != "application" {
		return Rendered{}, fmt.Errorf("%s charts are not installable", t)
	}
	install := action.NewInstall(quietConfig())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = o.Name
	install.Namespace = o.Namespace
	install.Replace = true
	install.IsUpgrade = o.IsUpgrade
	install.APIVersions = common.VersionSet(o.APIVersions)
	if o.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(o.KubeVersion)
		if err != nil {
			return Rendered{}, fmt.Errorf("invalid kube version %q: %w", o.KubeVersion, err)
		}
		install.KubeVersion = kv
	}
	r, err := install.RunWithContext(context.Background(), ch, vals)
	if err != nil {
		return Rendered{}, err
	}
	rel, ok := r.(*release.Release)
	if !ok {
		return Rendered{}, fmt.Errorf("unexpected release type %T", r)
	}
	var b strings.Builder
	fmt.Fprintln(&b, strings.TrimSpace(rel.Manifest))
	var tests []string
	for _, h := range rel.Hooks {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
		for _, e := range h.Events {
			if e == release.HookTest {
				tests = append(tests, h.Kind+"/"+h.Name)
			}
		}
	}
	return Rendered{Manifest: b.String(), Notes: rel.Info.Notes, TestHooks: tests}, nil
}

// LintResult is what `helm lint --strict` prints and whether it failed.
type LintResult struct {
	Messages []string // "[SEVERITY] path: message", as helm lint prints them
	Failed   bool
}

// Lint runs `helm lint --strict` on the chart with the user's values:
// warnings fail as errors do; INFO lines are reported, not failed.
func Lint(chartDir, namespace string, v Values, kubeVersion string) (LintResult, error) {
	vals, err := v.Merge()
	if err != nil {
		return LintResult{}, err
	}
	l := action.NewLint()
	l.Strict = true
	l.Namespace = namespace
	if kubeVersion != "" {
		kv, err := common.ParseKubeVersion(kubeVersion)
		if err != nil {
			return LintResult{}, err
		}
		l.KubeVersion = kv
	}
	res := l.Run([]string{chartDir}, vals)
	out := LintResult{Failed: len(res.Errors) > 0 || res.TotalChartsLinted != 1}
	for _, m := range res.Messages {
		out.Messages = append(out.Messages, m.Error())
	}
	if len(res.Messages) == 0 {
		for _, e := range res.Errors {
			out.Messages = append(out.Messages, "Error "+e.Error())
		}
	}
	return out, nil
}
