#!/usr/bin/python3
"""Strict checks of a rendered taskmesh chart (`helm template`'s output, from helmcheck/).

Each check prints one line, `PASS: <render>: <check>` or `FAIL: ...` followed
by one indented line per problem; run.sh counts them. Checks:

  yaml          every document parses and is a mapping
  kinds         apiVersion/kind has a vendored schema; no duplicate objects
  schema        every object valid against the vendored schemas (helmcheck
                schema: the Kubernetes OpenAPI of each pinned release, KEDA's
                and the Prometheus operator's CRDs; unknown fields rejected)
  names         names, label keys/values, port and env names are valid
  labels        the chart's standard labels are on every object
  selectors     workload selectors match their pod labels and no other
                workload's; Services, PDBs, NetworkPolicies select real pods
  service-ports each Service/Ingress/ServiceMonitor/PodMonitor port resolves to a real port
  probes        readiness+liveness on every container, pointing at real ports;
                native gRPC probes for the gRPC servers, HTTP for the gateway
  security      Pod Security "restricted" + read-only root filesystem
  references    $(VAR) expansions, Secrets, ConfigMaps, volumes, accounts
  autoscaling   HPAs (CPU requests, scale-down behaviour) and KEDA
                ScaledObjects (lagCount, activationLagCount 0, a lag and a
                pending trigger on each of the three priority streams of
                every queue the pool serves, auth matching the pods' Secret)
  drain         workers and gateway: preStop + --drain_timeout fit in the grace period
  network       default deny, then every needed flow allowed and the rest denied
                (Prometheus to the metrics ports only with serviceMonitor.enabled)
  metrics       task_service and workers: --metrics_listen is <listenHost>:
                metricsPort of the values (empty when 0) and the container port
                "metrics" is that port, apart from the other listen port; with
                serviceMonitor.enabled every component's /metrics is scraped
                exactly once (ServiceMonitor/PodMonitor), without it none is
  flags         every flag passed is one the binary accepts (--help, or the
                contract when the binary is not built), values well-formed,
                every flag of the contract passed; a file-valued flag names a
                key of a ConfigMap/Secret mounted in the container (or a file
                on the volume values declare as the user's own)
  flag-docs     every flag of the contract is documented (`--name`) in
                values.yaml and docs/deploy.md
  gateway       every gateway flag carries its value from values.gateway;
                --upstream reaches the task service by default; the grace
                period is preStop + drain + margin; --descriptor_set lists
                exactly the files of descriptorSets, mounted read-only, the
                chart's ConfigMap holding binaryData, a checksum annotation
  periodic      the workers' --periodic_config file: a mounted ConfigMap
                holding values.periodicTasks as JSON, each entry complete and
                on a served queue, a worker always running when there are
                any, a checksum annotation that restarts workers on change
  redis         internal Redis: AOF on a PVC, noeviction, password from a Secret
  helm-test     the test Pod creates a task through the gateway, waits for SUCCEEDED
  notes         NOTES.txt tells how to reach the gateway
  values        every pool in the values has a Deployment and a scaler

The schema and kinds checks run `$HELMCHECK schema -json -schemas
$HELMCHECK_SCHEMAS` (run.sh builds it and sets both); without it they fail.

Example:
  check.py --render default --manifest m.yaml --notes NOTES.txt \
      --values deploy/helm/taskmesh/values.yaml [--values more.yaml] \
      [--help-flags flags.json]
"""

import argparse
import base64
import copy
import hashlib
import ipaddress
import json
import os
import re
import subprocess
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CONTRACT = json.load(open(os.path.join(HERE, "flags-contract.json")))
BINARIES = {k: v for k, v in CONTRACT.items() if not k.startswith("_")}
COMPONENT_BINARY = {v["component"]: k for k, v in BINARIES.items()}

WORKLOAD_KINDS = ("Deployment", "StatefulSet")
STD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
              "app.kubernetes.io/part-of", "helm.sh/chart", "app.kubernetes.io/component")

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
IPV4PORT = re.compile(r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d):\d{1,5}$")
REDIS_URL = re.compile(r"^redis://(:(?P<pw>[^@/]+)@)?(?P<host>[A-Za-z0-9.-]+):(?P<port>\d{1,5})(/(?P<db>\d+))?$")
# A Redis Cluster's seed list (docs/redis-cluster.md): redis://[:PASSWORD@]H1:P1,H2:P2,...
# (bare seeds take the first one's password; database 0, the only one a cluster has).
REDIS_SEEDS = re.compile(r"^redis://(:(?P<pw>[^@/,]+)@)?(?P<hosts>[A-Za-z0-9.-]+:\d{1,5}(,[A-Za-z0-9.-]+:\d{1,5})+)$")
VAR_REF = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
# A queue's streams: DEFAULT priority, then HIGH and LOW (broker/keys.h).
STREAM_SUFFIXES = ("", ":high", ":low")
# A queue's stream, of partition 0 ({Q}) or p > 0 ({Q~p}, broker/partitions.h).
STREAM_KEY = re.compile(r"^taskmesh:\{([^~{}]+)(?:~([1-9][0-9]?))?\}:stream(:high|:low)?$")


def partition_limits(text):
    """--partition_limits "QUEUE=K,..." -> {queue: K}; malformed entries are skipped
    (the flag form check reports them)."""
    out = {}
    for entry in comma_list(text or ""):
        q, _, k = entry.partition("=")
        if q and k.isdigit():
            out[q] = int(k)
    return out
PERIODIC_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CRON_FIELD = re.compile(r"^[0-9*/,-]+$")
PERIODIC_ANNOTATION = "checksum/periodic-tasks"
DESCRIPTOR_ANNOTATION = "checksum/descriptor-sets"
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
ORIGIN = re.compile(r"^(\*|https?://[A-Za-z0-9.-]+(:\d{1,5})?)$")
TARGET = re.compile(r"^(dns:///)?[A-Za-z0-9.-]+:\d{1,5}$")
ROUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+=(?P<target>.+)$")


class UserFile:
    """A file on a volume the user provides (values declare it): the manifest
    does not hold its content; binflags.py needs it given (--provide)."""

    def __init__(self, volume, path):
        self.volume, self.path = volume, path


def parse_redis(s):
    """--redis as the chart renders it: {"pw", "hosts": [HOST:PORT, ...], "db",
    "seeds": is a seed list}, or None when it is neither form."""
    m = REDIS_URL.match(s)
    if m:
        return {"pw": m.group("pw"), "hosts": [f"{m.group('host')}:{m.group('port')}"],
                "db": m.group("db") or "0", "seeds": False}
    m = REDIS_SEEDS.match(s)
    if m:
        return {"pw": m.group("pw"), "hosts": m.group("hosts").split(","), "db": "0", "seeds": True}
    return None


def redis_cluster(values):
    """True when the values ask for an external Redis Cluster."""
    r = values.get("redis") or {}
    return r.get("mode") == "external" and (r.get("external") or {}).get("cluster") is True


def cluster_addresses(values):
    """redis.external.addresses as the chart renders them (":6379" when no port)."""
    out = []
    for a in ((values.get("redis") or {}).get("external") or {}).get("addresses") or []:
        a = re.sub(r"/0$", "", str(a))
        out.append(a if ":" in a else a + ":6379")
    return out


def comma_list(s):
    return [x for x in s.split(",")] if s else []


def hostport_problem(s):
    m = HOSTPORT.match(s)
    return None if m and 0 < int(m.group(2)) < 65536 else "not HOST:PORT"


# ---------------------------------------------------------------- helpers

_SCHEMA_CACHE = {}


def schema_results(objs):
    """helmcheck's {"known", "problems"} for each object, in order. Objects
    already validated (selftest validates near-copies again and again) are
    not sent twice."""
    keys = [json.dumps(o, sort_keys=True, default=str) for o in objs]
    todo = [k for k in dict.fromkeys(keys) if k not in _SCHEMA_CACHE]
    if todo:
        exe, schemas = os.environ.get("HELMCHECK"), os.environ.get("HELMCHECK_SCHEMAS")
        if not exe or not schemas:
            raise RuntimeError("HELMCHECK and HELMCHECK_SCHEMAS are not set (run.sh sets them)")
        out = subprocess.run([exe, "schema", "-json", "-schemas", schemas], input="[" + ",".join(todo) + "]",
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"helmcheck schema: {out.stderr.strip()}")
        for k, res in zip(todo, json.loads(out.stdout)):
            _SCHEMA_CACHE[k] = res
    return [_SCHEMA_CACHE[k] for k in keys]


class Report:
    def __init__(self, render, quiet=False):
        self.render = render
        self.passed = 0
        self.failed = 0
        self.quiet = quiet
        self.failures = {}

    def result(self, check, problems):
        problems = list(dict.fromkeys(problems))  # dedupe, keep order
        if problems:
            self.failed += 1
            self.failures[check] = problems
            if not self.quiet:
                print(f"FAIL: {self.render}: {check}")
                for p in problems:
                    print(f"    {p}")
        else:
            self.passed += 1
            if not self.quiet:
                print(f"PASS: {self.render}: {check}")


def ident(o):
    md = o.get("metadata") or {}
    return f"{o.get('kind')}/{md.get('name')}"


def labels_match(selector, labels):
    """Kubernetes LabelSelector semantics (matchLabels + matchExpressions)."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, vals = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(key) not in vals:
            return False
        if op == "NotIn" and key in labels and labels[key] in vals:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def deep_merge(dst, src):
    """Helm's coalesce for reading values: src (higher priority) over dst."""
    out = copy.deepcopy(dst)
    for k, v in (src or {}).items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_duration(s):
    """Go/absl duration -> seconds."""
    if s == "0":
        return 0.0
    if not isinstance(s, str) or not DURATION.match(s):
        return None
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|ms|s|m|h)", s))


class Pod:
    """A pod (template) of the manifest, or a virtual endpoint for the network checks."""

    def __init__(self, name, namespace, labels, spec=None, owner=None, ip=None):
        self.name, self.namespace, self.labels = name, namespace, labels or {}
        self.spec = spec or {}
        self.owner = owner
        self.ip = ip

    @property
    def containers(self):
        return (self.spec.get("initContainers") or []) + (self.spec.get("containers") or [])

    def ports(self):
        out = {}
        for c in self.spec.get("containers") or []:
            for p in c.get("ports") or []:
                out[p.get("containerPort")] = p
        return out

    def resolve_port(self, port):
        """A Service/NetworkPolicy port (number or name) -> container port number."""
        for c in self.spec.get("containers") or []:
            for p in c.get("ports") or []:
                if port == p.get("containerPort") or port == p.get("name"):
                    return p.get("containerPort")
        return None

    @property
    def component(self):
        return self.labels.get("app.kubernetes.io/component")


def container_env(c):
    return {e.get("name"): e for e in c.get("env") or []}


# ---------------------------------------------------------------- the checker

class Checker:
    def __init__(self, render, docs, notes, values, help_flags=None, quiet=False):
        self.r = Report(render, quiet)
        self.docs = docs          # list of (source, text, obj or exception)
        self.objs = [o for _, _, o in docs if isinstance(o, dict)]
        self.notes = notes or ""
        self.values = values
        self.help_flags = help_flags or {}
        self.ns = None
        for o in self.objs:
            ns = (o.get("metadata") or {}).get("namespace")
            if ns:
                self.ns = ns
                break
        self.pods = []
        for o in self.objs:
            if o.get("kind") in WORKLOAD_KINDS:
                t = (o.get("spec") or {}).get("template") or {}
                self.pods.append(Pod(ident(o), self.ns, (t.get("metadata") or {}).get("labels"),
                                     t.get("spec"), owner=o))
            elif o.get("kind") == "Pod":
                self.pods.append(Pod(ident(o), self.ns, (o.get("metadata") or {}).get("labels"),
                                     o.get("spec"), owner=o))

    def by_kind(self, kind):
        return [o for o in self.objs if o.get("kind") == kind]

    def find(self, kind, name):
        for o in self.by_kind(kind):
            if (o.get("metadata") or {}).get("name") == name:
                return o
        return None

    def pods_of(self, component):
        return [p for p in self.pods if p.component == component]

    def run(self):
        for name in ("yaml", "kinds", "schema", "names", "labels", "selectors", "service_ports",
                     "probes", "security", "references", "autoscaling", "drain", "network",
                     "metrics", "flags", "flag_docs", "gateway", "periodic", "redis", "helm_test", "notes",
                     "values"):
            try:
                problems = getattr(self, "check_" + name)()
            except Exception as e:  # a checker crash is a failure, never a pass
                problems = [f"checker crashed: {type(e).__name__}: {e}"]
            self.r.result(name.replace("_", "-"), problems)
        return self.r

    # ---- yaml / kinds / schema / names / labels

    def check_yaml(self):
        out = []
        for source, text, o in self.docs:
            if isinstance(o, Exception):
                out.append(f"{source}: YAML does not parse: {o}")
            elif not isinstance(o, dict):
                out.append(f"{source}: document is a {type(o).__name__}, not a mapping")
        if not self.objs:
            out.append("no objects rendered")
        return out

    def check_kinds(self):
        out, seen = [], set()
        for o, res in zip(self.objs, schema_results(self.objs)):
            if not res["known"]:
                out.append(f"{ident(o)}: unknown apiVersion/kind {o.get('apiVersion')}/{o.get('kind')}")
            key = (o.get("apiVersion"), o.get("kind"), (o.get("metadata") or {}).get("name"))
            if key in seen:
                out.append(f"{ident(o)}: rendered twice")
            seen.add(key)
        return out

    def check_schema(self):
        out = []
        for o, res in zip(self.objs, schema_results(self.objs)):
            if res["known"]:  # an unknown kind is the kinds check's
                out += [f"{ident(o)}: {p}" for p in res["problems"]]
        return out

    def check_names(self):
        out = []
        for o in self.objs:
            md = o.get("metadata") or {}
            name, kind = md.get("name") or "", o.get("kind")
            if not md.get("namespace") and kind not in ():
                out.append(f"{ident(o)}: no metadata.namespace")
            if kind == "Service":
                if len(name) > 63 or not DNS1035_LABEL.match(name):
                    out.append(f"{ident(o)}: Service name must be a DNS-1035 label of <= 63 chars")
            elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
                out.append(f"{ident(o)}: name is not a DNS-1123 subdomain")
            if kind == "StatefulSet" and len(name) > 52:
                out.append(f"{ident(o)}: StatefulSet names over 52 chars break the controller-revision-hash label")
            for where, labels in (("labels", md.get("labels")),
                                  ("pod labels", (((o.get("spec") or {}).get("template") or {})
                                                  .get("metadata") or {}).get("labels"))):
                for k, v in (labels or {}).items():
                    prefix, _, nm = k.rpartition("/")
                    if (prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix))) or \
                            len(nm) > 63 or not LABEL_NAME.match(nm):
                        out.append(f"{ident(o)}: {where}: bad label key {k!r}")
                    if not isinstance(v, str) or len(v) > 63 or (v and not LABEL_NAME.match(v)):
                        out.append(f"{ident(o)}: {where}: bad label value {k}={v!r}")
            if kind in ("ConfigMap", "Secret"):
                for k in list((o.get("data") or {})) + list((o.get("stringData") or {})) + \
                        list((o.get("binaryData") or {})):
                    if not CONFIG_KEY.match(k):
                        out.append(f"{ident(o)}: bad data key {k!r}")
                if kind == "ConfigMap":
                    for k in set(o.get("data") or {}) & set(o.get("binaryData") or {}):
                        out.append(f"{ident(o)}: key {k!r} in both data and binaryData")
                    for k, v in (o.get("binaryData") or {}).items():
                        try:
                            base64.b64decode(v, validate=True)
                        except Exception:
                            out.append(f"{ident(o)}: binaryData.{k} is not base64")
                if kind == "Secret":
                    for k, v in (o.get("data") or {}).items():
                        try:
                            base64.b64decode(v, validate=True)
                        except Exception:
                            out.append(f"{ident(o)}: data.{k} is not base64")
        for p in self.pods:
            names = set()
            for c in p.containers:
                if not DNS1123_LABEL.match(c.get("name") or ""):
                    out.append(f"{p.name}: container name {c.get('name')!r} is not a DNS label")
                for port in c.get("ports") or []:
                    n = port.get("name")
                    if n is not None:
                        if len(n) > 15 or not IANA_SVC_NAME.match(n) or "--" in n or \
                                not re.search("[a-z]", n):
                            out.append(f"{p.name}: port name {n!r} is not an IANA service name")
                        if n in names:
                            out.append(f"{p.name}: port name {n!r} used twice")
                        names.add(n)
                    if not 1 <= (port.get("containerPort") or 0) <= 65535:
                        out.append(f"{p.name}: containerPort {port.get('containerPort')} out of range")
                for e in c.get("env") or []:
                    if not ENV_NAME.match(e.get("name") or ""):
                        out.append(f"{p.name}: env name {e.get('name')!r} is invalid")
        return out

    def check_labels(self):
        out = []
        for o in self.objs:
            labels = (o.get("metadata") or {}).get("labels") or {}
            for k in STD_LABELS:
                if k not in labels:
                    out.append(f"{ident(o)}: label {k} missing")
        for p in self.pods:
            for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"):
                if k not in p.labels:
                    out.append(f"{p.name}: pod label {k} missing")
        return out

    # ---- selectors and ports

    def check_selectors(self):
        out = []
        workloads = [p for p in self.pods if p.owner.get("kind") in WORKLOAD_KINDS]
        for p in workloads:
            sel = (p.owner.get("spec") or {}).get("selector")
            if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
                out.append(f"{p.name}: empty selector")
                continue
            if not labels_match(sel, p.labels):
                out.append(f"{p.name}: selector {sel} does not match its pod labels {p.labels}")
            for q in self.pods:
                if q is not p and labels_match(sel, q.labels):
                    out.append(f"{p.name}: selector also matches the pods of {q.name}")
        for s in self.by_kind("Service"):
            sel = (s.get("spec") or {}).get("selector")
            if not sel:
                out.append(f"{ident(s)}: Service without a selector")
                continue
            matched = [p.name for p in workloads if labels_match({"matchLabels": sel}, p.labels)]
            if len(matched) != 1:
                out.append(f"{ident(s)}: selects {len(matched)} workloads ({matched}); want exactly 1")
        for pdb in self.by_kind("PodDisruptionBudget"):
            sel = (pdb.get("spec") or {}).get("selector")
            if not [p for p in workloads if labels_match(sel, p.labels)]:
                out.append(f"{ident(pdb)}: selects no pods")
            spec = pdb.get("spec") or {}
            if ("minAvailable" in spec) == ("maxUnavailable" in spec):
                out.append(f"{ident(pdb)}: set exactly one of minAvailable, maxUnavailable")
        for np in self.by_kind("NetworkPolicy"):
            sel = (np.get("spec") or {}).get("podSelector")
            if not [p for p in self.pods if labels_match(sel, p.labels)]:
                out.append(f"{ident(np)}: podSelector selects no pod of the release")
            for direction, peers_key in (("ingress", "from"), ("egress", "to")):
                for rule in (np.get("spec") or {}).get(direction) or []:
                    for peer in rule.get(peers_key) or []:
                        if "podSelector" in peer and "namespaceSelector" not in peer:
                            if not [p for p in self.pods if labels_match(peer["podSelector"], p.labels)]:
                                out.append(f"{ident(np)}: {direction} peer {peer} matches no pod")
        return out

    def selected_pods(self, service):
        sel = (service.get("spec") or {}).get("selector") or {}
        return [p for p in self.pods if p.owner.get("kind") in WORKLOAD_KINDS
                and labels_match({"matchLabels": sel}, p.labels)]

    def check_service_ports(self):
        out = []
        for s in self.by_kind("Service"):
            ports = (s.get("spec") or {}).get("ports") or []
            if not ports:
                out.append(f"{ident(s)}: no ports")
            if len(ports) > 1 and any(not p.get("name") for p in ports):
                out.append(f"{ident(s)}: several ports need names")
            for sp in ports:
                target = sp.get("targetPort", sp.get("port"))
                for p in self.selected_pods(s):
                    if p.resolve_port(target) is None:
                        out.append(f"{ident(s)}: port {sp.get('name')} targetPort {target!r} "
                                   f"is no container port of {p.name} ({sorted(p.ports())})")
                    else:
                        proto = sp.get("protocol", "TCP")
                        cp = p.ports()[p.resolve_port(target)]
                        if cp.get("protocol", "TCP") != proto:
                            out.append(f"{ident(s)}: port {sp.get('name')} protocol {proto} "
                                       f"!= container port protocol {cp.get('protocol')}")
        for ing in self.by_kind("Ingress"):
            for rule in (ing.get("spec") or {}).get("rules") or []:
                for path in ((rule.get("http") or {}).get("paths")) or []:
                    svc = ((path.get("backend") or {}).get("service")) or {}
                    s = self.find("Service", svc.get("name"))
                    if s is None:
                        out.append(f"{ident(ing)}: backend Service {svc.get('name')} not rendered")
                        continue
                    port = svc.get("port") or {}
                    if not [p for p in (s.get("spec") or {}).get("ports") or []
                            if p.get("name") == port.get("name") or p.get("port") == port.get("number")]:
                        out.append(f"{ident(ing)}: backend port {port} not on {ident(s)}")
        for sm in self.by_kind("ServiceMonitor"):
            sel = (sm.get("spec") or {}).get("selector")
            svcs = [s for s in self.by_kind("Service")
                    if labels_match(sel, (s.get("metadata") or {}).get("labels"))]
            if not svcs:
                out.append(f"{ident(sm)}: selects no Service")
            for ep in (sm.get("spec") or {}).get("endpoints") or []:
                for s in svcs:
                    if ep.get("port") not in [p.get("name") for p in (s.get("spec") or {}).get("ports") or []]:
                        out.append(f"{ident(sm)}: endpoint port {ep.get('port')!r} is not a port name of {ident(s)}")
        for pm in self.by_kind("PodMonitor"):
            pods = self.monitored_pods(pm)
            if not pods:
                out.append(f"{ident(pm)}: selects no pod")
            for ep in (pm.get("spec") or {}).get("podMetricsEndpoints") or []:
                for p in pods:
                    names = [q.get("name") for c in p.spec.get("containers") or [] for q in c.get("ports") or []]
                    if ep.get("port") not in names:
                        out.append(f"{ident(pm)}: endpoint port {ep.get('port')!r} is not a port name of "
                                   f"{p.name} ({names}): Prometheus would find no target there")
        return out

    def monitor_namespaces(self, mon):
        nsel = (mon.get("spec") or {}).get("namespaceSelector") or {}
        if nsel.get("any"):
            return None   # every namespace
        return set(nsel.get("matchNames") or [(mon.get("metadata") or {}).get("namespace")])

    def monitored_pods(self, pm):
        """The workload pods a PodMonitor selects."""
        nss = self.monitor_namespaces(pm)
        sel = (pm.get("spec") or {}).get("selector") or {}
        return [p for p in self.pods if p.owner.get("kind") in WORKLOAD_KINDS and
                (nss is None or p.namespace in nss) and labels_match(sel, p.labels)]

    def scrapes(self, pod):
        """(monitor, container port number, path) of every target the
        ServiceMonitors and PodMonitors make of a pod."""
        out = []
        for pm in self.by_kind("PodMonitor"):
            if any(q is pod for q in self.monitored_pods(pm)):
                for ep in (pm.get("spec") or {}).get("podMetricsEndpoints") or []:
                    out.append((ident(pm), pod.resolve_port(ep.get("port")), ep.get("path", "/metrics")))
        for sm in self.by_kind("ServiceMonitor"):
            nss = self.monitor_namespaces(sm)
            sel = (sm.get("spec") or {}).get("selector")
            for s in self.by_kind("Service"):
                md = s.get("metadata") or {}
                if (nss is not None and md.get("namespace") not in nss) or not labels_match(sel, md.get("labels")) \
                        or not any(q is pod for q in self.selected_pods(s)):
                    continue
                for ep in (sm.get("spec") or {}).get("endpoints") or []:
                    for sp in (s.get("spec") or {}).get("ports") or []:
                        if sp.get("name") == ep.get("port"):
                            out.append((f"{ident(sm)} (via {ident(s)})",
                                        pod.resolve_port(sp.get("targetPort", sp.get("port"))),
                                        ep.get("path", "/metrics")))
        return out

    # ---- probes

    def listen_port(self, c, flag):
        env = container_env(c)
        e = env.get("TASKMESH_" + flag.upper())
        if e and isinstance(e.get("value"), str):
            m = HOSTPORT.match(e["value"])
            if m:
                return int(m.group(2))
        return None

    def check_probes(self):
        out = []
        for p in self.pods:
            if p.owner.get("kind") == "Pod":
                continue  # the helm test Pod runs once
            for c in p.spec.get("containers") or []:
                where = f"{p.name}/{c.get('name')}"
                for kind in ("readinessProbe", "livenessProbe"):
                    probe = c.get(kind)
                    if not probe:
                        out.append(f"{where}: no {kind}")
                        continue
                    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if h in probe]
                    if len(handlers) != 1:
                        out.append(f"{where}: {kind} needs exactly one handler, has {handlers}")
                        continue
                    h = handlers[0]
                    if h in ("httpGet", "tcpSocket", "grpc"):
                        port = probe[h].get("port")
                        own = [q for q in c.get("ports") or []
                               if port == q.get("containerPort") or port == q.get("name")]
                        if not own:
                            out.append(f"{where}: {kind} port {port!r} is not a port of this container")
                    binary = COMPONENT_BINARY.get(p.component)
                    if binary in ("task_service", "worker"):
                        flag = "listen" if binary == "task_service" else "health_listen"
                        want = self.listen_port(c, flag)
                        # Readiness: grpc.health.v1 (it follows the Redis connection).
                        # Liveness: gRPC or a TCP check of the same port.
                        allowed = ("grpc",) if kind == "readinessProbe" else ("grpc", "tcpSocket")
                        if h not in allowed:
                            out.append(f"{where}: {kind} must be a native gRPC probe (grpc.health.v1)"
                                       if kind == "readinessProbe" else
                                       f"{where}: {kind} must be a gRPC or TCP probe of --{flag}")
                        elif p.resolve_port(probe[h].get("port")) != want:
                            out.append(f"{where}: {kind} {h} port {probe[h].get('port')} != "
                                       f"--{flag} port {want}")
                    elif binary == "api_gateway":
                        want = self.listen_port(c, "listen")
                        path = {"readinessProbe": "/readyz", "livenessProbe": "/healthz"}[kind]
                        if h != "httpGet":
                            out.append(f"{where}: {kind} must be an HTTP probe")
                        else:
                            if probe["httpGet"].get("path") != path:
                                out.append(f"{where}: {kind} path {probe['httpGet'].get('path')} != {path}")
                            num = p.resolve_port(probe["httpGet"].get("port"))
                            if num != want:
                                out.append(f"{where}: {kind} port {num} != --listen port {want}")
        return out

    # ---- security

    def check_security(self):
        allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                           "persistentVolumeClaim", "projected", "secret"}
        out = []
        for p in self.pods:
            spec = p.spec
            psc = spec.get("securityContext") or {}
            for f in ("hostNetwork", "hostPID", "hostIPC"):
                if spec.get(f):
                    out.append(f"{p.name}: {f} is not allowed")
            for v in spec.get("volumes") or []:
                kinds = set(v) - {"name"}
                if not kinds <= allowed_volumes:
                    out.append(f"{p.name}: volume {v.get('name')} of type {kinds - allowed_volumes}")
            if spec.get("automountServiceAccountToken") is not False:
                out.append(f"{p.name}: automountServiceAccountToken should be false (no API access needed)")
            for c in p.containers:
                where = f"{p.name}/{c.get('name')}"
                sc = c.get("securityContext") or {}
                eff = lambda k: sc.get(k, psc.get(k))  # noqa: E731
                if eff("runAsNonRoot") is not True:
                    out.append(f"{where}: runAsNonRoot must be true")
                if eff("runAsUser") == 0:
                    out.append(f"{where}: runAsUser 0")
                if sc.get("privileged"):
                    out.append(f"{where}: privileged")
                if sc.get("allowPrivilegeEscalation") is not False:
                    out.append(f"{where}: allowPrivilegeEscalation must be false")
                if sc.get("readOnlyRootFilesystem") is not True:
                    out.append(f"{where}: readOnlyRootFilesystem must be true")
                caps = sc.get("capabilities") or {}
                if "ALL" not in (caps.get("drop") or []):
                    out.append(f"{where}: capabilities must drop ALL")
                if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
                    out.append(f"{where}: adds capabilities {caps.get('add')}")
                seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    out.append(f"{where}: seccompProfile must be RuntimeDefault (is {seccomp})")
                for port in c.get("ports") or []:
                    if port.get("hostPort"):
                        out.append(f"{where}: hostPort")
        return out

    # ---- references

    def user_volume(self):
        """The gateway's descriptor-set volume the user provides (a Volume
        source without name), or None."""
        g = self.values.get("gateway") or {}
        vol = (g.get("descriptorSets") or {}).get("volume") if g.get("enabled") else None
        return vol or None

    def external_secrets(self):
        auth = (self.values.get("redis") or {}).get("auth") or {}
        vol = self.user_volume() or {}
        return {auth.get("existingSecret"), (vol.get("secret") or {}).get("secretName")} - {None, ""}

    def external_configmaps(self):
        vol = self.user_volume() or {}
        return {(vol.get("configMap") or {}).get("name")} - {None, ""}

    def check_references(self):
        out = []
        secrets = {(o.get("metadata") or {}).get("name"): o for o in self.by_kind("Secret")}
        cms = {(o.get("metadata") or {}).get("name"): o for o in self.by_kind("ConfigMap")}
        external = self.external_secrets()
        external_cms = self.external_configmaps()
        sas = {(o.get("metadata") or {}).get("name") for o in self.by_kind("ServiceAccount")}

        def secret_key(where, name, key):
            if name in secrets:
                if key not in (secrets[name].get("data") or {}) and \
                        key not in (secrets[name].get("stringData") or {}):
                    out.append(f"{where}: Secret {name} has no key {key!r}")
            elif name not in external:
                out.append(f"{where}: Secret {name!r} is neither rendered nor a declared existing Secret")

        for p in self.pods:
            vol_names = {v.get("name") for v in p.spec.get("volumes") or []}
            for tpl in (p.owner.get("spec") or {}).get("volumeClaimTemplates") or []:
                vol_names.add((tpl.get("metadata") or {}).get("name"))
            for v in p.spec.get("volumes") or []:
                if "configMap" in v and v["configMap"].get("name") not in cms and \
                        v["configMap"].get("name") not in external_cms:
                    out.append(f"{p.name}: volume {v['name']}: ConfigMap {v['configMap'].get('name')} not rendered")
                if "secret" in v and v["secret"].get("secretName") not in secrets and \
                        v["secret"].get("secretName") not in external:
                    out.append(f"{p.name}: volume {v['name']}: Secret {v['secret'].get('secretName')} not rendered")
            sa = p.spec.get("serviceAccountName")
            if sa and sa not in sas and sa != "default":
                out.append(f"{p.name}: ServiceAccount {sa} not rendered")
            for c in p.containers:
                where = f"{p.name}/{c.get('name')}"
                defined = []
                for e in c.get("env") or []:
                    for ref in VAR_REF.findall(str(e.get("value", ""))):
                        if ref not in defined:
                            out.append(f"{where}: env {e.get('name')} uses $({ref}) before "
                                       f"(or without) defining it: Kubernetes leaves it unexpanded")
                    vf = e.get("valueFrom") or {}
                    if "secretKeyRef" in vf:
                        secret_key(f"{where}: env {e.get('name')}", vf["secretKeyRef"].get("name"),
                                   vf["secretKeyRef"].get("key"))
                    if "configMapKeyRef" in vf:
                        ref = vf["configMapKeyRef"]
                        if ref.get("name") not in cms or ref.get("key") not in (cms[ref.get("name")].get("data") or {}):
                            out.append(f"{where}: env {e.get('name')}: ConfigMap key {ref} not rendered")
                    defined.append(e.get("name"))
                for arg in (c.get("command") or []) + (c.get("args") or []):
                    for ref in VAR_REF.findall(str(arg)):
                        if ref not in defined:
                            out.append(f"{where}: $({ref}) in command/args is not an env var")
                for m in c.get("volumeMounts") or []:
                    if m.get("name") not in vol_names:
                        out.append(f"{where}: volumeMount {m.get('name')} has no volume")
        for ta in self.by_kind("TriggerAuthentication"):
            for ref in (ta.get("spec") or {}).get("secretTargetRef") or []:
                secret_key(ident(ta), ref.get("name"), ref.get("key"))
        return out

    # ---- autoscaling

    def deployment_pod(self, name):
        for p in self.pods:
            if p.owner.get("kind") == "Deployment" and (p.owner.get("metadata") or {}).get("name") == name:
                return p
        return None

    def check_autoscaling(self):
        out = []
        scaled = {}
        watched = {}   # queue -> partitions its pools' triggers watch (the least over pools)
        for h in self.by_kind("HorizontalPodAutoscaler"):
            spec = h.get("spec") or {}
            ref = spec.get("scaleTargetRef") or {}
            p = self.deployment_pod(ref.get("name")) if ref.get("kind") == "Deployment" else None
            if p is None:
                out.append(f"{ident(h)}: target {ref} is not a rendered Deployment")
                continue
            scaled.setdefault(ref.get("name"), []).append(ident(h))
            if not 1 <= spec.get("minReplicas", 1) <= spec.get("maxReplicas", 0):
                out.append(f"{ident(h)}: need 1 <= minReplicas <= maxReplicas")
            if not ((spec.get("behavior") or {}).get("scaleDown")):
                out.append(f"{ident(h)}: no scale-down behavior")
            for m in spec.get("metrics") or []:
                res = m.get("resource") or {}
                if m.get("type") == "Resource" and (res.get("target") or {}).get("type") == "Utilization":
                    for c in p.spec.get("containers") or []:
                        if res.get("name") not in ((c.get("resources") or {}).get("requests") or {}):
                            out.append(f"{ident(h)}: {res.get('name')} utilization needs a "
                                       f"{res.get('name')} request on {p.name}/{c.get('name')}")
        for so in self.by_kind("ScaledObject"):
            spec = so.get("spec") or {}
            ref = spec.get("scaleTargetRef") or {}
            p = self.deployment_pod(ref.get("name"))
            if p is None or ref.get("kind", "Deployment") != "Deployment":
                out.append(f"{ident(so)}: target {ref} is not a rendered Deployment")
                continue
            scaled.setdefault(ref.get("name"), []).append(ident(so))
            if not 0 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100) or \
                    spec.get("maxReplicaCount", 100) < 1:
                out.append(f"{ident(so)}: need 0 <= minReplicaCount <= maxReplicaCount, maxReplicaCount >= 1")
            if not ((((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {})
                     .get("behavior") or {}).get("scaleDown")):
                out.append(f"{ident(so)}: no scale-down behavior")
            c = (p.spec.get("containers") or [{}])[0]
            env = container_env(c)
            queues = [q for q in str((env.get("TASKMESH_QUEUES") or {}).get("value", "")).split(",") if q]
            # Partitions the pool's triggers must watch per queue (1: the queue alone).
            limits = partition_limits(str((env.get("TASKMESH_PARTITION_LIMITS") or {}).get("value", "")))
            for q in queues:
                watched[q] = min(watched.get(q, 64), limits.get(q, 1))
            m = parse_redis(str((env.get("TASKMESH_REDIS") or {}).get("value", "")))
            lag_streams, pending_streams = set(), set()   # (queue, partition, suffix)
            # KEDA v2.21 pkg/scalers/redis_scaler.go redisConnectionInfo and
            # redis_streams_scaler.go redisStreamsMetadata: what each type reads.
            known = {"address", "host", "port", "usernameFromEnv", "passwordFromEnv", "stream",
                     "consumerGroup", "pendingEntriesCount", "streamLength", "lagCount",
                     "activationLagCount", "enableTLS", "unsafeSsl", "databaseIndex",
                     "addressFromEnv", "hostFromEnv", "portFromEnv"}
            # A cluster client has no database: KEDA's redis-cluster-streams
            # ignores databaseIndex, so the chart must not pretend to set one.
            known_cluster = (known - {"address", "host", "port", "databaseIndex", "addressFromEnv",
                                      "hostFromEnv", "portFromEnv"}) | {"addresses", "hosts", "ports",
                                                                        "addressesFromEnv", "hostsFromEnv",
                                                                        "portsFromEnv"}
            cluster = redis_cluster(self.values) or bool(m and m["seeds"])
            want_type = "redis-cluster-streams" if cluster else "redis-streams"
            for i, t in enumerate(spec.get("triggers") or []):
                md = t.get("metadata") or {}
                where = f"{ident(so)}: trigger {i}"
                if t.get("type") != want_type:
                    why = (" (redis.external.cluster: KEDA must use its cluster client)" if cluster
                           else "")
                    out.append(f"{where}: type {t.get('type')!r}, want {want_type}{why}")
                    continue
                for k in set(md) - (known_cluster if cluster else known):
                    out.append(f"{where}: unknown {want_type} metadata {k!r}")
                for k in ("lagCount", "activationLagCount", "pendingEntriesCount", "databaseIndex"):
                    if k in md and not re.match(r"^\d+$", str(md[k])):
                        out.append(f"{where}: {k} {md[k]!r} is not an integer string")
                if md.get("consumerGroup") != "workers":
                    out.append(f"{where}: consumerGroup {md.get('consumerGroup')!r}, want 'workers'")
                stream = md.get("stream", "")
                sm = STREAM_KEY.match(stream)
                if not sm or sm.group(1) not in queues:
                    out.append(f"{where}: stream {stream!r} is not taskmesh:{{QUEUE}}:stream (or "
                               f":stream:high, :stream:low, or of a partition {{QUEUE~P}}) of a queue "
                               f"the pool serves {queues}")
                elif int(sm.group(2) or 0) >= limits.get(sm.group(1), 1):
                    out.append(f"{where}: stream {stream!r} is of a partition the pool's "
                               f"--partition_limits ({limits.get(sm.group(1), 1)} for "
                               f"{sm.group(1)!r}) does not allow")
                key = (sm.group(1), int(sm.group(2) or 0), sm.group(3) or "") if sm else None
                if key and "lagCount" in md:
                    if key in lag_streams:
                        out.append(f"{where}: a second lagCount trigger on {stream}")
                    lag_streams.add(key)
                    if int(md.get("lagCount", "0") or 0) < 1:
                        out.append(f"{where}: lagCount must be >= 1")
                    if md.get("activationLagCount") != "0":
                        out.append(f"{where}: activationLagCount {md.get('activationLagCount')!r}: must be "
                                   f"\"0\" so that a single waiting task scales the pool up from zero")
                elif key and "pendingEntriesCount" in md:
                    if key in pending_streams:
                        out.append(f"{where}: a second pendingEntriesCount trigger on {stream}")
                    pending_streams.add(key)
                elif key:
                    out.append(f"{where}: neither lagCount nor pendingEntriesCount on {stream}")
                if m and cluster:
                    if md.get("addresses") != ",".join(m["hosts"]):
                        out.append(f"{where}: addresses {md.get('addresses')} != the workers' Redis "
                                   f"Cluster seeds {','.join(m['hosts'])}")
                elif m:
                    if md.get("address") != m["hosts"][0]:
                        out.append(f"{where}: address {md.get('address')} != the workers' Redis "
                                   f"{m['hosts'][0]}")
                    if md.get("databaseIndex", "0") != m["db"]:
                        out.append(f"{where}: databaseIndex {md.get('databaseIndex')} != the workers' db {m['db']}")
                if m:
                    if m["pw"]:
                        auth = self.find("TriggerAuthentication", (t.get("authenticationRef") or {}).get("name"))
                        pw = ((env.get("REDIS_PASSWORD") or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
                        refs = [(r.get("name"), r.get("key")) for r in ((auth or {}).get("spec") or {}).get("secretTargetRef") or []
                                if r.get("parameter") == "password"]
                        if (pw.get("name"), pw.get("key")) not in refs:
                            out.append(f"{where}: authenticationRef does not give KEDA the workers' "
                                       f"Redis password ({pw.get('name')}/{pw.get('key')})")
                else:
                    out.append(f"{where}: cannot read the workers' --redis URL")
            # Every priority has its own stream and consumer group: a stream
            # without triggers would leave its tasks waiting at zero pods.
            for q, partition, suffix in [(q, p, x) for q in queues for p in range(limits.get(q, 1))
                                         for x in STREAM_SUFFIXES]:
                part = q if partition == 0 else f"{q}~{partition}"
                stream = f"taskmesh:{{{part}}}:stream{suffix}"
                if (q, partition, suffix) not in lag_streams:
                    out.append(f"{ident(so)}: no lagCount trigger for {stream} (queue {q!r}): its "
                               f"tasks would not wake the pool")
                if (q, partition, suffix) not in pending_streams:
                    out.append(f"{ident(so)}: no pendingEntriesCount trigger for {stream} (queue "
                               f"{q!r}): the pool could go to zero while its tasks are in flight "
                               f"or waiting to be reclaimed")
        # The task_service must refuse to spread a queue over partitions no
        # trigger watches (UpdateQueue partitions): its limit per pool queue is
        # at most what every pool serving the queue watches.
        for p in self.pods_of("task-service") if watched else []:
            env = container_env((p.spec.get("containers") or [{}])[0])
            served = partition_limits(str((env.get("TASKMESH_PARTITION_LIMITS") or {}).get("value", "")))
            for q, k in sorted(watched.items()):
                if served.get(q, 64) > k:
                    out.append(f"{p.name}: --partition_limits lets queue {q!r} have "
                               f"{served.get(q, 64)} partitions but its pools' KEDA triggers watch {k}: "
                               f"tasks could wait where no trigger looks")
        for name, scalers in scaled.items():
            if len(scalers) > 1:
                out.append(f"Deployment/{name}: scaled by several autoscalers {scalers}")
            d = self.find("Deployment", name)
            if d and "replicas" in (d.get("spec") or {}):
                out.append(f"Deployment/{name}: sets replicas although {scalers[0]} owns the count "
                           f"(every upgrade would reset it)")
        for p in self.pods_of("worker"):
            if p.owner.get("kind") == "Deployment" and (p.owner.get("metadata") or {}).get("name") not in scaled:
                out.append(f"{p.name}: worker pool without an autoscaler")
        return out

    # ---- drain

    def check_drain(self):
        out = []
        for p in self.pods:
            if p.owner.get("kind") == "Pod":
                continue
            grace = p.spec.get("terminationGracePeriodSeconds", 30)
            for c in p.spec.get("containers") or []:
                pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
                sleep = 0
                if pre:
                    if len(pre) == 2 and pre[0].endswith("sleep") and re.match(r"^\d+$", str(pre[1])):
                        sleep = int(pre[1])
                    else:
                        out.append(f"{p.name}: preStop {pre} is not a plain sleep")
                if p.component in ("worker", "api-gateway"):
                    # Both drain on SIGTERM for --drain_timeout (the gateway
                    # then waits up to 5 s for cancelled upstream calls).
                    env = container_env(c)
                    drain = parse_duration((env.get("TASKMESH_DRAIN_TIMEOUT") or {}).get("value"))
                    what = "worker" if p.component == "worker" else "gateway"
                    cut = "a task mid-run" if p.component == "worker" else "requests mid-drain"
                    if drain is None:
                        out.append(f"{p.name}: no valid --drain_timeout (TASKMESH_DRAIN_TIMEOUT)")
                        continue
                    if not pre:
                        out.append(f"{p.name}: {what} without a preStop hook")
                    if grace < sleep + drain + 5:
                        out.append(f"{p.name}: terminationGracePeriodSeconds {grace} < preStop {sleep}s + "
                                   f"drain {drain:g}s + 5s margin: SIGKILL could cut {cut}")
                elif grace < sleep + 5:
                    out.append(f"{p.name}: terminationGracePeriodSeconds {grace} leaves < 5s after preStop {sleep}s")
        return out

    # ---- network policies

    def np_selects(self, np, pod):
        return (pod.namespace == (np.get("metadata") or {}).get("namespace")
                and pod.ip is None and labels_match((np.get("spec") or {}).get("podSelector"), pod.labels))

    def peer_matches(self, peer, np_ns, pod):
        if "ipBlock" in peer:
            if pod.ip is None:
                return False
            net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            ip = ipaddress.ip_address(pod.ip)
            return ip in net and not any(ip in ipaddress.ip_network(x) for x in peer["ipBlock"].get("except") or [])
        if pod.ip is not None:
            return False
        ns_labels = {"kubernetes.io/metadata.name": pod.namespace}
        ns_labels.update(getattr(pod, "ns_labels", {}))
        if "namespaceSelector" in peer:
            if not labels_match(peer["namespaceSelector"], ns_labels) and peer["namespaceSelector"] != {}:
                return False
        elif pod.namespace != np_ns:
            return False
        if "podSelector" in peer:
            return labels_match(peer["podSelector"], pod.labels) or peer["podSelector"] == {}
        return True

    def port_matches(self, rule, port, proto, dst):
        ports = rule.get("ports")
        if not ports:
            return True
        for rp in ports:
            if rp.get("protocol", "TCP") != proto:
                continue
            want = rp.get("port")
            if want is None:
                return True
            if isinstance(want, str):
                want = dst.resolve_port(want)
            if want == port or (rp.get("endPort") and want <= port <= rp["endPort"]):
                return True
        return False

    def allowed(self, src, dst, port, proto="TCP"):
        nps = self.by_kind("NetworkPolicy")

        def side(pod, direction, other):
            policies = [np for np in nps if self.np_selects(np, pod) and
                        direction.capitalize() in ((np.get("spec") or {}).get("policyTypes") or ["Ingress"])]
            if not policies:
                return True
            for np in policies:
                for rule in (np.get("spec") or {}).get(direction) or []:
                    peers = rule.get("from" if direction == "ingress" else "to")
                    if peers is not None and peers != [] and not any(
                            self.peer_matches(pe, (np.get("metadata") or {}).get("namespace"), other) for pe in peers):
                        continue
                    if self.port_matches(rule, port, proto, dst):
                        return True
            return False

        return side(src, "egress", dst) and side(dst, "ingress", src)

    def check_network(self):
        v = self.values
        if not (v.get("networkPolicy") or {}).get("enabled"):
            return []
        out = []
        deny = [np for np in self.by_kind("NetworkPolicy")
                if not (np.get("spec") or {}).get("ingress") and not (np.get("spec") or {}).get("egress")
                and set((np.get("spec") or {}).get("policyTypes") or []) == {"Ingress", "Egress"}]
        if not deny:
            out.append("no default-deny NetworkPolicy (both policy types, no rules)")
        for p in self.pods:
            if not any(self.np_selects(np, p) for np in deny):
                out.append(f"{p.name}: not covered by the default-deny policy")

        def one(component):
            pods = self.pods_of(component)
            return pods[0] if pods else None

        gw, ts, redis, test = one("api-gateway"), one("task-service"), one("redis"), one("test")
        workers = [p for p in self.pods_of("worker")]
        dns = Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"},
                  {"containers": [{"ports": [{"containerPort": 53, "protocol": "UDP"},
                                             {"containerPort": 53, "protocol": "TCP"}]}]})
        outsider = Pod("outsider", "somewhere-else", {"app": "curious"})
        internet = Pod("internet", None, {}, ip="203.0.113.7")
        keda = Pod("keda-operator", (v.get("keda") or {}).get("operatorNamespace", "keda"),
                   {"app": "keda-operator"})
        ts_port = (v.get("taskService") or {}).get("port")
        gw_port = (v.get("gateway") or {}).get("port")
        external = (v.get("redis") or {}).get("mode") == "external"
        must, must_not = [], []
        # Prometheus: where serviceMonitor.prometheusFrom says it runs.
        monitoring = v.get("serviceMonitor") or {}
        prom_peers = monitoring.get("prometheusFrom") or []
        prom = self.peer_pod(prom_peers[0], "prometheus") if prom_peers else \
            Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
        for p in ([ts] if ts else []) + workers:
            mport = self.listen_port(p.spec["containers"][0], "metrics_listen")
            if not mport:
                continue
            if monitoring.get("enabled"):
                must.append((prom, p, mport, "TCP"))
                if prom_peers:
                    must_not.append((outsider, p, mport, "TCP"))
            else:
                # As for the gateway: Prometheus is let in with the monitors.
                must_not.append((prom, p, mport, "TCP"))
        if gw and monitoring.get("enabled") and prom_peers:
            must.append((prom, gw, gw_port, "TCP"))
        if gw:
            must += [(test, gw, gw_port, "TCP"), (gw, ts, ts_port, "TCP"), (gw, dns, 53, "UDP")]
            must_not += [(gw, redis, 6379, "TCP")]
            if not (v.get("gateway") or {}).get("extraEgress"):
                must_not.append((gw, internet, 443, "TCP"))
            for w in workers:
                must_not.append((w, gw, gw_port, "TCP"))
            if not (v.get("networkPolicy") or {}).get("gatewayFrom"):
                must.append((outsider, gw, gw_port, "TCP"))
            else:
                must_not.append((outsider, gw, gw_port, "TCP"))
        must += [(ts, dns, 53, "UDP"), (ts, dns, 53, "TCP")]
        must_not += [(outsider, ts, ts_port, "TCP"), (ts, internet, 443, "TCP")]
        if test:
            must_not += [(test, ts, ts_port, "TCP"), (test, redis, 6379, "TCP")]
        for w in workers:
            must += [(w, dns, 53, "UDP")]
            must_not += [(w, ts, ts_port, "TCP"), (outsider, w, 8081, "TCP")]
            if not self.pool_of(w).get("extraEgress"):
                must_not.append((w, internet, 443, "TCP"))
        if external:
            url = (v.get("redis") or {}).get("external", {}).get("url", "")
            m = re.match(r"^redis://([^/:]+)(:(\d+))?", url)
            ports = [int(m.group(3) or 6379) if m else 6379]
            if redis_cluster(v):   # every seed's port (the nodes listen on them)
                ports = sorted({int(a.rsplit(":", 1)[1]) for a in cluster_addresses(v)})
            peers = (v.get("redis") or {}).get("external", {}).get("networkPolicyPeers") or []
            ext = Pod("external-redis", "data", {})
            if peers and "namespaceSelector" in peers[0]:
                ext.namespace = (peers[0]["namespaceSelector"].get("matchLabels") or {}).get(
                    "kubernetes.io/metadata.name", "data")
                ext.labels = (peers[0].get("podSelector") or {}).get("matchLabels") or {}
            ext.spec = {"containers": [{"ports": [{"containerPort": port} for port in ports]}]}
            for port in ports:
                must += [(ts, ext, port, "TCP")] + [(w, ext, port, "TCP") for w in workers]
                must_not += [(gw, ext, port, "TCP")]
        elif redis:
            must += [(ts, redis, 6379, "TCP")] + [(w, redis, 6379, "TCP") for w in workers]
            must_not += [(outsider, redis, 6379, "TCP"), (redis, ts, ts_port, "TCP"),
                         (redis, internet, 443, "TCP")]
            if (v.get("keda") or {}).get("enabled"):
                must.append((keda, redis, 6379, "TCP"))
        for src, dst, port, proto in must:
            if src and dst and not self.allowed(src, dst, port, proto):
                out.append(f"needed flow denied: {src.name} -> {dst.name}:{port}/{proto}")
        for src, dst, port, proto in must_not:
            if src and dst and self.allowed(src, dst, port, proto):
                out.append(f"unneeded flow allowed: {src.name} -> {dst.name}:{port}/{proto}")
        return out

    def peer_pod(self, peer, name):
        """A pod standing for a NetworkPolicy peer (namespaceSelector,
        podSelector or ipBlock)."""
        if "ipBlock" in peer:
            net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            return Pod(name, None, {}, ip=str(net.network_address + (1 if net.num_addresses > 1 else 0)))
        ns_labels = ((peer.get("namespaceSelector") or {}).get("matchLabels")) or {}
        ns = ns_labels.get("kubernetes.io/metadata.name", "monitoring") if "namespaceSelector" in peer else self.ns
        pod = Pod(name, ns, ((peer.get("podSelector") or {}).get("matchLabels")) or
                  {"app.kubernetes.io/name": name})
        pod.ns_labels = dict(ns_labels)
        return pod

    # ---- metrics

    def check_metrics(self):
        v = self.values
        monitoring = v.get("serviceMonitor") or {}
        enabled = monitoring.get("enabled")
        host = v.get("listenHost", "0.0.0.0")
        out = []
        monitors = self.by_kind("ServiceMonitor") + self.by_kind("PodMonitor")
        if not enabled:
            out += [f"{ident(m)}: rendered although serviceMonitor.enabled is false" for m in monitors]
        for p in self.pods:
            binary = COMPONENT_BINARY.get(p.component)
            if not binary or p.owner.get("kind") not in WORKLOAD_KINDS:
                continue
            c = (p.spec.get("containers") or [{}])[0]
            where = f"{p.name}/{c.get('name')}"
            if binary in ("task_service", "worker"):
                if binary == "task_service":
                    cfg, key, other = v.get("taskService") or {}, "taskService.metricsPort", "listen"
                else:
                    pool = p.labels.get("taskmesh.io/pool")
                    cfg, key, other = self.pool_of(p), f"workers.pools[{pool}].metricsPort", "health_listen"
                want_port = int(cfg.get("metricsPort") or 0)
                want = f"{host}:{want_port}" if want_port else ""
                got = (container_env(c).get("TASKMESH_METRICS_LISTEN") or {}).get("value")
                if got != want:
                    out.append(f"{where}: --metrics_listen is {got!r}, but {key} says {want!r}")
                port = self.listen_port(c, "metrics_listen")
                named = [q for q in c.get("ports") or [] if q.get("name") == "metrics"]
                if port:
                    if len(named) != 1 or named[0].get("containerPort") != port or \
                            named[0].get("protocol", "TCP") != "TCP":
                        found = [q.get("containerPort") for q in named]
                        out.append(f"{where}: container port 'metrics' {found} != --metrics_listen port {port}")
                    if self.listen_port(c, other) == port:
                        out.append(f"{where}: --metrics_listen and --{other} both use port {port}")
                elif named:
                    out.append(f"{where}: a container port 'metrics' although --metrics_listen is off")
            else:
                port = self.listen_port(c, "listen")   # the gateway's /metrics is on --listen
            targets = self.scrapes(p)
            if enabled and port:
                good = [t for t in targets if t[1] == port and t[2] == "/metrics"]
                if not good:
                    out.append(f"{p.name}: /metrics on port {port} is scraped by no ServiceMonitor or "
                               f"PodMonitor although serviceMonitor.enabled")
                elif len(good) > 1:
                    out.append(f"{p.name}: /metrics scraped {len(good)} times: {[t[0] for t in good]}")
            for mon, tport, path in targets:
                if tport != port or path != "/metrics":
                    out.append(f"{p.name}: {mon} scrapes {path} on port {tport}, not /metrics on port {port}")
        return out

    def pool_of(self, pod):
        name = pod.labels.get("taskmesh.io/pool")
        w = self.values.get("workers") or {}
        for pool in w.get("pools") or []:
            if pool.get("name") == name:
                return deep_merge({k: v for k, v in w.items() if k != "pools"}, pool)
        return {}

    # ---- flags

    def mounted_file(self, c, path):
        """(content, None) of the file at `path` in container c, read from the
        ConfigMap or Secret volume mounted there (str, or bytes for a
        ConfigMap's binaryData); (UserFile, None) when it lies on the volume
        the values declare as the user's own; (None, why) when the path is not
        such a file (the container would find nothing there)."""
        if not isinstance(path, str) or not path.startswith("/"):
            return None, f"{path!r} is not an absolute path"
        pod = next((p for p in self.pods if c in (p.spec.get("containers") or [])), None)
        volumes = {v.get("name"): v for v in ((pod.spec if pod else {}).get("volumes") or [])}
        user = self.user_volume()
        for m in c.get("volumeMounts") or []:
            mp = (m.get("mountPath") or "").rstrip("/")
            if m.get("subPath"):
                if path != mp:
                    continue
                rel = m["subPath"]
            elif path.startswith(mp + "/"):
                rel = path[len(mp) + 1:]
            else:
                continue
            v = volumes.get(m.get("name")) or {}
            if user is not None and {k: x for k, x in v.items() if k != "name"} == user:
                return UserFile(m.get("name"), rel), None
            src = v.get("configMap") or v.get("secret")
            if src is None:
                return None, f"{path} is on volume {m.get('name')!r}, which is no ConfigMap or Secret"
            kind = "ConfigMap" if "configMap" in v else "Secret"
            name = src.get("name") if kind == "ConfigMap" else src.get("secretName")
            items = src.get("items")
            key = rel
            if items:
                key = next((i.get("key") for i in items if i.get("path") == rel), None)
                if key is None:
                    return None, f"{path}: no item of {kind} {name} is projected at {rel!r}"
            obj = self.find(kind, name)
            if obj is None:
                return None, f"{path}: {kind} {name} is not rendered"
            data = obj.get("data") or {}
            if kind == "Secret" and key in data:
                return base64.b64decode(data[key]).decode(), None
            if key in data:
                return data[key], None
            if key in (obj.get("stringData") or {}):
                return obj["stringData"][key], None
            if kind == "ConfigMap" and key in (obj.get("binaryData") or {}):
                return base64.b64decode(obj["binaryData"][key]), None
            return None, f"{path}: {kind} {name} has no key {key!r}"
        return None, f"{path} is on no ConfigMap or Secret volume mounted in the container"

    def chart_flags(self, c):
        """(flag, value, how) for every flag the chart passes to container c."""
        out = []
        for e in c.get("env") or []:
            n = e.get("name", "")
            if n.startswith("TASKMESH_"):
                val = e.get("value")
                if "valueFrom" in e:
                    val = ("valueFrom", json.dumps(e["valueFrom"], sort_keys=True))
                out.append((n[len("TASKMESH_"):].lower(), val, f"env {n}"))
        for a in c.get("args") or []:
            if not str(a).startswith("--"):
                out.append((None, a, f"arg {a!r} is not a --flag=value"))
                continue
            name, _, val = str(a)[2:].partition("=")
            out.append((name, val, f"arg {a}"))
        return out

    # Value forms (flags-contract.json): s -> a problem, or None.
    FORMS = {
        "hostport": hostport_problem,
        # IPV4:PORT, or empty: that server is off (--metrics_listen binds IPv4 only).
        "ipv4port_or_empty": lambda s: None if s == "" or (IPV4PORT.match(s) and not hostport_problem(s))
        else "not IPV4:PORT (e.g. 0.0.0.0:9464) or empty",
        "duration": lambda s: None if parse_duration(s) is not None else "not a duration (e.g. 30s, 1m)",
        "int": lambda s: None if re.match(r"^\d+$", s) and 1 <= int(s) < 2 ** 31 else "not a whole number >= 1",
        # 0 means "auto" (e.g. one per core).
        "int_auto": lambda s: None if re.match(r"^\d+$", s) and int(s) < 2 ** 31 else "not a whole number >= 0",
        "bool": lambda s: None if s in ("true", "false") else "not true or false",
        "list": lambda s: None if re.match(r"^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$", s) else "not NAME,NAME,...",
        "redis_url": lambda s: None if parse_redis(s) else
        "not redis://[:PASSWORD@]HOST:PORT[/DB] or a seed list redis://[:PASSWORD@]HOST:PORT,HOST:PORT,...",
        "target": lambda s: None if TARGET.match(s) else "not HOST:PORT or dns:///NAME:PORT",
        # Comma-separated lists; empty means none.
        "origins": lambda s: next((f"{x!r} is neither * nor an origin (https://HOST[:PORT])"
                                   for x in comma_list(s) if not ORIGIN.match(x)), None),
        "routes": lambda s: next((f"{x!r} is not package.Service=HOST:PORT or =dns:///NAME:PORT"
                                  for x in comma_list(s) if not ROUTE.match(x) or
                                  not TARGET.match(ROUTE.match(x).group("target"))), None),
        # QUEUE=K,... with K from 1 to 64 (broker/partitions.h); empty: none.
        "partition_limits": lambda s: next((f"{x!r} is not QUEUE=K (K from 1 to 64)"
                                            for x in comma_list(s)
                                            if not re.match(r"^[A-Za-z0-9_-]{1,64}=([1-9]|[1-5][0-9]|6[0-4])$", x)),
                                           None),
        "string": lambda s: None,
        "file": lambda s: None,    # the files: below
        "files": lambda s: None,
    }

    def check_flags(self):
        out = []
        for p in self.pods:
            binary = COMPONENT_BINARY.get(p.component)
            if not binary:
                continue
            spec = BINARIES[binary]
            accepted = set(self.help_flags.get(binary) or spec["flags"])
            for c in p.spec.get("containers") or []:
                where = f"{p.name}/{c.get('name')}"
                if c.get("command"):
                    out.append(f"{where}: overrides the image's entrypoint (command)")
                passed = {}
                for name, val, how in self.chart_flags(c):
                    if name is None:
                        out.append(f"{where}: {how}")
                        continue
                    if name not in accepted:
                        src = "--help" if binary in self.help_flags else "the flag contract"
                        out.append(f"{where}: {how}: {binary} has no flag --{name} (per {src})")
                        continue
                    if name in passed:
                        out.append(f"{where}: --{name} passed twice")
                    passed[name] = val
                    kind = spec["flags"].get(name)
                    if isinstance(val, tuple):
                        if name != "consumer":
                            out.append(f"{where}: {how} comes from {val[1]}; only --consumer may")
                        continue
                    if not isinstance(val, str):
                        out.append(f"{where}: {how}: value {val!r} is not a string")
                        continue
                    if kind not in self.FORMS:
                        out.append(f"{where}: --{name}: unknown value form {kind!r} in flags-contract.json")
                        continue
                    bad = self.FORMS[kind](val)
                    if bad:
                        out.append(f"{where}: {how}: {val!r} is not a valid {kind}: {bad}")
                    if kind in ("file", "files"):
                        paths = [val] if kind == "file" else comma_list(val)
                        for f in paths:
                            _, why = self.mounted_file(c, f)
                            if why:
                                out.append(f"{where}: {how}: the binary reads a file there, but {why}")
                # Every flag of the contract is set from values: none is left
                # at the binary's default without the chart saying so.
                for r in spec["flags"]:
                    if r not in passed:
                        out.append(f"{where}: flag --{r} is set by no value (flags-contract.json "
                                   f"lists it; the chart must pass it)")
        return out

    # ---- flag documentation

    def check_flag_docs(self):
        out = []
        docs = {"deploy/helm/taskmesh/values.yaml": os.path.join(ROOT, "deploy/helm/taskmesh/values.yaml"),
                "docs/deploy.md": os.path.join(ROOT, "docs/deploy.md")}
        for label, path in docs.items():
            try:
                text = open(path).read()
            except OSError as e:
                out.append(f"{label}: {e}")
                continue
            for binary, spec in sorted(BINARIES.items()):
                for flag in spec["flags"]:
                    if not re.search(r"--" + re.escape(flag) + r"\b", text):
                        out.append(f"{label} does not document --{flag} ({binary})")
        return out

    # ---- the gateway's values

    @staticmethod
    def flag_text(form, v):
        """How the chart writes value v of the given form."""
        if form == "bool":
            return "true" if v is True else "false" if v is False else repr(v)
        if form in ("int", "int_auto"):
            return str(int(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)
        if form == "origins":
            return ",".join(v or [])
        if form == "routes":
            return ",".join(f"{k}={t}" for k, t in sorted((v or {}).items()))
        return str(v)

    def check_gateway(self):
        g = self.values.get("gateway") or {}
        pods = self.pods_of("api-gateway")
        if not g.get("enabled"):
            return [f"{p.name}: rendered although gateway.enabled is false" for p in pods]
        if len(pods) != 1:
            return [f"want one api-gateway Deployment, found {len(pods)}"]
        p = pods[0]
        c = (p.spec.get("containers") or [{}])[0]
        env = {k: (e or {}).get("value") for k, e in container_env(c).items()}
        spec = BINARIES["api_gateway"]
        out = []
        # Flags that carry one value each.
        for flag, key in spec.get("values", {}).items():
            form = spec["flags"][flag]
            if key not in g:
                out.append(f"values.gateway has no {key} (for --{flag})")
                continue
            want = f"{int(g[key])}s" if key.endswith("Seconds") else self.flag_text(form, g[key])
            got = env.get("TASKMESH_" + flag.upper())
            if got != want:
                out.append(f"--{flag} is {got!r}, but gateway.{key} says {want!r}")
        unmapped = set(spec["flags"]) - set(spec.get("values", {})) - {"listen", "upstream", "descriptor_set"}
        for flag in sorted(unmapped):
            out.append(f"--{flag}: flags-contract.json maps it to no gateway value (\"values\")")
        # --listen: the container port the Service and probes use.
        port = self.listen_port(c, "listen")
        if port != g.get("port") or p.resolve_port("http") != port:
            out.append(f"--listen port {port} != gateway.port {g.get('port')} / the http container port")
        # --upstream: by default the task service's headless Service, balanced.
        up = env.get("TASKMESH_UPSTREAM")
        if g.get("upstream"):
            if up != g["upstream"]:
                out.append(f"--upstream {up!r} != gateway.upstream {g['upstream']!r}")
        else:
            m = re.match(r"^dns:///([^.]+)\.([^.]+)\.svc\.[^:]+:(\d+)$", str(up))
            svc = self.find("Service", m.group(1)) if m else None
            if not svc or (svc.get("spec") or {}).get("clusterIP") != "None" or \
                    not [q for q in self.selected_pods(svc) if q.component == "task-service"] or \
                    int(m.group(3)) not in [x.get("port") for x in (svc.get("spec") or {}).get("ports") or []]:
                out.append(f"--upstream {up!r} is not dns:/// of the task service's headless Service "
                           f"and port (calls would not spread over its pods)")
        # Grace period: preStop + drain + margin, as the values say.
        want_grace = int(g.get("preStopSleepSeconds", 0)) + int(g.get("drainTimeoutSeconds", 0)) + \
            int(g.get("terminationGraceMarginSeconds", 0))
        if p.spec.get("terminationGracePeriodSeconds") != want_grace:
            out.append(f"terminationGracePeriodSeconds {p.spec.get('terminationGracePeriodSeconds')} != "
                       f"preStopSleepSeconds + drainTimeoutSeconds + terminationGraceMarginSeconds ({want_grace})")
        # Descriptor sets: exactly the files of the values, mounted read-only.
        ds = g.get("descriptorSets") or {}
        binary = {k: re.sub(r"\s+", "", str(v)) for k, v in (ds.get("binaryData") or {}).items()}
        files = comma_list(env.get("TASKMESH_DESCRIPTOR_SET") or "")
        chart_files, user_files = {}, []
        mounts = {m.get("mountPath", "").rstrip("/"): m for m in c.get("volumeMounts") or []}
        for f in files:
            content, why = self.mounted_file(c, f)
            if why:
                continue  # reported by the flags check
            mount = next((m for mp, m in mounts.items() if f.startswith(mp + "/")), {})
            if not mount.get("readOnly"):
                out.append(f"--descriptor_set {f}: its volume {mount.get('name')!r} is not mounted readOnly")
            if isinstance(content, UserFile):
                user_files.append(content.path)
            else:
                chart_files[os.path.basename(f)] = content
        if sorted(chart_files) != sorted(binary):
            out.append(f"--descriptor_set has the chart's files {sorted(chart_files)}, "
                       f"gateway.descriptorSets.binaryData {sorted(binary)}")
        for k, content in chart_files.items():
            if k in binary and content != base64.b64decode(binary[k]):
                out.append(f"--descriptor_set {k}: the ConfigMap does not hold the bytes of binaryData.{k}")
            if not isinstance(content, bytes):
                out.append(f"--descriptor_set {k}: in data, not binaryData (a descriptor set is binary)")
        want_user = [str(x).lstrip("/") for x in ds.get("volumeFiles") or []]
        if user_files != want_user:
            out.append(f"--descriptor_set has the volume's files {user_files}, "
                       f"gateway.descriptorSets.volumeFiles {want_user}")
        if g.get("taskmeshProtos") is False and not files:
            out.append("--taskmesh_protos=false without --descriptor_set: nothing to serve")
        ann = ((p.owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
        if binary:
            digest = hashlib.sha256(json.dumps(binary, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            if ann.get(DESCRIPTOR_ANNOTATION) != digest:
                out.append(f"pod annotation {DESCRIPTOR_ANNOTATION} != sha256 of binaryData: pods would "
                           f"keep serving the old descriptor sets after an upgrade")
        return out

    # ---- periodic tasks

    def check_periodic(self):
        want = self.values.get("periodicTasks") or []
        workers = [p for p in self.pods_of("worker") if p.owner.get("kind") == "Deployment"]
        if not workers:
            return []
        out = []
        served = set()
        for p in workers:
            served |= set(str(container_env(p.spec["containers"][0]).get("TASKMESH_QUEUES", {})
                              .get("value", "")).split(","))
        for p in workers:
            c = p.spec["containers"][0]
            e = container_env(c).get("TASKMESH_PERIODIC_CONFIG")
            if not e:
                if want:
                    out.append(f"{p.name}: no --periodic_config although values.periodicTasks has "
                               f"{len(want)} entries")
                continue
            text, why = self.mounted_file(c, e.get("value"))
            if why:
                out.append(f"{p.name}: --periodic_config: {why}")
                continue
            try:
                cfg = json.loads(text)
            except ValueError as err:
                out.append(f"{p.name}: --periodic_config is not JSON: {err}")
                continue
            tasks = cfg.get("periodicTasks", cfg.get("periodic_tasks")) if isinstance(cfg, dict) else None
            if not isinstance(tasks, list) or set(cfg) - {"periodicTasks", "periodic_tasks"}:
                out.append(f"{p.name}: --periodic_config is not {{\"periodicTasks\": [...]}}: {text[:200]}")
                continue
            if tasks != json.loads(json.dumps(want)):
                out.append(f"{p.name}: --periodic_config holds {len(tasks)} periodic tasks that differ "
                           f"from values.periodicTasks ({len(want)})")
            seen = set()
            for i, t in enumerate(tasks):
                w = f"{p.name}: periodicTasks[{i}]"
                if not isinstance(t, dict):
                    out.append(f"{w}: not an object")
                    continue
                for k in set(t) - {"name", "queue", "schedule", "task"}:
                    out.append(f"{w}: unknown field {k!r} (taskmesh.v1.PeriodicTask)")
                if not PERIODIC_NAME.match(str(t.get("name", ""))):
                    out.append(f"{w}: name {t.get('name')!r} is not 1-64 characters of [A-Za-z0-9_-]")
                if (t.get("queue"), t.get("name")) in seen:
                    out.append(f"{w}: name {t.get('name')!r} twice on queue {t.get('queue')!r}")
                seen.add((t.get("queue"), t.get("name")))
                if t.get("queue") not in served:
                    out.append(f"{w}: queue {t.get('queue')!r} is served by no worker pool {sorted(served)}")
                sched = str(t.get("schedule", ""))
                if sched.startswith("@every "):
                    if (parse_duration(sched[len("@every "):]) or 0) < 1:
                        out.append(f"{w}: schedule {sched!r}: @every needs a duration of at least 1s")
                elif len(sched.split()) != 5 or not all(CRON_FIELD.match(f) for f in sched.split()):
                    out.append(f"{w}: schedule {sched!r} is neither five cron fields nor @every DURATION")
                if not isinstance(t.get("task"), dict) or not t["task"].get("type"):
                    out.append(f"{w}: task.type is required")
            # The worker reads the file at start: a change must roll the pods.
            ann = ((p.owner.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}
            digest = hashlib.sha256(text.encode()).hexdigest()
            if ann.get(PERIODIC_ANNOTATION) != digest:
                out.append(f"{p.name}: pod annotation {PERIODIC_ANNOTATION} != sha256 of the periodic "
                           f"config: pods would keep the old tasks after an upgrade")
        # A tick missed while no worker runs is skipped: some worker must
        # always run (KEDA pools scale to zero; a CPU HPA never does).
        if want:
            always = []
            for p in workers:
                name = (p.owner.get("metadata") or {}).get("name")
                so = self.find("ScaledObject", name)
                h = self.find("HorizontalPodAutoscaler", name)
                if so is not None:
                    if ((so.get("spec") or {}).get("minReplicaCount") or 0) >= 1:
                        always.append(name)
                elif h is not None and ((h.get("spec") or {}).get("minReplicas") or 1) >= 1:
                    always.append(name)
            if not always:
                out.append("periodic tasks but no worker pool runs at all times (minReplicas >= 1): "
                           "their ticks would be skipped while every pool is at zero")
        return out

    # ---- redis

    def check_redis(self):
        v = self.values.get("redis") or {}
        out = []
        sts = [o for o in self.by_kind("StatefulSet")
               if (((o.get("metadata") or {}).get("labels")) or {}).get("app.kubernetes.io/component") == "redis"]
        if v.get("mode") == "external" and redis_cluster(self.values):
            if sts:
                out.append("external Redis mode but a Redis StatefulSet is rendered")
            want = cluster_addresses(self.values)
            if not want:
                out.append("redis.external.cluster without redis.external.addresses rendered")
            for p in self.pods_of("task-service") + self.pods_of("worker"):
                e = container_env((p.spec.get("containers") or [{}])[0])
                url = str((e.get("TASKMESH_REDIS") or {}).get("value"))
                r = parse_redis(url)
                if not r or r["hosts"] != want or (len(want) > 1 and not r["seeds"]):
                    out.append(f"{p.name}: --redis {url} is not the seed list of redis.external.addresses "
                               f"{','.join(want)}")
                elif r["db"] != "0":
                    out.append(f"{p.name}: --redis {url} selects database {r['db']}: a cluster has only 0")
                secret = (v.get("auth") or {}).get("existingSecret")
                ref = (e.get("REDIS_PASSWORD") or {}).get("valueFrom", {}).get("secretKeyRef") or {}
                if secret and (ref.get("name") != secret or not r or r["pw"] != "$(REDIS_PASSWORD)"):
                    out.append(f"{p.name}: the Redis password does not come from Secret {secret} "
                               f"into --redis ({ref}, {url})")
            return out
        if v.get("mode") == "external":
            if sts:
                out.append("external Redis mode but a Redis StatefulSet is rendered")
            for p in self.pods_of("task-service") + self.pods_of("worker"):
                url = str(container_env((p.spec.get("containers") or [{}])[0]).get("TASKMESH_REDIS", {}).get("value"))
                want = v.get("external", {}).get("url", "").replace("redis://", "")
                host = re.sub(r"/.*$", "", want)
                if host not in url:
                    out.append(f"{p.name}: --redis {url} does not point at redis.external.url {want}")
            return out
        if len(sts) != 1:
            return [f"internal Redis mode: want one Redis StatefulSet, found {len(sts)}"]
        s = sts[0]
        spec = s.get("spec") or {}
        tpl = (spec.get("template") or {}).get("spec") or {}
        c = (tpl.get("containers") or [{}])[0]
        claims = {(t.get("metadata") or {}).get("name"): t for t in spec.get("volumeClaimTemplates") or []}
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
        cm = None
        for vol in tpl.get("volumes") or []:
            if "configMap" in vol and mounts.get("/etc/redis") == vol.get("name"):
                cm = self.find("ConfigMap", vol["configMap"].get("name"))
        conf = ((cm or {}).get("data") or {}).get("redis.conf", "")
        directives = {}
        for line in conf.splitlines():
            parts = line.strip().split(None, 1)
            if parts and not parts[0].startswith("#"):
                directives[parts[0]] = parts[1] if len(parts) > 1 else ""
        if not conf:
            out.append("no redis.conf ConfigMap mounted at /etc/redis")
        if directives.get("appendonly") != "yes":
            out.append("redis.conf: appendonly is not yes")
        if directives.get("appendfsync") not in ("always", "everysec"):
            out.append(f"redis.conf: appendfsync {directives.get('appendfsync')!r}")
        elif directives.get("appendfsync") != (v.get("internal") or {}).get("appendfsync"):
            out.append("redis.conf: appendfsync differs from redis.internal.appendfsync")
        if directives.get("maxmemory-policy") != "noeviction":
            out.append("redis.conf: maxmemory-policy must be noeviction (a queue must not drop tasks)")
        if "requirepass" in directives:
            out.append("redis.conf: requirepass in a ConfigMap exposes the password")
        data_dir = directives.get("dir", "")
        if mounts.get(data_dir) not in claims:
            out.append(f"redis dir {data_dir!r} is not on a PersistentVolumeClaim template")
        args = (c.get("command") or []) + (c.get("args") or [])
        if "--requirepass" not in args or "$(REDIS_PASSWORD)" not in args:
            out.append("redis-server is not started with --requirepass $(REDIS_PASSWORD)")
        pw = (container_env(c).get("REDIS_PASSWORD") or {}).get("valueFrom", {}).get("secretKeyRef")
        if not pw:
            out.append("REDIS_PASSWORD of the Redis container does not come from a Secret")
        for p in self.pods_of("task-service") + self.pods_of("worker"):
            e = container_env((p.spec.get("containers") or [{}])[0])
            theirs = (e.get("REDIS_PASSWORD") or {}).get("valueFrom", {}).get("secretKeyRef")
            if theirs != pw:
                out.append(f"{p.name}: Redis password Secret {theirs} != the server's {pw}")
            url = str((e.get("TASKMESH_REDIS") or {}).get("value"))
            svc = self.find("Service", (s.get("metadata") or {}).get("name"))
            if not svc or not url.split("@")[-1].startswith(f"{svc['metadata']['name']}.{self.ns}.svc"):
                out.append(f"{p.name}: --redis {url} does not point at the Redis Service")
        return out

    # ---- helm test, notes, values

    def check_helm_test(self):
        v = self.values
        if not ((v.get("tests") or {}).get("enabled") and (v.get("gateway") or {}).get("enabled")):
            return []
        out = []
        tests = [o for o in self.by_kind("Pod")
                 if ((o.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook") == "test"]
        if len(tests) != 1:
            return [f"want one Pod with annotation helm.sh/hook: test, found {len(tests)}"]
        t = tests[0]
        spec = t.get("spec") or {}
        if spec.get("restartPolicy") != "Never":
            out.append("test Pod restartPolicy must be Never")
        c = (spec.get("containers") or [{}])[0]
        env = {e.get("name"): e.get("value") for e in c.get("env") or []}
        m = re.match(r"^http://([^.:/]+)\.([^.:/]+)\.svc:(\d+)$", str(env.get("GATEWAY")))
        svc = self.find("Service", m.group(1)) if m else None
        if not svc or (svc.get("metadata") or {}).get("namespace") != m.group(2):
            out.append(f"test GATEWAY {env.get('GATEWAY')} is not a rendered Service")
        else:
            if int(m.group(3)) not in [p.get("port") for p in (svc.get("spec") or {}).get("ports") or []]:
                out.append(f"test GATEWAY port {m.group(3)} is not a port of {ident(svc)}")
            if not [p for p in self.selected_pods(svc) if p.component == "api-gateway"]:
                out.append(f"test GATEWAY {ident(svc)} does not front the api-gateway")
        served = set()
        for p in self.pods_of("worker"):
            served |= set(str(container_env(p.spec["containers"][0]).get("TASKMESH_QUEUES", {}).get("value", "")).split(","))
        if env.get("QUEUE") not in served:
            out.append(f"test queue {env.get('QUEUE')!r} is served by no worker pool ({sorted(served)})")
        script = " ".join(map(str, (c.get("command") or []) + (c.get("args") or [])))
        for needle in ("/v1/queues/$QUEUE/tasks", "SUCCEEDED", "$GATEWAY/v1/$name", "exit 1"):
            if needle not in script:
                out.append(f"test script lacks {needle!r}")
        return out

    def check_notes(self):
        out = []
        if not self.notes.strip():
            return ["NOTES.txt rendered empty"]
        if (self.values.get("gateway") or {}).get("enabled"):
            gws = [o for o in self.by_kind("Service")
                   if (((o.get("metadata") or {}).get("labels")) or {}).get("app.kubernetes.io/component") == "api-gateway"]
            hosts = [h.get("host") for h in ((self.values.get("gateway") or {}).get("ingress") or {}).get("hosts") or []]
            ingress = ((self.values.get("gateway") or {}).get("ingress") or {}).get("enabled")
            if ingress and not any(h and h in self.notes for h in hosts):
                out.append("NOTES.txt does not give the ingress host of the gateway")
            if not ingress and not any((g.get("metadata") or {}).get("name") in self.notes for g in gws):
                out.append("NOTES.txt does not name the gateway Service")
            if "/v1/queues/" not in self.notes:
                out.append("NOTES.txt shows no API call")
        if (self.values.get("tests") or {}).get("enabled") and (self.values.get("gateway") or {}).get("enabled") \
                and "helm test" not in self.notes:
            out.append("NOTES.txt does not mention helm test")
        return out

    def check_values(self):
        out = []
        w = self.values.get("workers") or {}
        keda = (self.values.get("keda") or {}).get("enabled")
        for pool in w.get("pools") or []:
            cfg = deep_merge({k: v for k, v in w.items() if k != "pools"}, pool)
            pods = [p for p in self.pods_of("worker") if p.labels.get("taskmesh.io/pool") == pool.get("name")]
            if len(pods) != 1:
                out.append(f"pool {pool.get('name')}: want one Deployment, found {len(pods)}")
                continue
            p = pods[0]
            name = (p.owner.get("metadata") or {}).get("name")
            env = container_env(p.spec["containers"][0])
            if env.get("TASKMESH_QUEUES", {}).get("value") != ",".join(cfg.get("queues") or []):
                out.append(f"pool {pool.get('name')}: --queues != the pool's queues {cfg.get('queues')}")
            if env.get("TASKMESH_CONCURRENCY", {}).get("value") != str(cfg.get("concurrency")):
                out.append(f"pool {pool.get('name')}: --concurrency != {cfg.get('concurrency')}")
            if parse_duration(env.get("TASKMESH_DRAIN_TIMEOUT", {}).get("value")) != cfg.get("drainTimeoutSeconds"):
                out.append(f"pool {pool.get('name')}: --drain_timeout != {cfg.get('drainTimeoutSeconds')}s")
            if keda:
                so = self.find("ScaledObject", name)
                if not so:
                    out.append(f"pool {pool.get('name')}: no ScaledObject")
                else:
                    s = so.get("spec") or {}
                    if s.get("minReplicaCount") != cfg.get("minReplicas", 0) or \
                            s.get("maxReplicaCount") != cfg.get("maxReplicas", 10):
                        out.append(f"pool {pool.get('name')}: ScaledObject replicas "
                                   f"{s.get('minReplicaCount')}..{s.get('maxReplicaCount')} != values")
                    lag = str(cfg.get("lagCount") or cfg.get("concurrency"))
                    if any((t.get("metadata") or {}).get("lagCount") not in (None, lag) for t in s.get("triggers") or []):
                        out.append(f"pool {pool.get('name')}: lagCount != {lag}")
            else:
                h = self.find("HorizontalPodAutoscaler", name)
                if not h:
                    out.append(f"pool {pool.get('name')}: no HPA (KEDA disabled)")
                elif (h.get("spec") or {}).get("minReplicas") != max(1, cfg.get("minReplicas", 0)):
                    out.append(f"pool {pool.get('name')}: HPA minReplicas != max(1, minReplicas)")
        return out


# ---------------------------------------------------------------- entry points

def load_docs(text, source="manifest"):
    docs = []
    cur_source = source
    for chunk in re.split(r"(?m)^---\s*$", text):
        m = re.search(r"(?m)^# Source: (.+)$", chunk)
        if m:
            cur_source = m.group(1)
        if not chunk.strip() or all(l.strip().startswith("#") or not l.strip() for l in chunk.splitlines()):
            continue
        try:
            obj = yaml.safe_load(chunk)
        except yaml.YAMLError as e:
            obj = e
        docs.append((cur_source, chunk, obj))
    return docs


def load_values(files):
    v = {}
    for f in files:
        v = deep_merge(v, yaml.safe_load(open(f)) or {})
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--render", required=True, help="a name for this rendering, in the output")
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--notes", default="")
    ap.add_argument("--values", action="append", default=[], help="values files, chart defaults first")
    ap.add_argument("--help-flags", default="", help="JSON {binary: [flags from --help]}")
    a = ap.parse_args(argv)
    docs = load_docs(open(a.manifest).read())
    notes = open(a.notes).read() if a.notes else ""
    help_flags = json.load(open(a.help_flags)) if a.help_flags else {}
    r = Checker(a.render, docs, notes, load_values(a.values), help_flags).run()
    print(f"check {a.render}: {r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
