{{/*
Shared definitions of the taskmesh chart: names, labels, images, the Redis
connection, the security contexts and the pieces every component's pods share.
Most helpers take a dict: (dict "ctx" $ "component" "task-service" ...).
*/}}

{{- define "taskmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name. Truncated to 36 characters so that the
longest derived Service name ("<prefix>-task-service-headless") stays a valid
63-character DNS label and the Redis StatefulSet's pod labels stay valid.
*/}}
{{- define "taskmesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 36 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "taskmesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: (dict "ctx" $ "component" C ["pool" P]). Never change on upgrade. */}}
{{- define "taskmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskmesh.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .pool }}
taskmesh.io/pool: {{ .pool }}
{{- end }}
{{- end -}}

{{/* All labels of an object: (dict "ctx" $ "component" C ["pool" P]). */}}
{{- define "taskmesh.labels" -}}
{{ include "taskmesh.selectorLabels" . }}
app.kubernetes.io/part-of: taskmesh
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "taskmesh.chart" .ctx }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels every pod of the release carries (the default-deny selector). */}}
{{- define "taskmesh.releaseSelector" -}}
app.kubernetes.io/name: {{ include "taskmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* An image reference: (dict "ctx" $ "image" .Values.taskService.image). */}}
{{- define "taskmesh.image" -}}
{{- $tag := .ctx.Values.image.tag | default .ctx.Chart.AppVersion -}}
{{- printf "%s/%s:%s" (.ctx.Values.image.prefix | trimSuffix "/") .image.repository $tag -}}
{{- end -}}

{{- define "taskmesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "taskmesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Object names. */}}
{{- define "taskmesh.taskService.name" -}}{{ include "taskmesh.fullname" . }}-task-service{{- end -}}
{{- define "taskmesh.gateway.name" -}}{{ include "taskmesh.fullname" . }}-api-gateway{{- end -}}
{{- define "taskmesh.redis.name" -}}{{ include "taskmesh.fullname" . }}-redis{{- end -}}
{{- define "taskmesh.worker.name" -}}{{ include "taskmesh.fullname" .ctx }}-worker-{{ .pool }}{{- end -}}
{{- define "taskmesh.periodic.name" -}}{{ include "taskmesh.fullname" . }}-periodic-tasks{{- end -}}

{{/* ---- the gateway's descriptor sets ---- */}}

{{/* The chart's ConfigMap of descriptor sets, and where the gateway finds them. */}}
{{- define "taskmesh.gateway.descriptorSetsName" -}}{{ include "taskmesh.gateway.name" . }}-descriptor-sets{{- end -}}
{{- define "taskmesh.gateway.descriptorSetsDir" -}}/etc/taskmesh/descriptor-sets{{- end -}}
{{/* Where the user's own volume (gateway.descriptorSets.volume) is mounted. */}}
{{- define "taskmesh.gateway.descriptorSetsVolumeDir" -}}/etc/taskmesh/descriptor-sets-volume{{- end -}}

{{/*
gateway.descriptorSets.binaryData with whitespace taken out of the base64
(`base64` wraps lines at 76 characters unless -w0): YAML, empty when none.
*/}}
{{- define "taskmesh.gateway.descriptorSets" -}}
{{- $out := dict -}}
{{- range $k, $v := ((.Values.gateway.descriptorSets | default dict).binaryData | default dict) -}}
{{- $_ := set $out (toString $k) (regexReplaceAll "\\s+" (toString $v) "") -}}
{{- end -}}
{{- if $out }}{{ toYaml $out }}{{ end -}}
{{- end -}}

{{/* ---- periodic tasks ---- */}}

{{/*
The workers' --periodic_config file: JSON of taskmesh.v1.PeriodicConfig with
.Values.periodicTasks as given (an empty list runs no scheduler).
*/}}
{{- define "taskmesh.periodic.json" -}}
{{- dict "periodicTasks" (.Values.periodicTasks | default list) | toPrettyJson -}}
{{- end -}}

{{/* Where worker pods find it (a read-only ConfigMap volume). */}}
{{- define "taskmesh.periodic.dir" -}}/etc/taskmesh{{- end -}}
{{- define "taskmesh.periodic.path" -}}{{ include "taskmesh.periodic.dir" . }}/periodic-tasks.json{{- end -}}

{{/* ---- Redis connection ---- */}}

{{- define "taskmesh.redis.secretName" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecret -}}
{{- else if eq .Values.redis.mode "internal" -}}
{{- include "taskmesh.redis.name" . -}}
{{- end -}}
{{- end -}}

{{- define "taskmesh.redis.secretKey" -}}
{{- .Values.redis.auth.existingSecretPasswordKey | default "redis-password" -}}
{{- end -}}

{{/* "true" when taskmesh talks to an external Redis Cluster (redis.external.cluster). */}}
{{- define "taskmesh.redis.cluster" -}}
{{- if and (eq .Values.redis.mode "external") (eq (toString .Values.redis.external.cluster) "true") }}true{{ end -}}
{{- end -}}

{{/*
Cluster mode: the seed nodes of redis.external.addresses as "host:port"
entries (":6379" added when an entry has no port), joined with ",": the host
list of --redis (redis://[:PASSWORD@]H1:P1,H2:P2,...) and KEDA's `addresses`.
Each entry is checked: HOST[:PORT], without scheme, credentials or database.
*/}}
{{- define "taskmesh.redis.addresses" -}}
{{- if not (kindIs "slice" (.Values.redis.external.addresses | default list)) -}}
{{- fail "redis.external.addresses must be a list of HOST:PORT, e.g. [redis-0.redis:6379, redis-1.redis:6379]" -}}
{{- end -}}
{{- $out := list -}}
{{- range $i, $a := (.Values.redis.external.addresses | default list) -}}
{{- $s := toString $a -}}
{{- if regexMatch "/[0-9]+$" $s -}}
{{- if ne (regexFind "[0-9]+$" $s) "0" -}}
{{- fail (printf "redis.external.addresses[%d] %q: a Redis Cluster has only database 0" $i $s) -}}
{{- end -}}
{{- $s = regexReplaceAll "/0$" $s "" -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?$" $s) -}}
{{- fail (printf "redis.external.addresses[%d] %q must be HOST:PORT (no redis://, no password: that comes from redis.auth.existingSecret)" $i $s) -}}
{{- end -}}
{{- if not (contains ":" $s) }}{{ $s = printf "%s:6379" $s }}{{ end -}}
{{- $port := int (last (splitList ":" $s)) -}}
{{- if or (lt $port 1) (gt $port 65535) -}}
{{- fail (printf "redis.external.addresses[%d] %q: the port must be 1-65535" $i (toString $a)) -}}
{{- end -}}
{{- $out = append $out $s -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* The Redis ports taskmesh's pods dial, comma-separated (the NetworkPolicy egress). */}}
{{- define "taskmesh.redis.ports" -}}
{{- if include "taskmesh.redis.cluster" . -}}
{{- $ports := list -}}
{{- range (splitList "," (include "taskmesh.redis.addresses" .)) -}}
{{- $ports = append $ports (last (splitList ":" .)) -}}
{{- end -}}
{{- $ports | uniq | join "," -}}
{{- else -}}
{{- include "taskmesh.redis.port" . -}}
{{- end -}}
{{- end -}}

{{/* The parsed external URL, or the internal Service: "host:port" (cluster mode: the first seed). */}}
{{- define "taskmesh.redis.address" -}}
{{- if include "taskmesh.redis.cluster" . -}}
{{- include "taskmesh.redis.addresses" . | splitList "," | first -}}
{{- else if eq .Values.redis.mode "external" -}}
{{- if .Values.redis.external.addresses -}}
{{- fail "redis.external.addresses is the seed list of a Redis Cluster: set redis.external.cluster=true too (one server: redis.external.url)" -}}
{{- end -}}
{{- $u := urlParse (required "redis.external.url is required when redis.mode is external" .Values.redis.external.url) -}}
{{- if ne $u.scheme "redis" -}}
{{- fail (printf "redis.external.url must start with redis:// (got %q); hiredis has no TLS" .Values.redis.external.url) -}}
{{- end -}}
{{- if $u.userinfo -}}
{{- fail "redis.external.url must not contain a password: put it in the Secret named by redis.auth.existingSecret" -}}
{{- end -}}
{{- if contains ":" $u.host -}}{{ $u.host }}{{- else -}}{{ $u.host }}:6379{{- end -}}
{{- else -}}
{{- printf "%s.%s.svc.%s:6379" (include "taskmesh.redis.name" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
{{- end -}}

{{- define "taskmesh.redis.port" -}}
{{- include "taskmesh.redis.address" . | splitList ":" | last -}}
{{- end -}}

{{- define "taskmesh.redis.db" -}}
{{- if include "taskmesh.redis.cluster" . -}}
0
{{- else if eq .Values.redis.mode "external" -}}
{{- (urlParse .Values.redis.external.url).path | trimPrefix "/" | default "0" -}}
{{- else -}}
{{- .Values.redis.db -}}
{{- end -}}
{{- end -}}

{{/*
The env entries every Redis client (task_service, workers) gets: the password
from the Secret (REDIS_PASSWORD, defined first so that Kubernetes expands
$(REDIS_PASSWORD) in the URL after it), --redis, --redis_timeout and the
replica acknowledgement (--redis_min_replicas_acked, --redis_replicas_timeout).
*/}}
{{- define "taskmesh.redis.env" -}}
{{- $secret := include "taskmesh.redis.secretName" . -}}
{{- /* One server: HOST:PORT/DB. A cluster: the seed list H1:P1,H2:P2,... (database 0,
     the only one a cluster has; the bare seeds take the first one's password). */ -}}
{{- $where := printf "%s/%s" (include "taskmesh.redis.address" .) (include "taskmesh.redis.db" .) -}}
{{- if include "taskmesh.redis.cluster" . }}{{ $where = include "taskmesh.redis.addresses" . }}{{ end -}}
{{- if $secret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ include "taskmesh.redis.secretKey" . }}
- name: TASKMESH_REDIS
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s" $where | quote }}
{{- else }}
- name: TASKMESH_REDIS
  value: {{ printf "redis://%s" $where | quote }}
{{- end }}
- name: TASKMESH_REDIS_TIMEOUT
  value: {{ .Values.redis.timeout | quote }}
- name: TASKMESH_REDIS_MIN_REPLICAS_ACKED
  value: {{ .Values.redis.minReplicasAcked | quote }}
- name: TASKMESH_REDIS_REPLICAS_TIMEOUT
  value: {{ .Values.redis.replicasTimeout | quote }}
{{- end -}}

{{/* ---- metrics ---- */}}

{{/*
--metrics_listen of the task service or a worker pool: "<listenHost>:PORT", or
"" (the endpoint off) when metricsPort is 0: (dict "ctx" $ "port" P).
*/}}
{{- define "taskmesh.metricsListen" -}}
{{- if gt (int .port) 0 -}}{{ printf "%s:%d" .ctx.Values.listenHost (int .port) }}{{- end -}}
{{- end -}}

{{/* The container port of --metrics_listen (none when off): (dict "port" P). */}}
{{- define "taskmesh.metricsPort" -}}
{{- if gt (int .port) 0 }}
- name: metrics
  containerPort: {{ int .port }}
  protocol: TCP
{{- end }}
{{- end -}}

{{/*
A metricsPort must be 0 (off) or a port, and not the component's other
port: (dict "what" VALUE-NAME "port" P "other" PORT "otherWhat" VALUE-NAME).
*/}}
{{- define "taskmesh.validateMetricsPort" -}}
{{- if not (and (include "taskmesh.wholeNumber" .port) (le (int64 .port) 65535)) -}}
{{- fail (printf "%s must be 0 (no /metrics) or a port 1-65535 (got %v)" .what .port) -}}
{{- end -}}
{{- if and (gt (int .port) 0) (eq (int .port) (int .other)) -}}
{{- fail (printf "%s %d is also %s: --metrics_listen needs a port of its own" .what (int .port) .otherWhat) -}}
{{- end -}}
{{- end -}}

{{/* ---- pods ---- */}}

{{- define "taskmesh.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "taskmesh.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end -}}

{{/*
The pod-level fields shared by every taskmesh Deployment:
(dict "ctx" $ "cfg" <component values> "component" C ["pool" P] ["volumes" <more volumes>]).
*/}}
{{- define "taskmesh.podCommon" -}}
serviceAccountName: {{ include "taskmesh.serviceAccountName" .ctx }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- include "taskmesh.podSecurityContext" .ctx | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .cfg.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .cfg.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if and .cfg.topologySpread .cfg.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: {{ .cfg.topologySpread.maxSkew }}
    topologyKey: {{ .cfg.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ .cfg.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "taskmesh.selectorLabels" . | nindent 8 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- with .volumes }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod metadata: (dict "ctx" $ "cfg" <values> "component" C ["pool" P]). */}}
{{- define "taskmesh.podMetadata" -}}
labels:
  {{- include "taskmesh.labels" . | nindent 2 }}
  {{- with .cfg.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .cfg.podAnnotations }}
annotations:
  {{- range $k, $v := . }}
  {{ $k }}: {{ tpl (toString $v) $.ctx | quote }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
Container fields shared by every taskmesh container:
(dict "ctx" $ "cfg" <values> ["volumeMounts" <more mounts>]).
*/}}
{{- define "taskmesh.containerCommon" -}}
imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
securityContext:
  {{- include "taskmesh.containerSecurityContext" .ctx | nindent 2 }}
{{- with .cfg.extraArgs }}
args:
  {{- range . }}
  - {{ . | quote }}
  {{- end }}
{{- end }}
resources:
  {{- toYaml .cfg.resources | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- with .volumeMounts }}
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if gt (int .cfg.preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    exec:
      command: ["/bin/sleep", "{{ int .cfg.preStopSleepSeconds }}"]
{{- end }}
{{- end -}}

{{/* Extra env entries of a component, each value through tpl: (dict "ctx" $ "env" list). */}}
{{- define "taskmesh.extraEnv" -}}
{{- range .env }}
- {{ tpl (toYaml .) $.ctx | nindent 2 | trim }}
{{- end }}
{{- end -}}

{{/*
A CPU HorizontalPodAutoscaler: (dict "ctx" $ "name" N "component" C ["pool" P]
"min" M "max" X "cpu" PCT "behavior" B).
*/}}
{{- define "taskmesh.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "taskmesh.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ int .min }}
  maxReplicas: {{ int .max }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ int .cpu }}
  {{- with .behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* A PodDisruptionBudget: (dict "ctx" $ "name" N "component" C "pdb" <pdb values>). */}}
{{- define "taskmesh.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "taskmesh.labels" . | nindent 4 }}
spec:
  {{- if hasKey .pdb "minAvailable" }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "taskmesh.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/*
A worker pool's settings: the pool's own values over the `workers` defaults.
Returns YAML; use with fromYaml. Argument: (dict "ctx" $ "pool" <pool>).
*/}}
{{/*
The partitions each queue of a pool spreads over at most (the pool's
`partitions` map, QUEUE: K; unlisted queues 1), as --partition_limits
"QUEUE=K,...". The pool's KEDA triggers watch exactly those partitions'
streams; the task_service refuses more (so no task can sit where no trigger
looks) and the workers create their streams at start (so the triggers read 0
before the queue is partitioned). Called with (dict "cfg" $c) for one pool, or
with (dict "ctx" $) for every pool's queues (the task_service; a queue in two
pools gets the smaller count).
*/}}
{{- define "taskmesh.partitionLimits" -}}
{{- $limits := dict -}}
{{- $pools := list -}}
{{- if .cfg }}{{ $pools = list .cfg }}{{ else }}{{ $pools = .ctx.Values.workers.pools }}{{ end -}}
{{- range $pool := $pools -}}
{{- range $q := $pool.queues -}}
{{- $k := int (index ($pool.partitions | default dict) $q | default 1) -}}
{{- if or (not (hasKey $limits $q)) (lt $k (int (get $limits $q))) }}{{ $_ := set $limits $q $k }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $out := list -}}
{{- range $q := keys $limits | sortAlpha }}{{ $out = append $out (printf "%s=%d" $q (int (get $limits $q))) }}{{ end -}}
{{- join "," $out -}}
{{- end -}}

{{- define "taskmesh.worker.config" -}}
{{- $defaults := omit (deepCopy .ctx.Values.workers) "pools" -}}
{{- $cfg := mergeOverwrite $defaults (deepCopy .pool) -}}
{{- if not (hasKey $cfg "minReplicas") }}{{ $_ := set $cfg "minReplicas" 0 }}{{ end -}}
{{- if not (hasKey $cfg "maxReplicas") }}{{ $_ := set $cfg "maxReplicas" 10 }}{{ end -}}
{{- if not $cfg.lagCount }}{{ $_ := set $cfg "lagCount" $cfg.concurrency }}{{ end -}}
{{- /* mergeOverwrite keeps the default over a pool's 0: metricsPort 0 is "off". */ -}}
{{- if hasKey .pool "metricsPort" }}{{ $_ := set $cfg "metricsPort" .pool.metricsPort }}{{ end -}}
{{- $_ := set $cfg "terminationGracePeriodSeconds" (add $cfg.preStopSleepSeconds $cfg.drainTimeoutSeconds $cfg.terminationGraceMarginSeconds) -}}
{{ toYaml $cfg }}
{{- end -}}

{{/*
Values checks that Kubernetes could not catch, failing `helm install` with a
clear message instead of deploying something that cannot work.
*/}}
{{- define "taskmesh.validateValues" -}}
{{- range $pool := .Values.workers.pools -}}
{{- range $q, $k := ($pool.partitions | default dict) -}}
{{- if not (has $q $pool.queues) -}}
{{- fail (printf "workers.pools[%s].partitions names queue %q, which the pool does not serve (queues: %s)" $pool.name $q (join "," $pool.queues)) -}}
{{- end -}}
{{- if or (lt (int $k) 1) (gt (int $k) 64) -}}
{{- fail (printf "workers.pools[%s].partitions.%s must be from 1 to 64 (got %v)" $pool.name $q $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.redis.mode (list "internal" "external")) -}}
{{- fail (printf "redis.mode must be internal or external (got %q)" .Values.redis.mode) -}}
{{- end -}}
{{- if not (has .Values.redis.internal.appendfsync (list "always" "everysec")) -}}
{{- fail (printf "redis.internal.appendfsync must be always or everysec (got %q)" .Values.redis.internal.appendfsync) -}}
{{- end -}}
{{- $ext := .Values.redis.external | default dict -}}
{{- if not (has (toString ($ext.cluster | default false)) (list "true" "false")) -}}
{{- fail (printf "redis.external.cluster must be true or false (got %q)" (toString $ext.cluster)) -}}
{{- end -}}
{{- if eq (toString $ext.cluster) "true" -}}
{{- if ne .Values.redis.mode "external" -}}
{{- fail "redis.external.cluster=true needs redis.mode=external (the chart's internal Redis is one server)" -}}
{{- end -}}
{{- if not $ext.addresses -}}
{{- fail "redis.external.cluster=true needs redis.external.addresses: the cluster's seed nodes as HOST:PORT, e.g. [redis-0.redis:6379, redis-1.redis:6379]" -}}
{{- end -}}
{{- if $ext.url -}}
{{- fail "redis.external.url and redis.external.addresses exclude each other: url is one server, addresses (with cluster=true) a Redis Cluster" -}}
{{- end -}}
{{- if ne (toString .Values.redis.db) "0" -}}
{{- fail (printf "redis.db is %v but a Redis Cluster has only database 0 (redis.external.cluster=true): set redis.db=0" .Values.redis.db) -}}
{{- end -}}
{{- $_ := include "taskmesh.redis.addresses" . -}}
{{- else -}}
{{- if $ext.addresses -}}
{{- fail "redis.external.addresses is the seed list of a Redis Cluster: set redis.external.cluster=true too (one server: redis.external.url)" -}}
{{- end -}}
{{- if and (eq .Values.redis.mode "external") (not $ext.url) -}}
{{- fail "redis.external.url is required when redis.mode is external (for a Redis Cluster: redis.external.cluster=true and redis.external.addresses)" -}}
{{- end -}}
{{- end -}}
{{- if not .Values.workers.pools -}}
{{- fail "workers.pools must list at least one pool" -}}
{{- end -}}
{{- $seen := dict -}}
{{- $queues := dict -}}
{{- range .Values.workers.pools -}}
{{- if not (regexMatch "^[a-z]([-a-z0-9]{0,18}[a-z0-9])?$" (toString .name)) -}}
{{- fail (printf "workers.pools: pool name %q must be a DNS label of at most 20 characters" (toString .name)) -}}
{{- end -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "workers.pools: pool name %q is used twice" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- if not .queues -}}
{{- fail (printf "workers.pools[%s].queues must list at least one queue" .name) -}}
{{- end -}}
{{- range .queues -}}
{{- if not (regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$" (toString .)) -}}
{{- fail (printf "queue name %q: use letters, digits, '.', '_' and '-'" (toString .)) -}}
{{- end -}}
{{- $_ := set $queues (toString .) true -}}
{{- end -}}
{{- $c := fromYaml (include "taskmesh.worker.config" (dict "ctx" $ "pool" .)) -}}
{{- include "taskmesh.validateMetricsPort" (dict "what" (printf "workers.pools[%s].metricsPort" .name) "port" $c.metricsPort "other" $c.healthPort "otherWhat" "its healthPort") -}}
{{- $min := int (default 0 .minReplicas) -}}
{{- $max := int (default 10 .maxReplicas) -}}
{{- if or (lt $max 1) (gt $min $max) -}}
{{- fail (printf "workers.pools[%s]: need 0 <= minReplicas <= maxReplicas and maxReplicas >= 1" .name) -}}
{{- end -}}
{{- end -}}
{{- include "taskmesh.validateMetricsPort" (dict "what" "taskService.metricsPort" "port" .Values.taskService.metricsPort "other" .Values.taskService.port "otherWhat" "taskService.port") -}}
{{- if and .Values.tests.enabled .Values.gateway.enabled (not (hasKey $queues .Values.tests.queue)) -}}
{{- fail (printf "tests.queue %q is served by no worker pool" .Values.tests.queue) -}}
{{- end -}}
{{- /* --metrics_listen binds IPv4 only (IPV4:PORT). */ -}}
{{- $metricsOn := gt (int .Values.taskService.metricsPort) 0 -}}
{{- range .Values.workers.pools -}}
{{- if gt (int (fromYaml (include "taskmesh.worker.config" (dict "ctx" $ "pool" .))).metricsPort) 0 }}{{ $metricsOn = true }}{{ end -}}
{{- end -}}
{{- if and $metricsOn (not (regexMatch "^[0-9]{1,3}(\\.[0-9]{1,3}){3}$" (toString .Values.listenHost))) -}}
{{- fail (printf "listenHost %q: --metrics_listen binds an IPv4 address only; on an IPv6-only cluster set taskService.metricsPort and workers.metricsPort (and any pool's) to 0" (toString .Values.listenHost)) -}}
{{- end -}}
{{- /* Periodic tasks: the worker checks the file fully when it starts (a bad
     entry would crash-loop every worker pod); refuse what can be seen here. */ -}}
{{- $names := dict -}}
{{- range $i, $p := (.Values.periodicTasks | default list) -}}
{{- if not (kindIs "map" $p) -}}
{{- fail (printf "periodicTasks[%d] must be a map with name, queue, schedule and task" $i) -}}
{{- end -}}
{{- if not (and $p.name $p.queue $p.schedule (kindIs "map" $p.task)) -}}
{{- fail (printf "periodicTasks[%d]: name, queue, schedule and task.type are required" $i) -}}
{{- end -}}
{{- if not $p.task.type -}}
{{- fail (printf "periodicTasks[%d]: name, queue, schedule and task.type are required" $i) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9_-]{1,64}$" (toString $p.name)) -}}
{{- fail (printf "periodicTasks[%d].name %q: use 1-64 characters of [A-Za-z0-9_-]" $i (toString $p.name)) -}}
{{- end -}}
{{- if not (hasKey $queues (toString $p.queue)) -}}
{{- fail (printf "periodicTasks[%d].queue %q is served by no worker pool: its tasks would never run" $i (toString $p.queue)) -}}
{{- end -}}
{{- $key := printf "%s/%s" (toString $p.queue) (toString $p.name) -}}
{{- if hasKey $names $key -}}
{{- fail (printf "periodicTasks[%d]: name %q is used twice on queue %q" $i (toString $p.name) (toString $p.queue)) -}}
{{- end -}}
{{- $_ := set $names $key true -}}
{{- end -}}
{{- if .Values.gateway.enabled -}}
{{- include "taskmesh.validateGateway" . -}}
{{- end -}}
{{- if and .Values.periodicTasks .Values.keda.enabled -}}
{{- $alwaysOn := false -}}
{{- range .Values.workers.pools -}}
{{- $c := fromYaml (include "taskmesh.worker.config" (dict "ctx" $ "pool" .)) -}}
{{- if ge (int $c.minReplicas) 1 }}{{ $alwaysOn = true }}{{ end -}}
{{- end -}}
{{- if not $alwaysOn -}}
{{- fail "periodicTasks need a worker running at all times: set minReplicas >= 1 on at least one pool (every worker schedules them, a pool scaled to zero schedules nothing, and a tick missed while no worker runs is skipped, not replayed)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
"true" when the argument is a whole number >= 0: a YAML number (Helm reads
them as float64, so never print one with toString: 1048576 would be
"1.048576e+06") or a string of digits.
*/}}
{{- define "taskmesh.wholeNumber" -}}
{{- if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) -}}
{{- if and (ge (float64 .) 0.0) (eq (float64 .) (float64 (int64 .))) }}true{{ end -}}
{{- else if kindIs "string" . -}}
{{- if regexMatch "^[0-9]+$" . }}true{{ end -}}
{{- end -}}
{{- end -}}

{{/*
The gateway's values: the binary would refuse most of these at start (a
crash-looping Deployment); refusing them here names the value at fault.
*/}}
{{- define "taskmesh.validateGateway" -}}
{{- $c := .Values.gateway -}}
{{- if hasKey $c "terminationGracePeriodSeconds" -}}
{{- fail "gateway.terminationGracePeriodSeconds is derived (preStopSleepSeconds + drainTimeoutSeconds + terminationGraceMarginSeconds): set gateway.drainTimeoutSeconds instead" -}}
{{- end -}}
{{- range $k := list "taskmeshProtos" "jsonUseProtoNames" "jsonEmitDefaults" "ignoreUnknownQueryParameters" "ignoreUnknownJsonFields" "accessLog" -}}
{{- if not (kindIs "bool" (index $c $k)) -}}
{{- fail (printf "gateway.%s must be true or false, unquoted (got %q)" $k (toString (index $c $k))) -}}
{{- end -}}
{{- end -}}
{{- $duration := "^(0|([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h))+)$" -}}
{{- range $k := list "headerTimeout" "bodyTimeout" "idleTimeout" "writeTimeout" "defaultDeadline" "maxDeadline" -}}
{{- if not (regexMatch $duration (toString (index $c $k))) -}}
{{- fail (printf "gateway.%s must be a duration such as 500ms, 30s, 1m or 1h (got %v)" $k (index $c $k)) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "ioThreads" "upstreamChannels" "drainTimeoutSeconds" "preStopSleepSeconds" -}}
{{- if not (include "taskmesh.wholeNumber" (index $c $k)) -}}
{{- fail (printf "gateway.%s must be a whole number >= 0 (got %v)" $k (index $c $k)) -}}
{{- end -}}
{{- end -}}
{{- range $k := list "maxBodyBytes" "maxHeaders" "maxConcurrentCalls" "maxConnections" "maxResponseBytes" -}}
{{- if not (and (include "taskmesh.wholeNumber" (index $c $k)) (ge (int64 (index $c $k)) 1) (le (int64 (index $c $k)) 2147483647)) -}}
{{- fail (printf "gateway.%s must be a whole number from 1 to 2147483647 (got %v)" $k (index $c $k)) -}}
{{- end -}}
{{- end -}}
{{- if not (and (include "taskmesh.wholeNumber" $c.maxHeaderBytes) (ge (int64 $c.maxHeaderBytes) 1024) (le (int64 $c.maxHeaderBytes) 2147483647)) -}}
{{- fail (printf "gateway.maxHeaderBytes must be at least 1024 (got %v)" $c.maxHeaderBytes) -}}
{{- end -}}
{{- if not (and (include "taskmesh.wholeNumber" $c.maxJsonDepth) (ge (int64 $c.maxJsonDepth) 1) (le (int64 $c.maxJsonDepth) 99)) -}}
{{- fail (printf "gateway.maxJsonDepth must be 1-99: protobuf stops at 100 (got %v)" $c.maxJsonDepth) -}}
{{- end -}}
{{- if not (and (include "taskmesh.wholeNumber" $c.terminationGraceMarginSeconds) (ge (int64 $c.terminationGraceMarginSeconds) 5)) -}}
{{- fail (printf "gateway.terminationGraceMarginSeconds must be at least 5: after the drain the gateway waits up to 5 s for cancelled upstream calls (got %v)" $c.terminationGraceMarginSeconds) -}}
{{- end -}}
{{- $target := "^(dns:///)?[A-Za-z0-9.-]+:[0-9]{1,5}$" -}}
{{- if and $c.upstream (not (regexMatch $target (toString $c.upstream))) -}}
{{- fail (printf "gateway.upstream %q must be HOST:PORT or dns:///NAME:PORT" (toString $c.upstream)) -}}
{{- end -}}
{{- range $svc, $t := ($c.routes | default dict) -}}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)+$" (toString $svc)) -}}
{{- fail (printf "gateway.routes: %q is not a fully qualified service name (package.Service)" (toString $svc)) -}}
{{- end -}}
{{- if not (regexMatch $target (toString $t)) -}}
{{- fail (printf "gateway.routes[%s]: %q must be HOST:PORT or dns:///NAME:PORT" (toString $svc) (toString $t)) -}}
{{- end -}}
{{- end -}}
{{- range ($c.corsOrigins | default list) -}}
{{- if not (regexMatch "^(\\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)$" (toString .)) -}}
{{- fail (printf "gateway.corsOrigins: %q is neither * nor an origin such as https://app.example.com[:PORT]" (toString .)) -}}
{{- end -}}
{{- end -}}
{{- $ds := $c.descriptorSets | default dict -}}
{{- $total := 0 -}}
{{- range $k, $v := (include "taskmesh.gateway.descriptorSets" . | fromYaml) -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $k) -}}
{{- fail (printf "gateway.descriptorSets.binaryData: file name %q: use letters, digits, '-', '_' and '.'" $k) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Za-z0-9+/]+={0,2}$" (toString $v)) -}}
{{- fail (printf "gateway.descriptorSets.binaryData[%s] is not base64 (give the file's bytes as `base64 -w0 FILE`)" $k) -}}
{{- end -}}
{{- $total = add $total (len (toString $v)) -}}
{{- end -}}
{{- if gt (int $total) 1398100 -}}
{{- fail "gateway.descriptorSets.binaryData: over 1 MiB, more than a ConfigMap holds: put the files in your own volume (descriptorSets.volume)" -}}
{{- end -}}
{{- if and $ds.volume (not $ds.volumeFiles) -}}
{{- fail "gateway.descriptorSets.volume is set but volumeFiles lists no file to load from it" -}}
{{- end -}}
{{- if and $ds.volumeFiles (not $ds.volume) -}}
{{- fail "gateway.descriptorSets.volumeFiles needs gateway.descriptorSets.volume (the volume they are on)" -}}
{{- end -}}
{{- if and $ds.volume (hasKey $ds.volume "name") -}}
{{- fail "gateway.descriptorSets.volume is a volume source without `name` (e.g. {configMap: {name: apis}})" -}}
{{- end -}}
{{- if not $c.taskmeshProtos -}}
{{- if not (or (include "taskmesh.gateway.descriptorSets" .) $ds.volumeFiles) -}}
{{- fail "gateway.taskmeshProtos=false leaves the gateway nothing to serve: give gateway.descriptorSets" -}}
{{- end -}}
{{- if .Values.tests.enabled -}}
{{- fail "gateway.taskmeshProtos=false: the helm test creates a task through the taskmesh API; set tests.enabled=false" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* NetworkPolicy egress rules to DNS. */}}
{{- define "taskmesh.np.dns" -}}
- to:
    {{- toYaml .Values.networkPolicy.dns | nindent 4 }}
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{/*
NetworkPolicy ingress rule: Prometheus (serviceMonitor.prometheusFrom; empty:
any peer) to a metrics port: (dict "ctx" $ "port" P).
*/}}
{{- define "taskmesh.np.metricsIngress" -}}
- ports:
    - {protocol: TCP, port: {{ int .port }}}
  {{- with .ctx.Values.serviceMonitor.prometheusFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule to Redis (the internal pods, or the external port). */}}
{{- define "taskmesh.np.redisEgress" -}}
{{- if eq .Values.redis.mode "internal" -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "taskmesh.selectorLabels" (dict "ctx" . "component" "redis") | nindent 10 }}
  ports:
    - {protocol: TCP, port: 6379}
{{- else -}}
{{- /* A cluster: the seeds' ports; clients also dial every node the cluster
     announces (CLUSTER SHARDS), on those ports: networkPolicyPeers must cover them all. */ -}}
- ports:
    {{- range (splitList "," (include "taskmesh.redis.ports" .)) }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with .Values.redis.external.networkPolicyPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
{{- end -}}
