"""Strict structural validation of Kubernetes objects, without a cluster.

Core kinds are checked against the API models of Debian's python3-kubernetes
(client 22.6, Kubernetes 1.22 API): every key must be a field of the model
(unknown fields are rejected, as `kubectl apply --validate=strict` does),
every value must have the field's type, and fields the model marks required
must be present. python3-kubernetes does none of this itself when loading a
dict (it silently drops unknown keys), hence this walker.

Kubernetes 1.22 predates two things the chart uses; they are added here as
explicit, small shims and nothing else:
  - Probe.grpc (native gRPC probes, GA in 1.27, on by default since 1.24);
  - autoscaling/v2 (GA in 1.23; the same schema as autoscaling/v2beta2).
CRDs the chart renders (KEDA ScaledObject/TriggerAuthentication, the
Prometheus operator's ServiceMonitor and PodMonitor) get hand-written schemas of the fields
their CRDs define (only the fields taskmesh may plausibly set; anything else
is rejected as unknown, which errs on the strict side).

Example:
    problems = validate_object(obj)   # [] when valid
"""

import functools
import inspect
import re

from kubernetes.client import models as M

# (apiVersion, kind) -> model. Names starting with "X-" are CUSTOM below.
KINDS = {
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Pod"): "V1Pod",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    # Shim: autoscaling/v2 has autoscaling/v2beta2's schema.
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
    ("keda.sh/v1alpha1", "ScaledObject"): "X-ScaledObject",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "X-TriggerAuthentication",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "X-ServiceMonitor",
    ("monitoring.coreos.com/v1", "PodMonitor"): "X-PodMonitor",
}

# Fields newer than the 1.22 models: (model, json key) -> type.
SHIM_FIELDS = {
    ("V1Probe", "grpc"): "X-GRPCAction",
}

# Custom models: name -> ({json key: type}, {required json keys}).
CUSTOM = {
    "X-GRPCAction": ({"port": "int", "service": "str"}, {"port"}),
    # KEDA 2.12+ (keda.sh/v1alpha1).
    "X-ScaledObject": ({"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
                        "spec": "X-ScaledObjectSpec"}, {"apiVersion", "kind", "metadata", "spec"}),
    "X-ScaledObjectSpec": ({"scaleTargetRef": "X-ScaleTargetRef", "pollingInterval": "int",
                            "cooldownPeriod": "int", "initialCooldownPeriod": "int",
                            "idleReplicaCount": "int", "minReplicaCount": "int",
                            "maxReplicaCount": "int", "fallback": "X-Fallback",
                            "advanced": "X-Advanced", "triggers": "list[X-Trigger]"},
                           {"scaleTargetRef", "triggers"}),
    "X-ScaleTargetRef": ({"apiVersion": "str", "kind": "str", "name": "str",
                          "envSourceContainerName": "str"}, {"name"}),
    "X-Fallback": ({"failureThreshold": "int", "replicas": "int"}, {"failureThreshold", "replicas"}),
    "X-Advanced": ({"restoreToOriginalReplicaCount": "bool",
                    "horizontalPodAutoscalerConfig": "X-HPAConfig"}, set()),
    "X-HPAConfig": ({"name": "str", "behavior": "V2beta2HorizontalPodAutoscalerBehavior"}, set()),
    "X-Trigger": ({"type": "str", "name": "str", "metadata": "dict(str, str)",
                   "authenticationRef": "X-AuthenticationRef", "metricType": "str",
                   "useCachedMetrics": "bool"}, {"type", "metadata"}),
    "X-AuthenticationRef": ({"name": "str", "kind": "str"}, {"name"}),
    "X-TriggerAuthentication": ({"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
                                 "spec": "X-TriggerAuthenticationSpec"},
                                {"apiVersion", "kind", "metadata", "spec"}),
    "X-TriggerAuthenticationSpec": ({"secretTargetRef": "list[X-TargetRef]",
                                     "configMapTargetRef": "list[X-TargetRef]",
                                     "env": "list[X-AuthEnv]"}, set()),
    "X-TargetRef": ({"parameter": "str", "name": "str", "key": "str"}, {"parameter", "name", "key"}),
    "X-AuthEnv": ({"parameter": "str", "name": "str", "containerName": "str"}, {"parameter", "name"}),
    # prometheus-operator (monitoring.coreos.com/v1).
    "X-ServiceMonitor": ({"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
                          "spec": "X-ServiceMonitorSpec"}, {"apiVersion", "kind", "metadata", "spec"}),
    "X-ServiceMonitorSpec": ({"selector": "V1LabelSelector", "namespaceSelector": "X-NamespaceSelector",
                              "endpoints": "list[X-Endpoint]", "jobLabel": "str",
                              "targetLabels": "list[str]", "podTargetLabels": "list[str]",
                              "sampleLimit": "int"}, {"selector", "endpoints"}),
    "X-NamespaceSelector": ({"any": "bool", "matchNames": "list[str]"}, set()),
    "X-Endpoint": ({"port": "str", "targetPort": "object", "path": "str", "scheme": "str",
                    "interval": "str", "scrapeTimeout": "str", "honorLabels": "bool",
                    "honorTimestamps": "bool", "relabelings": "list[object]",
                    "metricRelabelings": "list[object]", "params": "dict(str, list[str])",
                    "bearerTokenSecret": "V1SecretKeySelector"}, set()),
    "X-PodMonitor": ({"apiVersion": "str", "kind": "str", "metadata": "V1ObjectMeta",
                      "spec": "X-PodMonitorSpec"}, {"apiVersion", "kind", "metadata", "spec"}),
    "X-PodMonitorSpec": ({"selector": "V1LabelSelector", "namespaceSelector": "X-NamespaceSelector",
                          "podMetricsEndpoints": "list[X-PodMetricsEndpoint]", "jobLabel": "str",
                          "podTargetLabels": "list[str]", "sampleLimit": "int"}, {"selector"}),
    "X-PodMetricsEndpoint": ({"port": "str", "path": "str", "scheme": "str", "interval": "str",
                              "scrapeTimeout": "str", "honorLabels": "bool", "honorTimestamps": "bool",
                              "relabelings": "list[object]", "metricRelabelings": "list[object]",
                              "params": "dict(str, list[str])"}, set()),
}

# Resource quantities are strings in the models but numbers are accepted.
QUANTITY_FIELDS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
                   ("V1EmptyDirVolumeSource", "size_limit")}
QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|[eE][+-]?\d+)?$")


@functools.lru_cache(maxsize=None)
def _model(name):
    """Returns ({json key: (type, python attr)}, {required json keys}) of a model."""
    if name in CUSTOM:
        fields, required = CUSTOM[name]
        return {k: (t, k) for k, t in fields.items()}, frozenset(required)
    klass = getattr(M, name, None)
    if klass is None:
        raise KeyError(f"no model {name}")
    fields, required = {}, set()
    for attr, typ in klass.openapi_types.items():
        key = klass.attribute_map[attr]
        fields[key] = (typ, attr)
        prop = getattr(klass, attr, None)
        if isinstance(prop, property) and prop.fset is not None:
            if "must not be `None`" in inspect.getsource(prop.fset):
                required.add(key)
    for (model, key), typ in SHIM_FIELDS.items():
        if model == name:
            fields[key] = (typ, key)
    return fields, frozenset(required)


def _type_name(v):
    return type(v).__name__


def _walk(value, typ, path, problems, owner=None):
    if value is None:
        problems.append(f"{path}: null value (Helm rendered nothing here?)")
        return
    quantity = owner in QUANTITY_FIELDS
    if typ.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_type_name(value)}")
            return
        for i, item in enumerate(value):
            _walk(item, typ[5:-1], f"{path}[{i}]", problems)
        return
    if typ.startswith("dict("):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {_type_name(value)}")
            return
        inner = typ[typ.index(",") + 1:-1].strip()
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append(f"{path}: key {k!r} is not a string")
            if quantity:
                if not (isinstance(v, (int, float, str)) and QUANTITY_RE.match(str(v))):
                    problems.append(f"{path}.{k}: {v!r} is not a quantity")
            else:
                _walk(v, inner, f"{path}.{k}", problems)
        return
    if typ == "str":
        if quantity:
            if not (isinstance(value, (int, float, str)) and QUANTITY_RE.match(str(value))):
                problems.append(f"{path}: {value!r} is not a quantity")
        elif not isinstance(value, str):
            problems.append(f"{path}: expected a string, got {_type_name(value)} {value!r}")
        return
    if typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {_type_name(value)} {value!r}")
        return
    if typ == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected a number, got {_type_name(value)}")
        return
    if typ == "bool":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected true/false, got {_type_name(value)} {value!r}")
        return
    if typ in ("datetime", "date"):
        if not isinstance(value, str):
            problems.append(f"{path}: expected a timestamp string")
        return
    if typ == "object":  # IntOrString, RawExtension, ...
        return
    # A model.
    if not isinstance(value, dict):
        problems.append(f"{path}: expected an object ({typ}), got {_type_name(value)} {value!r}")
        return
    fields, required = _model(typ)
    for key, v in value.items():
        if key not in fields:
            problems.append(f"{path}: unknown field {key!r} (not in {typ})")
            continue
        ftyp, attr = fields[key]
        _walk(v, ftyp, f"{path}.{key}", problems, owner=(typ, attr))
    for key in sorted(required - set(value)):
        problems.append(f"{path}: required field {key!r} is missing")


def model_for(obj):
    return KINDS.get((obj.get("apiVersion"), obj.get("kind")))


def validate_object(obj):
    """Returns the structural problems of one object (empty when valid)."""
    if not isinstance(obj, dict):
        return [f"document is a {_type_name(obj)}, not an object"]
    model = model_for(obj)
    if model is None:
        return [f"unknown apiVersion/kind {obj.get('apiVersion')!r}/{obj.get('kind')!r}"]
    problems = []
    _walk(obj, model, obj.get("kind", "?"), problems)
    return problems
