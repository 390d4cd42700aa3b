#!/usr/bin/python3
"""Negative self-tests: proof that check.py can fail.

Each case breaks one thing in a known-good rendering (the chart with its
default values) and asserts that the named check FAILS with the expected
message, and that the unbroken rendering passes that check. A checker that
cannot fail would make every green run meaningless.

Example:
  selftest.py --manifest m.yaml --notes NOTES.txt --values deploy/helm/taskmesh/values.yaml
"""

import argparse
import base64
import contextlib
import copy
import hashlib
import io
import json
import os
import stat
import sys
import tempfile

import yaml

import binflags
import check

# (name, check that must fail, expected text in a problem, mutation(objs, values))


def obj(objs, kind, component=None, pool=None):
    for o in objs:
        labels = (o.get("metadata") or {}).get("labels") or {}
        if o.get("kind") == kind and (component is None or labels.get("app.kubernetes.io/component") == component) \
                and (pool is None or labels.get("taskmesh.io/pool") == pool):
            return o
    raise KeyError(f"{kind}/{component}")


def container(objs, component):
    return obj(objs, "Deployment", component)["spec"]["template"]["spec"]["containers"][0]


def env(objs, component, name):
    for e in container(objs, component)["env"]:
        if e["name"] == name:
            return e
    raise KeyError(name)


def m_unknown_field(objs, v):
    container(objs, "worker")["ports"][0]["containerPorts"] = 8081


def m_missing_required(objs, v):
    del obj(objs, "Deployment", "task-service")["spec"]["selector"]


def m_env_int(objs, v):
    env(objs, "worker", "TASKMESH_CONCURRENCY")["value"] = 8


def m_bad_kind(objs, v):
    obj(objs, "PodDisruptionBudget", "task-service")["apiVersion"] = "policy/v1beta1"


def m_unknown_probe_field(objs, v):
    container(objs, "task-service")["readinessProbe"]["grpc"]["serviceName"] = "x"


def m_crd_unknown_field(objs, v):
    obj(objs, "ScaledObject")["spec"]["minReplicas"] = 0


def m_crd_metadata(objs, v):
    obj(objs, "ScaledObject")["metadata"]["labels"]["taskmesh.io/pool"] = 7


def m_crd_trigger_auth(objs, v):
    obj(objs, "TriggerAuthentication")["spec"]["secretTargetRef"][0]["secret"] = "x"


def m_newer_field(objs, v):
    obj(objs, "Service", "task-service")["spec"]["trafficDistribution"] = "PreferClose"


def m_quantity(objs, v):
    container(objs, "worker")["resources"]["limits"]["memory"] = "1 GB"


def m_int_or_string(objs, v):
    obj(objs, "Service", "task-service")["spec"]["ports"][0]["targetPort"] = True


def m_service_port(objs, v):
    obj(objs, "Service", "task-service")["spec"]["ports"][0]["targetPort"] = "grcp"


def m_selector(objs, v):
    obj(objs, "Deployment", "task-service")["spec"]["template"]["metadata"]["labels"][
        "app.kubernetes.io/component"] = "taskservice"


def m_probe_port(objs, v):
    container(objs, "worker")["readinessProbe"]["grpc"]["port"] = 9090


def m_grpc_probe_kind(objs, v):
    c = container(objs, "task-service")
    c["readinessProbe"] = {"tcpSocket": {"port": "grpc"}, "periodSeconds": 5}


def m_privilege(objs, v):
    container(objs, "api-gateway")["securityContext"]["allowPrivilegeEscalation"] = True


def m_root(objs, v):
    sts = obj(objs, "StatefulSet", "redis")
    sts["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")
    sts["spec"]["template"]["spec"]["containers"][0]["securityContext"].pop("runAsNonRoot")


def m_var_order(objs, v):
    e = container(objs, "task-service")["env"]
    i = next(i for i, x in enumerate(e) if x["name"] == "REDIS_PASSWORD")
    e.append(e.pop(i))


def m_missing_secret(objs, v):
    env(objs, "worker", "REDIS_PASSWORD")["valueFrom"]["secretKeyRef"]["name"] = "nope"


def m_flag_typo(objs, v):
    env(objs, "worker", "TASKMESH_DRAIN_TIMEOUT")["name"] = "TASKMESH_DRAIN_TIMOUT"


def m_flag_value(objs, v):
    env(objs, "worker", "TASKMESH_DRAIN_TIMEOUT")["value"] = "30"


def m_flag_arg(objs, v):
    container(objs, "task-service")["args"] = ["--listen_port=50051"]


def m_grace(objs, v):
    obj(objs, "Deployment", "worker")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30


def m_no_prestop(objs, v):
    container(objs, "worker").pop("lifecycle")


def m_activation(objs, v):
    for t in obj(objs, "ScaledObject")["spec"]["triggers"]:
        if "lagCount" in t["metadata"]:
            t["metadata"]["activationLagCount"] = "5"


def m_stream(objs, v):
    obj(objs, "ScaledObject")["spec"]["triggers"][0]["metadata"]["stream"] = "taskmesh:default:stream"


def m_no_low_stream(objs, v):
    so = obj(objs, "ScaledObject")
    so["spec"]["triggers"] = [t for t in so["spec"]["triggers"]
                              if not t["metadata"]["stream"].endswith(":stream:low")]


def m_partitions_unwatched(objs, v):
    # The workers may see 2 partitions of `default`; the triggers watch 1.
    env(objs, "worker", "TASKMESH_PARTITION_LIMITS")["value"] = "default=2"


def m_service_partition_limit(objs, v):
    # The task_service would let `default` have 64 partitions; KEDA watches 1.
    env(objs, "task-service", "TASKMESH_PARTITION_LIMITS")["value"] = ""


def m_file_flag(objs, v):
    env(objs, "worker", "TASKMESH_PERIODIC_CONFIG")["value"] = "/etc/periodic-tasks.json"


def set_periodic(objs, v, tasks, annotate=True):
    """values.periodicTasks and the rendered ConfigMap (and checksum) set to `tasks`."""
    v["periodicTasks"] = tasks
    text = json.dumps({"periodicTasks": tasks}, indent=2)
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-periodic-tasks"))
    cm["data"]["periodic-tasks.json"] = text
    if annotate:
        for o in objs:
            if o["kind"] == "Deployment" and o["metadata"]["labels"].get("app.kubernetes.io/component") == "worker":
                o["spec"]["template"]["metadata"]["annotations"]["checksum/periodic-tasks"] = \
                    hashlib.sha256(text.encode()).hexdigest()


NIGHTLY = {"name": "nightly", "queue": "default", "schedule": "0 3 * * *", "task": {"type": "echo"}}


def m_periodic_differs(objs, v):
    set_periodic(objs, copy.deepcopy(v), [NIGHTLY])   # the ConfigMap only


def m_periodic_unserved(objs, v):
    set_periodic(objs, v, [dict(NIGHTLY, queue="nowhere")])


def m_periodic_bad_schedule(objs, v):
    set_periodic(objs, v, [dict(NIGHTLY, schedule="0 3 * *")])


def m_periodic_no_warm_pool(objs, v):
    set_periodic(objs, v, [NIGHTLY])   # the default pool scales to zero


def m_periodic_checksum(objs, v):
    set_periodic(objs, v, [NIGHTLY], annotate=False)


def m_no_pending_trigger(objs, v):
    so = obj(objs, "ScaledObject")
    so["spec"]["triggers"] = [t for t in so["spec"]["triggers"] if "pendingEntriesCount" not in t["metadata"]]


def m_replicas_with_hpa(objs, v):
    obj(objs, "Deployment", "task-service")["spec"]["replicas"] = 3


def m_hpa_no_cpu_request(objs, v):
    container(objs, "api-gateway")["resources"]["requests"].pop("cpu")


def m_np_allow_all_redis(objs, v):
    np = next(o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-redis"))
    np["spec"]["ingress"].append({})


def m_np_drop_ts_redis(objs, v):
    np = next(o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-task-service"))
    np["spec"]["egress"] = np["spec"]["egress"][1:]


def m_np_no_default_deny(objs, v):
    objs.remove(next(o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-default-deny")))


def m_redis_everysec_no_aof(objs, v):
    cm = obj(objs, "ConfigMap", "redis")
    cm["data"]["redis.conf"] = cm["data"]["redis.conf"].replace("appendonly yes", "appendonly no")


def m_redis_eviction(objs, v):
    cm = obj(objs, "ConfigMap", "redis")
    cm["data"]["redis.conf"] = cm["data"]["redis.conf"].replace("noeviction", "allkeys-lru")


def m_test_queue(objs, v):
    t = obj(objs, "Pod", "test")
    for e in t["spec"]["containers"][0]["env"]:
        if e["name"] == "QUEUE":
            e["value"] = "unserved"


def m_label_value(objs, v):
    obj(objs, "Service", "api-gateway")["metadata"]["labels"]["app.kubernetes.io/version"] = "0.1.0+build/7"


def m_values_pool(objs, v):
    v["workers"]["pools"].append({"name": "missing", "queues": ["x"]})


# ---- metrics (--metrics_listen of task_service and workers)

def m_metrics_port(objs, v):
    next(q for q in container(objs, "worker")["ports"] if q["name"] == "metrics")["containerPort"] = 9465


def m_metrics_pool_off_ignored(objs, v):
    # A pool's metricsPort 0 must turn --metrics_listen off (Helm's
    # mergeOverwrite would keep the default 9464 over the pool's 0).
    v["workers"]["pools"][0]["metricsPort"] = 0


def m_metrics_not_scraped(objs, v):
    v["serviceMonitor"]["enabled"] = True   # but no monitor rendered


def m_metrics_ipv6(objs, v):
    env(objs, "task-service", "TASKMESH_METRICS_LISTEN")["value"] = "[::]:9464"   # the binary exits 2


def m_np_metrics_open(objs, v):
    np = next(o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-task-service"))
    np["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": 9464}]})


# ---- the gateway

# A stand-in descriptor set: binary bytes (not UTF-8), naming service Echo.
DESCRIPTOR = b"\n\x0bchartcheck\x00\xff\xfe" + b"Echo" + bytes(range(256))


def gateway_pod(objs):
    return obj(objs, "Deployment", "api-gateway")["spec"]["template"]


def add_descriptors(objs, v, readonly=True, annotate=True, in_values=True):
    """The chart's descriptor-set ConfigMap, mounted, passed and in values."""
    data = {"echo.pb": base64.b64encode(DESCRIPTOR).decode()}
    gw = obj(objs, "Deployment", "api-gateway")
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "taskmesh-api-gateway-descriptor-sets", "namespace": gw["metadata"]["namespace"],
                       "labels": copy.deepcopy(gw["metadata"]["labels"])},
          "binaryData": data}
    objs.append(cm)
    tpl = gateway_pod(objs)
    tpl["spec"]["volumes"].append({"name": "descriptor-sets", "configMap": {"name": cm["metadata"]["name"]}})
    c = tpl["spec"]["containers"][0]
    c["volumeMounts"].append({"name": "descriptor-sets", "mountPath": "/etc/taskmesh/descriptor-sets",
                              "readOnly": readonly})
    env(objs, "api-gateway", "TASKMESH_DESCRIPTOR_SET")["value"] = "/etc/taskmesh/descriptor-sets/echo.pb"
    if in_values:
        v["gateway"]["descriptorSets"]["binaryData"] = dict(data)
    if annotate:
        tpl["metadata"].setdefault("annotations", {})[check.DESCRIPTOR_ANNOTATION] = hashlib.sha256(
            json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def add_user_volume(objs, v):
    """The user's own descriptor-set volume (a ConfigMap the chart does not render)."""
    vol = {"configMap": {"name": "apis"}}
    v["gateway"]["descriptorSets"]["volume"] = copy.deepcopy(vol)
    v["gateway"]["descriptorSets"]["volumeFiles"] = ["ops.pb"]
    tpl = gateway_pod(objs)
    tpl["spec"]["volumes"].append(dict(name="descriptor-sets-volume", **vol))
    tpl["spec"]["containers"][0]["volumeMounts"].append(
        {"name": "descriptor-sets-volume", "mountPath": "/etc/taskmesh/descriptor-sets-volume", "readOnly": True})
    env(objs, "api-gateway", "TASKMESH_DESCRIPTOR_SET")["value"] = "/etc/taskmesh/descriptor-sets-volume/ops.pb"


def m_gw_flag_missing(objs, v):
    c = container(objs, "api-gateway")
    c["env"] = [e for e in c["env"] if e["name"] != "TASKMESH_MAX_BODY_BYTES"]


def m_gw_bool(objs, v):
    env(objs, "api-gateway", "TASKMESH_ACCESS_LOG")["value"] = "yes"


def m_gw_origins(objs, v):
    env(objs, "api-gateway", "TASKMESH_CORS_ORIGINS")["value"] = "app.example.com"


def m_gw_routes(objs, v):
    env(objs, "api-gateway", "TASKMESH_ROUTE")["value"] = "Echo=e:9000"


def m_gw_int_auto(objs, v):
    env(objs, "api-gateway", "TASKMESH_IO_THREADS")["value"] = "-1"


def m_gw_descriptor_unmounted(objs, v):
    env(objs, "api-gateway", "TASKMESH_DESCRIPTOR_SET")["value"] = "/etc/taskmesh/echo.pb"


def m_gw_value(objs, v):
    env(objs, "api-gateway", "TASKMESH_MAX_JSON_DEPTH")["value"] = "32"


def m_gw_upstream(objs, v):
    e = env(objs, "api-gateway", "TASKMESH_UPSTREAM")
    e["value"] = e["value"].replace("-headless", "")


def m_gw_descriptors_ok(objs, v):
    add_descriptors(objs, v)


def m_gw_user_volume_ok(objs, v):
    add_user_volume(objs, v)


def m_gw_descriptors_not_in_values(objs, v):
    add_descriptors(objs, v, in_values=False)


def m_gw_descriptors_checksum(objs, v):
    add_descriptors(objs, v, annotate=False)


def m_gw_descriptors_writable(objs, v):
    add_descriptors(objs, v, readonly=False)


def m_gw_descriptors_as_data(objs, v):
    add_descriptors(objs, v)
    cm = next(o for o in objs if o["metadata"]["name"] == "taskmesh-api-gateway-descriptor-sets")
    cm["data"] = {"echo.pb": "text"}
    del cm["binaryData"]


def m_gw_grace(objs, v):
    env(objs, "api-gateway", "TASKMESH_DRAIN_TIMEOUT")["value"] = "60s"


def m_gw_no_prestop(objs, v):
    container(objs, "api-gateway").pop("lifecycle")


def m_gw_probe_port(objs, v):
    env(objs, "api-gateway", "TASKMESH_LISTEN")["value"] = "0.0.0.0:9090"


def m_gw_probe_path(objs, v):
    container(objs, "api-gateway")["livenessProbe"]["httpGet"]["path"] = "/readyz"


def gateway_np(objs):
    return next(o for o in objs if o["kind"] == "NetworkPolicy" and o["metadata"]["name"].endswith("-api-gateway"))


def m_np_gw_no_upstream(objs, v):
    gateway_np(objs)["spec"]["egress"].pop(0)


def m_np_gw_port(objs, v):
    gateway_np(objs)["spec"]["ingress"][0]["ports"][0]["port"] = 9999


CASES = [
    # Schema validation (helmcheck, the vendored OpenAPI and CRD schemas).
    ("schema rejects an unknown field", "schema",
     'spec.template.spec.containers[0].ports[0]: unknown field "containerPorts" (Kubernetes v1.25.16, v1.37.2)',
     m_unknown_field),
    ("schema requires required fields", "schema", 'spec: required field "selector" is missing', m_missing_required),
    ("schema rejects an int env value", "schema", "value: expected string, got number", m_env_int),
    ("schema rejects an unknown field in a gRPC probe", "schema", 'readinessProbe.grpc: unknown field "serviceName"',
     m_unknown_probe_field),
    ("schema rejects a field the oldest admitted release lacks", "schema",
     'spec: unknown field "trafficDistribution" (Kubernetes v1.25.16)', m_newer_field),
    ("schema rejects a malformed quantity", "schema", '"1 GB" is not a quantity', m_quantity),
    ("schema rejects an IntOrString of another type", "schema",
     "targetPort: expected integer or string, got boolean", m_int_or_string),
    ("schema rejects an unknown ScaledObject field (KEDA's CRD)", "schema",
     'spec: unknown field "minReplicas" (CRD keda.sh_scaledobjects.yaml)', m_crd_unknown_field),
    ("schema checks a custom resource's metadata (ObjectMeta)", "schema",
     "metadata.labels.taskmesh.io/pool: expected string, got number (CRD keda.sh_scaledobjects.yaml)", m_crd_metadata),
    ("schema rejects an unknown TriggerAuthentication field (KEDA's CRD)", "schema",
     'spec.secretTargetRef[0]: unknown field "secret" (CRD keda.sh_triggerauthentications.yaml)', m_crd_trigger_auth),
    ("kinds rejects an unknown apiVersion", "kinds", "unknown apiVersion/kind", m_bad_kind),
    ("labels: bad label value", "names", "bad label value", m_label_value),
    ("service-ports: targetPort must exist", "service-ports", "is no container port", m_service_port),
    ("selectors: selector must match pod labels", "selectors", "does not match its pod labels", m_selector),
    ("probes: port must be the container's", "probes", "is not a port of this container", m_probe_port),
    ("probes: gRPC servers need gRPC probes", "probes", "native gRPC probe", m_grpc_probe_kind),
    ("security: allowPrivilegeEscalation", "security", "allowPrivilegeEscalation must be false", m_privilege),
    ("security: runAsNonRoot", "security", "runAsNonRoot must be true", m_root),
    ("references: $(VAR) before its definition", "references", "before (or without) defining it", m_var_order),
    ("references: missing Secret", "references", "neither rendered nor a declared existing Secret", m_missing_secret),
    ("flags: unknown flag via env", "flags", "has no flag --drain_timout", m_flag_typo),
    ("flags: malformed duration", "flags", "is not a valid duration", m_flag_value),
    ("flags: unknown flag via args", "flags", "has no flag --listen_port", m_flag_arg),
    ("flags: a file flag must name a mounted ConfigMap key", "flags",
     "is on no ConfigMap or Secret volume mounted", m_file_flag),
    ("periodic: the ConfigMap holds values.periodicTasks", "periodic", "differ from values.periodicTasks",
     m_periodic_differs),
    ("periodic: queues must be served", "periodic", "queue 'nowhere' is served by no worker pool",
     m_periodic_unserved),
    ("periodic: schedules must parse", "periodic", "is neither five cron fields nor @every",
     m_periodic_bad_schedule),
    ("periodic: a worker must always run", "periodic", "no worker pool runs at all times",
     m_periodic_no_warm_pool),
    ("periodic: a change must restart the workers", "periodic", "checksum/periodic-tasks",
     m_periodic_checksum),
    ("drain: grace period shorter than the drain", "drain", "SIGKILL could cut a task", m_grace),
    ("drain: worker without preStop", "drain", "without a preStop hook", m_no_prestop),
    ("autoscaling: activationLagCount must be 0", "autoscaling", "activationLagCount '5'", m_activation),
    ("autoscaling: stream key must be the queue's", "autoscaling", "is not taskmesh:{QUEUE}:stream", m_stream),
    ("autoscaling: every priority stream has triggers", "autoscaling",
     "no lagCount trigger for taskmesh:{default}:stream:low", m_no_low_stream),
    ("autoscaling: in-flight work keeps the pool up", "autoscaling", "no pendingEntriesCount trigger",
     m_no_pending_trigger),
    ("autoscaling: every partition has triggers", "autoscaling",
     "no lagCount trigger for taskmesh:{default~1}:stream", m_partitions_unwatched),
    ("autoscaling: the task_service keeps partitions within the triggers", "autoscaling",
     "lets queue 'default' have 64 partitions", m_service_partition_limit),
    ("autoscaling: no replicas under an HPA", "autoscaling", "sets replicas although", m_replicas_with_hpa),
    ("autoscaling: CPU HPA needs CPU requests", "autoscaling", "needs a cpu request", m_hpa_no_cpu_request),
    ("network: allow-all to Redis is caught", "network", "unneeded flow allowed: outsider", m_np_allow_all_redis),
    ("network: a needed flow denied is caught", "network", "needed flow denied", m_np_drop_ts_redis),
    ("network: default deny required", "network", "no default-deny NetworkPolicy", m_np_no_default_deny),
    ("redis: AOF must be on", "redis", "appendonly is not yes", m_redis_everysec_no_aof),
    ("redis: noeviction", "redis", "noeviction", m_redis_eviction),
    ("helm-test: queue must be served", "helm-test", "served by no worker pool", m_test_queue),
    ("values: every pool rendered", "values", "pool missing: want one Deployment", m_values_pool),
    ("metrics: the metrics container port is --metrics_listen's", "metrics",
     "container port 'metrics' [9465] != --metrics_listen port 9464", m_metrics_port),
    ("metrics: a pool's metricsPort 0 turns /metrics off", "metrics",
     "--metrics_listen is '0.0.0.0:9464', but workers.pools[default].metricsPort says ''",
     m_metrics_pool_off_ignored),
    ("metrics: with serviceMonitor.enabled every /metrics is scraped", "metrics",
     "/metrics on port 9464 is scraped by no ServiceMonitor or PodMonitor", m_metrics_not_scraped),
    ("flags: --metrics_listen is IPV4:PORT or empty", "flags", "is not a valid ipv4port_or_empty",
     m_metrics_ipv6),
    ("network: metrics ports closed without serviceMonitor", "network",
     "unneeded flow allowed: prometheus -> Deployment/taskmesh-task-service:9464", m_np_metrics_open),
    # The gateway. (want None: the change is consistent and must pass.)
    ("flags: every flag of the contract is passed", "flags", "flag --max_body_bytes is set by no value",
     m_gw_flag_missing),
    ("flags: malformed bool", "flags", "is not a valid bool", m_gw_bool),
    ("flags: malformed CORS origins", "flags", "is not a valid origins", m_gw_origins),
    ("flags: malformed routes", "flags", "is not a valid routes", m_gw_routes),
    ("flags: malformed 0-means-auto count", "flags", "is not a valid int_auto", m_gw_int_auto),
    ("flags: descriptor sets must be on a mounted ConfigMap", "flags",
     "is on no ConfigMap or Secret volume mounted", m_gw_descriptor_unmounted),
    ("gateway: every flag carries its value", "gateway", "--max_json_depth is '32', but gateway.maxJsonDepth says '64'",
     m_gw_value),
    ("gateway: --upstream balances over the task service's pods", "gateway",
     "is not dns:/// of the task service's headless Service", m_gw_upstream),
    ("gateway: descriptor sets from binaryData pass", "gateway", None, m_gw_descriptors_ok),
    ("flags: descriptor sets from binaryData pass", "flags", None, m_gw_descriptors_ok),
    ("references: descriptor sets on the user's volume pass", "references", None, m_gw_user_volume_ok),
    ("gateway: descriptor sets on the user's volume pass", "gateway", None, m_gw_user_volume_ok),
    ("gateway: descriptor sets are those of the values", "gateway",
     "gateway.descriptorSets.binaryData []", m_gw_descriptors_not_in_values),
    ("gateway: a binaryData change must restart the gateway", "gateway", "checksum/descriptor-sets",
     m_gw_descriptors_checksum),
    ("gateway: descriptor sets mounted read-only", "gateway", "is not mounted readOnly", m_gw_descriptors_writable),
    ("gateway: descriptor sets are binaryData", "gateway", "in data, not binaryData", m_gw_descriptors_as_data),
    ("drain: gateway grace period shorter than its drain", "drain", "SIGKILL could cut requests mid-drain",
     m_gw_grace),
    ("drain: gateway without preStop", "drain", "gateway without a preStop hook", m_gw_no_prestop),
    ("probes: gateway probes on its --listen port", "probes", "!= --listen port 9090", m_gw_probe_port),
    ("probes: gateway liveness is /healthz", "probes", "path /readyz != /healthz", m_gw_probe_path),
    ("network: the gateway reaches the task service", "network",
     "needed flow denied: Deployment/taskmesh-api-gateway -> Deployment/taskmesh-task-service", m_np_gw_no_upstream),
    ("network: clients reach the gateway port", "network", "needed flow denied: outsider", m_np_gw_port),
]


# Cases on the external-Redis-Cluster rendering (values/external-redis-cluster.yaml).
def m_cluster_type(objs, v):
    obj(objs, "ScaledObject")["spec"]["triggers"][0]["type"] = "redis-streams"


def m_cluster_addresses(objs, v):
    md = obj(objs, "ScaledObject")["spec"]["triggers"][1]["metadata"]
    md["addresses"] = md["addresses"].split(",")[0]


def m_cluster_db(objs, v):
    obj(objs, "ScaledObject")["spec"]["triggers"][2]["metadata"]["databaseIndex"] = "0"


def m_cluster_single_url(objs, v):
    e = env(objs, "task-service", "TASKMESH_REDIS")
    e["value"] = e["value"].split(",")[0]


def m_cluster_seed_dropped(objs, v):
    e = env(objs, "worker", "TASKMESH_REDIS")
    e["value"] = ",".join(e["value"].split(",")[:-1])


def m_cluster_port_denied(objs, v):
    for o in objs:
        if o.get("kind") == "NetworkPolicy":
            for rule in o["spec"].get("egress") or []:
                rule["ports"] = [p for p in rule.get("ports") or [] if p.get("port") != 7000]


CLUSTER_CASES = [
    ("cluster: KEDA must use redis-cluster-streams", "autoscaling", "want redis-cluster-streams",
     m_cluster_type),
    ("cluster: KEDA's addresses are the workers' seeds", "autoscaling", "!= the workers' Redis Cluster seeds",
     m_cluster_addresses),
    ("cluster: no databaseIndex on a cluster trigger", "autoscaling",
     "unknown redis-cluster-streams metadata 'databaseIndex'", m_cluster_db),
    ("cluster: --redis is the seed list, not one node", "redis", "is not the seed list", m_cluster_single_url),
    ("cluster: --redis has every seed", "redis", "is not the seed list", m_cluster_seed_dropped),
    ("cluster: egress to every seed's port", "network", ":7000/TCP", m_cluster_port_denied),
]


def run_case(docs, notes, values, check_name, mutate):
    objs = copy.deepcopy([o for _, _, o in docs])
    vals = copy.deepcopy(values)
    mutate(objs, vals)
    mdocs = [("selftest", "", o) for o in objs]
    r = check.Checker("selftest", mdocs, notes, vals, quiet=True).run()
    return r.failures.get(check_name, [])


FAKE_WORKER = """#!/bin/sh
# A stand-in worker: --help lists FLAGS; otherwise it validates
# TASKMESH_DRAIN_TIMEOUT like absl would; with --version it then exits 0,
# without it reads --periodic_config (it must be readable and hold
# "periodicTasks") and runs until SIGTERM, like the real one.
version=0
for a in "$@"; do
  if [ "$a" = --help ]; then
    printf 'worker: fake\\n\\nFlags (each also settable as TASKMESH_<NAME>):\\n'
    for f in FLAGS; do printf '  --%s=\\n      help text  [TASKMESH_X]\\n' "$f"; done
    exit 0
  fi
  [ "$a" = --version ] && version=1
done
case "${TASKMESH_DRAIN_TIMEOUT:-30s}" in
  *[0-9]s|*[0-9]m|*[0-9]h) ;;
  *) echo "ERROR: bad value '$TASKMESH_DRAIN_TIMEOUT' in TASKMESH_DRAIN_TIMEOUT" >&2; exit 2 ;;
esac
if [ $version = 1 ]; then echo "taskmesh 0.1.0"; exit 0; fi
if [ -n "$TASKMESH_PERIODIC_CONFIG" ] && ! grep -q '"periodicTasks"' "$TASKMESH_PERIODIC_CONFIG"; then
  echo "ERROR: --periodic_config: cannot read or parse $TASKMESH_PERIODIC_CONFIG" >&2; exit 2
fi
trap 'exit 0' TERM
while :; do sleep 0.1; done
"""


def fake_worker(tmp, name, flags):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(FAKE_WORKER.replace("FLAGS", " ".join(flags)))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def quiet(fn, *args):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = fn(*args)
    return rc, buf.getvalue()


def binflags_cases(manifest_text):
    """binflags.py against stand-in binaries: it must pass a good one and fail bad ones."""
    results = []
    all_flags = list(check.BINARIES["worker"]["flags"])
    with tempfile.TemporaryDirectory() as tmp:
        good = fake_worker(tmp, "good", all_flags)
        lacking = fake_worker(tmp, "lacking", [f for f in all_flags if f != "drain_timeout"])
        extra = fake_worker(tmp, "extra", all_flags + ["brand_new_flag"])
        out = os.path.join(tmp, "flags.json")
        rc, text = quiet(binflags.main, ["help", "--binary", f"worker={good}", "--out", out])
        results.append(("binflags help passes a binary with every flag", rc == 0, text))
        rc, text = quiet(binflags.main, ["help", "--binary", f"worker={lacking}", "--out", out])
        results.append(("binflags help fails a binary lacking --drain_timeout",
                        rc != 0 and "--drain_timeout" in text, text))
        rc, text = quiet(binflags.main, ["help", "--binary", f"worker={extra}", "--out", out])
        results.append(("binflags help fails a binary flag no value sets",
                        rc != 0 and "--brand_new_flag, which no value sets" in text, text))
        good_m = os.path.join(tmp, "good.yaml")
        with open(good_m, "w") as f:
            f.write(manifest_text)
        rc, text = quiet(binflags.main, ["accept", "--render", "t", "--manifest", good_m,
                                         "--binary", f"worker={good}"])
        results.append(("binflags accept passes values the binary accepts", rc == 0 and "PASS" in text, text))
        # File-valued flags: the content must reach the binary, and be read.
        results.append(("binflags accept starts the worker with its periodic config",
                        rc == 0 and "PASS: flags: t: worker starts with the settings of" in text
                        and "its files (--periodic_config)" in text, text))
        bad_m = os.path.join(tmp, "bad.yaml")
        with open(bad_m, "w") as f:
            f.write(manifest_text.replace('name: TASKMESH_DRAIN_TIMEOUT\n              value: "30s"',
                                          'name: TASKMESH_DRAIN_TIMEOUT\n              value: "30"'))
        rc, text = quiet(binflags.main, ["accept", "--render", "t", "--manifest", bad_m,
                                         "--binary", f"worker={good}"])
        results.append(("binflags accept fails a value the binary rejects",
                        rc != 0 and "bad value '30'" in text, text))
        for name, old, new, want in (
                ("binflags accept fails a periodic config the binary rejects",
                 '"periodicTasks": []', '"periodic": []', "--periodic_config: cannot read or parse"),
                ("binflags accept fails a file flag no ConfigMap provides",
                 'value: "/etc/taskmesh/periodic-tasks.json"', 'value: "/etc/taskmesh/nope.json"',
                 "has no key 'nope.json'")):
            if old not in manifest_text:
                results.append((name, False, f"the manifest has no {old!r} to break"))
                continue
            with open(bad_m, "w") as f:
                f.write(manifest_text.replace(old, new))
            rc, text = quiet(binflags.main, ["accept", "--render", "t", "--manifest", bad_m,
                                             "--binary", f"worker={good}"])
            results.append((name, rc != 0 and want in text, text))
    return results + gateway_binflags_cases(manifest_text)


FAKE_GATEWAY = """#!/bin/sh
# A stand-in api_gateway: --help lists FLAGS; --version exits 0; otherwise,
# like the real one at start, it exits 2 on an unreadable --descriptor_set
# (or, with EXPECT_SHA256, one that is not those bytes) and on a --route to a
# service no descriptor set names, and 3 on an upstream that is not the
# closed local port (binflags.py must never let it reach a real one); then
# it runs until SIGTERM.
for a in "$@"; do
  if [ "$a" = --help ]; then
    printf 'api_gateway: fake\\n\\nFlags (each also settable as TASKMESH_<NAME>):\\n'
    for f in FLAGS; do printf '  --%s=\\n      help text  [TASKMESH_X]\\n' "$f"; done
    exit 0
  fi
  if [ "$a" = --version ]; then echo "taskmesh 0.1.0"; exit 0; fi
done
case "$TASKMESH_UPSTREAM" in 127.0.0.1:1) ;; *) echo "ERROR: upstream $TASKMESH_UPSTREAM is not local" >&2; exit 3 ;; esac
IFS=,
for f in $TASKMESH_DESCRIPTOR_SET; do
  [ -r "$f" ] || { echo "ERROR: --descriptor_set: cannot read $f" >&2; exit 2; }
  if [ -n "${EXPECT_SHA256:-}" ] && [ "$(sha256sum <"$f" | cut -d' ' -f1)" != "$EXPECT_SHA256" ]; then
    echo "ERROR: --descriptor_set: $f does not hold the bytes of the ConfigMap" >&2; exit 2
  fi
done
for r in $TASKMESH_ROUTE; do
  svc=${r%%=*}; target=${r#*=}
  [ "$target" = 127.0.0.1:1 ] || { echo "ERROR: route target $target is not local" >&2; exit 3; }
  found=0
  for f in $TASKMESH_DESCRIPTOR_SET; do grep -q "${svc##*.}" "$f" && found=1; done
  [ $found = 1 ] || { echo "ERROR: --route names '$svc', which is not a served service" >&2; exit 2; }
done
unset IFS
trap 'exit 0' TERM
while :; do sleep 0.1; done
"""


def gateway_binflags_cases(manifest_text):
    """binflags.py starts the gateway for real: settings checked only at
    start, descriptor files byte for byte, the user's volume."""
    results = []
    docs = check.load_docs(manifest_text)
    base = [o for _, _, o in docs if isinstance(o, dict)]
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "api_gateway")
        with open(fake, "w") as f:
            f.write(FAKE_GATEWAY.replace("FLAGS", " ".join(check.BINARIES["api_gateway"]["flags"])))
        os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)

        def run(name, mutate, extra=(), want_rc0=True, want=""):
            objs = copy.deepcopy(base)
            vals = {"gateway": {"enabled": True, "descriptorSets": {}}}
            mutate(objs, vals)
            m = os.path.join(tmp, "m.yaml")
            with open(m, "w") as f:
                yaml.safe_dump_all(objs, f, explicit_start=True, sort_keys=False)
            vf = os.path.join(tmp, "v.yaml")
            with open(vf, "w") as f:
                yaml.safe_dump(vals, f)
            rc, text = quiet(binflags.main, ["accept", "--render", "t", "--manifest", m, "--values", vf,
                                             "--binary", f"api_gateway={fake}", *extra])
            results.append((name, (rc == 0) == want_rc0 and want in text, text))

        def routed(objs, v, service="chartcheck.v1.Echo"):
            add_descriptors(objs, v)
            env(objs, "api-gateway", "TASKMESH_ROUTE")["value"] = f"{service}=dns:///echo.apis.svc:9000"
            container(objs, "api-gateway")["env"].append(
                {"name": "EXPECT_SHA256", "value": hashlib.sha256(DESCRIPTOR).hexdigest()})

        run("binflags accept starts the gateway with the chart's settings", lambda o, v: None,
            want="PASS: flags: t: api_gateway starts with the settings of")
        run("binflags accept gives the gateway binaryData byte for byte, its targets made local", routed,
            want="and its files (--descriptor_set)")
        run("binflags accept fails a route the started gateway refuses",
            lambda o, v: routed(o, v, "chartcheck.v1.Nope"), want_rc0=False, want="not a served service")
        run("binflags accept fails a file of the user's volume it was not given", add_user_volume,
            want_rc0=False, want="--provide /etc/taskmesh/descriptor-sets-volume/ops.pb=FILE")
        ops = os.path.join(tmp, "ops.pb")
        with open(ops, "wb") as f:
            f.write(b"\x00Ops\xff")
        run("binflags accept gives the gateway the user's file (--provide)", add_user_volume,
            extra=["--provide", f"/etc/taskmesh/descriptor-sets-volume/ops.pb={ops}"],
            want="PASS: flags: t: api_gateway starts with the settings of")
    return results


def flag_docs_cases():
    """flag-docs fails when values.yaml stops documenting a flag."""
    root = check.ROOT
    with tempfile.TemporaryDirectory() as tmp:
        for rel in ("deploy/helm/taskmesh/values.yaml", "docs/deploy.md"):
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
            text = open(os.path.join(root, rel)).read()
            if rel.endswith("values.yaml"):
                text = text.replace("--max_json_depth", "--max-json-depth")
            with open(os.path.join(tmp, rel), "w") as f:
                f.write(text)
        check.ROOT = tmp
        try:
            problems = check.Checker("selftest", [], "", {}, quiet=True).check_flag_docs()
        finally:
            check.ROOT = root
    want = "deploy/helm/taskmesh/values.yaml does not document --max_json_depth (api_gateway)"
    return [("flag-docs: an undocumented flag is caught", problems == [want], f"it said {problems}")]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--notes", required=True)
    ap.add_argument("--values", action="append", default=[])
    ap.add_argument("--cluster-manifest", help="the external-Redis-Cluster rendering (CLUSTER_CASES)")
    ap.add_argument("--cluster-notes")
    ap.add_argument("--cluster-values", action="append", default=[])
    a = ap.parse_args(argv)
    docs = check.load_docs(open(a.manifest).read())
    notes = open(a.notes).read()
    values = check.load_values(a.values)
    base = check.Checker("baseline", docs, notes, values, quiet=True).run()
    failed = 0
    # The YAML check itself: a document that does not parse.
    bad = check.load_docs("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n")
    r = check.Checker("selftest", bad, notes, values, quiet=True).run()
    if "does not parse" in " ".join(r.failures.get("yaml", [])):
        print("PASS: selftest: yaml rejects a document that does not parse")
    else:
        print("FAIL: selftest: yaml rejects a document that does not parse")
        failed += 1
    for name, check_name, want, mutate in CASES:
        if check_name in base.failures:
            print(f"FAIL: selftest: {name}: the unbroken rendering already fails {check_name}")
            failed += 1
            continue
        problems = run_case(docs, notes, values, check_name, mutate)
        if want is None and not problems:
            print(f"PASS: selftest: {name}")
        elif want is None:
            print(f"FAIL: selftest: {name}: check {check_name} reported {problems}")
            failed += 1
        elif any(want in p for p in problems):
            print(f"PASS: selftest: {name}")
        else:
            print(f"FAIL: selftest: {name}: check {check_name} did not report {want!r}; it said {problems}")
            failed += 1
    if a.cluster_manifest:
        cdocs = check.load_docs(open(a.cluster_manifest).read())
        cnotes = open(a.cluster_notes).read() if a.cluster_notes else ""
        cvalues = check.load_values(a.cluster_values)
        cbase = check.Checker("baseline", cdocs, cnotes, cvalues, quiet=True).run()
        for name, check_name, want, mutate in CLUSTER_CASES:
            if check_name in cbase.failures:
                print(f"FAIL: selftest: {name}: the unbroken cluster rendering already fails {check_name}")
                failed += 1
                continue
            problems = run_case(cdocs, cnotes, cvalues, check_name, mutate)
            if any(want in p for p in problems):
                print(f"PASS: selftest: {name}")
            else:
                print(f"FAIL: selftest: {name}: check {check_name} did not report {want!r}; it said {problems}")
                failed += 1
        # binflags: a seed list is made local seed by seed, credentials kept.
        got = binflags.local_seeds("redis://:pw@a.b:6379,c.d:7000,10.0.0.1:6379")
        want = "redis://:pw@127.0.0.1:1,127.0.0.1:1,127.0.0.1:1"
        if got == want:
            print("PASS: selftest: binflags makes every seed of a seed list local")
        else:
            print(f"FAIL: selftest: binflags makes every seed of a seed list local: {got!r}, want {want!r}")
            failed += 1
    for name, ok, text in flag_docs_cases():
        if ok:
            print(f"PASS: selftest: {name}")
        else:
            print(f"FAIL: selftest: {name}: {text}")
            failed += 1
    for name, ok, text in binflags_cases(open(a.manifest).read()):
        if ok:
            print(f"PASS: selftest: {name}")
        else:
            print(f"FAIL: selftest: {name}; its output was:\n{text}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
