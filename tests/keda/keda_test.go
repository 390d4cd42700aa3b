package keda

// KEDA's own redis-streams scaler (github.com/kedacore/keda/v2/pkg/scalers, the
// code KEDA's operator and metrics server run), built from the rendered
// triggers, plus the small part of KEDA and of the Kubernetes HPA that turns
// the scalers' answers into a replica count. Only that last part is written
// here; it is kept to the rules quoted below, with where each comes from.

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// Pool is one ScaledObject: its scalers and its replica bounds.
type Pool struct {
	Name     string
	Min, Max int
	Fallback bool // spec.fallback set (the chart's keda.fallbackReplicas > 0)
	triggers []poolTrigger
}

type poolTrigger struct {
	stream, kind string // kind: "lag" or "pending"
	scaler       scalers.Scaler
	metricName   string
	targetMilli  int64 // the HPA target (AverageValue), from the scaler's own metric spec
}

// Reading is one trigger's answer in one poll.
type Reading struct {
	Stream, Kind string
	ValueMilli   int64 // the external metric value, in milli-units as the HPA reads it
	TargetMilli  int64
	Active       bool
	Err          error
}

// Poll is every trigger's answer in one polling interval.
type Poll struct {
	Readings []Reading
	Active   bool // any trigger active (KEDA: isScaledObjectActive)
	Error    bool // any trigger failed (KEDA: isScaledObjectError)
}

// Value returns the metric of the trigger of `kind` on `stream` (in whole
// units; a nil lag reads -1), and whether it was read without error.
func (p Poll) Value(stream, kind string) (float64, bool) {
	for _, r := range p.Readings {
		if r.Stream == stream && r.Kind == kind {
			return float64(r.ValueMilli) / 1000, r.Err == nil
		}
	}
	return math.NaN(), false
}

func (p Poll) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "active=%v error=%v [", p.Active, p.Error)
	for i, r := range p.Readings {
		if i > 0 {
			b.WriteString(" ")
		}
		name := r.Stream[strings.Index(r.Stream, "}:")+2:]
		if r.Err != nil {
			fmt.Fprintf(&b, "%s/%s=ERR(%v)", name, r.Kind, r.Err)
			continue
		}
		fmt.Fprintf(&b, "%s/%s=%g", name, r.Kind, float64(r.ValueMilli)/1000)
		if r.Active {
			b.WriteString("*")
		}
	}
	b.WriteString("] (* = active)")
	return b.String()
}

// NewPool builds one KEDA scaler per trigger of the rendered ScaledObject
// (for redis-cluster-streams, `address` is the comma-separated seed list that
// replaces the rendered `addresses`),
// as KEDA's scale handler does (pkg/scaling/scalers_builder.go builds a
// scalersconfig.ScalerConfig per trigger; its buildScaler maps "redis-streams" to
// NewRedisStreamsScaler(ctx, false, false, config) and "redis-cluster-streams"
// to NewRedisStreamsScaler(ctx, true, false, config)). Only the address is
// replaced (the rendered one is the in-cluster Service name), and the password
// is passed as the chart's TriggerAuthentication would (authParams.password).
func NewPool(ctx context.Context, t *testing.T, pool string, so ScaledObject, address, password string) *Pool {
	t.Helper()
	p := &Pool{Name: pool, Min: so.Spec.MinReplicaCount, Max: so.Spec.MaxReplicaCount,
		Fallback: so.Spec.Fallback != nil && so.Spec.Fallback.Replicas > 0}
	for i, tr := range so.Spec.Triggers {
		meta := map[string]string{}
		for k, v := range tr.Metadata {
			meta[k] = v
		}
		auth := map[string]string{}
		if tr.AuthenticationRef != nil {
			auth["password"] = password
		}
		clustered := false
		switch tr.Type {
		case "redis-streams":
			meta["address"] = address
		case "redis-cluster-streams":
			clustered = true
			if _, ok := meta["addresses"]; !ok {
				t.Fatalf("pool %s: trigger %d is redis-cluster-streams without addresses: %v", pool, i, tr.Metadata)
			}
			meta["addresses"] = address
		default:
			t.Fatalf("pool %s: trigger %d has type %q; this test knows redis-streams and redis-cluster-streams only",
				pool, i, tr.Type)
		}
		cfg := &scalersconfig.ScalerConfig{
			ScalableObjectName:      so.Metadata.Name,
			ScalableObjectNamespace: "kedatest",
			ScalableObjectType:      "ScaledObject",
			TriggerType:             tr.Type,
			TriggerMetadata:         meta,
			ResolvedEnv:             map[string]string{},
			AuthParams:              auth,
			TriggerIndex:            i,
		}
		s, err := scalers.NewRedisStreamsScaler(ctx, clustered, false, cfg)
		if err != nil {
			t.Fatalf("pool %s: KEDA's NewRedisStreamsScaler for trigger %d (%v): %v", pool, i, tr.Metadata, err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		specs := s.GetMetricSpecForScaling(ctx)
		if len(specs) != 1 || specs[0].External == nil || specs[0].External.Target.AverageValue == nil {
			t.Fatalf("pool %s: trigger %d: want one External AverageValue metric spec, got %+v", pool, i, specs)
		}
		kind := "pending"
		if _, ok := tr.Metadata["lagCount"]; ok {
			kind = "lag"
		}
		p.triggers = append(p.triggers, poolTrigger{
			stream: tr.Metadata["stream"], kind: kind, scaler: s,
			metricName:  specs[0].External.Metric.Name,
			targetMilli: specs[0].External.Target.AverageValue.MilliValue(),
		})
	}
	return p
}

// Poll asks every scaler once (KEDA: scaleHandler.getScaledObjectState ORs
// the triggers' activity and ORs their errors).
func (p *Pool) Poll(ctx context.Context) Poll {
	var out Poll
	for _, tr := range p.triggers {
		r := Reading{Stream: tr.stream, Kind: tr.kind, TargetMilli: tr.targetMilli}
		metrics, active, err := tr.scaler.GetMetricsAndActivity(ctx, tr.metricName)
		r.Active, r.Err = active, err
		if err == nil {
			if len(metrics) != 1 {
				r.Err = fmt.Errorf("%d metric values, want 1", len(metrics))
			} else {
				r.ValueMilli = metrics[0].Value.MilliValue()
			}
		}
		out.Active = out.Active || r.Active
		out.Error = out.Error || r.Err != nil
		out.Readings = append(out.Readings, r)
	}
	return out
}

// Reconcile is one KEDA polling interval followed by one HPA sync, from
// `current` replicas, ignoring time (cooldownPeriod, HPA stabilization
// windows and rate-limit policies): it gives the count KEDA and the HPA aim
// for, not when they get there. The steps:
//
// KEDA, pkg/scaling/executor/scale_scaledobjects.go RequestScale (v2.21.0):
//   - active and current == 0: scaleFromZeroOrIdle sets max(minReplicaCount, 1)
//     (minReplicaCount when > 0, else 1);
//   - not active, some trigger failed, no fallback: nothing (the count stays);
//     with a fallback: nothing here either (the HPA gets fallback metrics);
//   - not active, current > 0 and minReplicaCount == 0: scaleToZeroOrIdle
//     sets 0 (after cooldownPeriod since the last active poll);
//   - not active and current < minReplicaCount: sets minReplicaCount.
//
// Then the HPA KEDA owns, when the count is above zero (an HPA does nothing
// at 0 replicas: "ScalingDisabled"), with minReplicas max(minReplicaCount, 1)
// (KEDA apis/keda/v1alpha1/scaledobject_types.go GetHPAMinReplicas) and maxReplicaCount:
// Kubernetes pkg/controller/podautoscaler/replica_calculator.go
// GetExternalPerPodMetricReplicas, for an External metric with an
// AverageValue target:
//
//	usageRatio := usage / (targetAverageValue * currentReplicas)
//	if |1 - usageRatio| > tolerance (0.1) { replicas = ceil(usage / targetAverageValue) }
//	else { replicas = currentReplicas }
//
// and horizontal.go computeReplicasForMetrics takes the largest proposal over
// all metrics; when some metric could not be read it refuses to scale down
// (it keeps the current count unless a valid metric asks for more).
// normalizeDesiredReplicas then clamps to [minReplicas, maxReplicas].
// A scaler that returns a value also hands it to the HPA when it is inactive:
// KEDA's metrics server serves every trigger's value, active or not.
func (p *Pool) Reconcile(poll Poll, current int) (next int, why string) {
	switch {
	case poll.Active && current == 0:
		next = max(p.Min, 1)
		why = fmt.Sprintf("KEDA activates %d->%d", current, next)
	case !poll.Active && poll.Error:
		next = current
		why = "KEDA: inactive with a trigger error: no change (TriggerError)"
		if p.Fallback {
			why = "KEDA: inactive with a trigger error: fallback pending"
		}
	case !poll.Active && current > 0 && p.Min == 0:
		return 0, fmt.Sprintf("KEDA deactivates %d->0 (after cooldownPeriod)", current)
	case !poll.Active && current < p.Min:
		next = p.Min
		why = fmt.Sprintf("KEDA sets minReplicaCount %d->%d", current, next)
	default:
		next = current
		why = "KEDA: no change"
	}
	if next == 0 {
		return 0, why
	}
	h, hwhy := p.hpa(poll, next)
	return h, why + "; " + hwhy
}

func (p *Pool) hpa(poll Poll, current int) (int, string) {
	const tolerance = 0.1
	desired, invalid := 0, 0
	for _, r := range poll.Readings {
		if r.Err != nil {
			invalid++
			continue
		}
		proposal := current
		usageRatio := float64(r.ValueMilli) / (float64(r.TargetMilli) * float64(current))
		if math.Abs(1.0-usageRatio) > tolerance {
			proposal = int(math.Ceil(float64(r.ValueMilli) / float64(r.TargetMilli)))
		}
		desired = max(desired, proposal)
	}
	if invalid > 0 && desired < current {
		desired = current
	}
	hpaMin := max(p.Min, 1)
	desired = min(max(desired, hpaMin), p.Max)
	return desired, fmt.Sprintf("HPA %d->%d", current, desired)
}

// Settle repeats Reconcile on one poll until the count stops changing (at
// most 10 rounds): where KEDA and the HPA end up if the queue stays as it is.
func (p *Pool) Settle(poll Poll, current int) (int, string) {
	trail := []string{fmt.Sprint(current)}
	var whys []string
	for range 10 {
		next, why := p.Reconcile(poll, current)
		whys = append(whys, why)
		if next == current {
			break
		}
		current = next
		trail = append(trail, fmt.Sprint(current))
	}
	return current, strings.Join(trail, " -> ") + "  (" + strings.Join(whys, " | ") + ")"
}

// KEDA's scalers log through controller-runtime's global logger; this test
// prints every scaler error itself.
func init() { logf.SetLogger(logr.Discard()) }
