#!/usr/bin/python3
"""Writes the schemas helmcheck validates against from the Go module cache.

  vendor.py            rewrite the vendored files (and SOURCE.md's sha256 lines)
  vendor.py --check    verify that the vendored files are what the modules give

Kubernetes: the OpenAPI v3 documents of the pinned release
(k8s.io/kubernetes@RELEASE modules, for each release in K8S, api/openapi-spec/v3/<group-version>_openapi.json),
one per group-version the chart uses, cut down to what validation reads: the
`components.schemas` object, with every "description" dropped (nothing else
is changed). CRDs: the upstream CustomResourceDefinition files, copied as they
are. First fetch the modules (a few seconds each through the module proxy):

  go mod download k8s.io/kubernetes@v1.25.16 k8s.io/kubernetes@v1.37.2 \
      github.com/kedacore/keda/v2@v2.21.0 \
      github.com/prometheus-operator/prometheus-operator@v0.85.0
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# The oldest release the chart admits (Chart.yaml kubeVersion ">=1.25.0-0") and the one
# Helm v4.3.2 is built against (k8s.io/client-go v0.37.2): an object must be valid in both.
K8S = ["v1.25.16", "v1.37.2"]
GROUP_VERSIONS = ["api__v1", "apis__apps__v1", "apis__autoscaling__v2", "apis__policy__v1",
                  "apis__networking.k8s.io__v1"]
CRDS = [
    ("github.com/kedacore/keda/v2@v2.21.0", "config/crd/bases", "keda.sh_scaledobjects.yaml"),
    ("github.com/kedacore/keda/v2@v2.21.0", "config/crd/bases", "keda.sh_triggerauthentications.yaml"),
    ("github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd",
     "monitoring.coreos.com_servicemonitors.yaml"),
    ("github.com/prometheus-operator/prometheus-operator@v0.85.0", "example/prometheus-operator-crd",
     "monitoring.coreos.com_podmonitors.yaml"),
]


def modcache():
    out = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def strip_descriptions(v):
    if isinstance(v, dict):
        return {k: strip_descriptions(x) for k, x in v.items() if k != "description"}
    if isinstance(v, list):
        return [strip_descriptions(x) for x in v]
    return v


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def outputs(mod):
    """(source path, vendored path, how) for every vendored file."""
    for release in K8S:
        spec = os.path.join(mod, f"k8s.io/kubernetes@{release}", "api", "openapi-spec", "v3")
        for gv in GROUP_VERSIONS:
            yield (os.path.join(spec, f"{gv}_openapi.json"),
                   os.path.join(HERE, "kubernetes", release, f"{gv}.json"), "openapi")
    for module, folder, name in CRDS:
        yield os.path.join(mod, module, folder, name), os.path.join(HERE, "crds", name), "copy"


def content(src, how):
    if how == "copy":
        with open(src, "rb") as f:
            return f.read()
    with open(src) as f:
        doc = json.load(f)
    small = {"components": {"schemas": strip_descriptions(doc["components"]["schemas"])}}
    return (json.dumps(small, indent=1, sort_keys=True) + "\n").encode()


def main(argv):
    check = argv[1:] == ["--check"]
    mod = modcache()
    bad = 0
    for src, dst, how in outputs(mod):
        if not os.path.exists(src):
            print(f"missing {src}: go mod download the module first (see --help)")
            return 1
        data = content(src, how)
        rel = os.path.relpath(dst, HERE)
        if check:
            with open(dst, "rb") as f:
                same = f.read() == data
            print(f"{'ok  ' if same else 'DIFF'} {rel}  (from {os.path.relpath(src, mod)} sha256 {sha256(src)})")
            bad += not same
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, "wb") as f:
                f.write(data)
            print(f"wrote {rel}  (from {os.path.relpath(src, mod)} sha256 {sha256(src)})")
    return 1 if bad else 0


if __name__ == "__main__":
    if sys.argv[1:] in (["-h"], ["--help"]):
        print(__doc__)
        sys.exit(0)
    sys.exit(main(sys.argv))
