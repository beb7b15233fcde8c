package lambda

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Asynchronous invocation settings (Put/Get/Update/Delete/ListFunctionEventInvokeConfig(s)): how
// often a failed event is retried (0 to 2), how old an event may get before it is dropped, and
// where the record of an event goes when it succeeds or finally fails: another function, invoked
// asynchronously with Lambda's invocation record. They are kept on the function's record, per
// qualifier, so they go with the function.

// eventInvokeConfig is one qualifier's settings.
type eventInvokeConfig struct {
	MaxRetries   *int      `json:"maxRetries,omitempty"`
	MaxAgeSecs   *int      `json:"maxAgeSeconds,omitempty"`
	OnSuccess    string    `json:"onSuccess,omitempty"`
	OnFailure    string    `json:"onFailure,omitempty"`
	LastModified time.Time `json:"lastModified"`
}

// Lambda's defaults for asynchronous invocations.
const (
	defaultMaxRetries = 2
	defaultMaxAge     = 6 * time.Hour
)

func (c eventInvokeConfig) retries() int {
	if c.MaxRetries != nil {
		return *c.MaxRetries
	}
	return defaultMaxRetries
}

func (c eventInvokeConfig) maxAge() time.Duration {
	if c.MaxAgeSecs != nil {
		return time.Duration(*c.MaxAgeSecs) * time.Second
	}
	return defaultMaxAge
}

type destination struct {
	Destination string `json:"Destination,omitempty"`
}

type destinationConfig struct {
	OnSuccess *destination `json:"OnSuccess,omitempty"`
	OnFailure *destination `json:"OnFailure,omitempty"`
}

type eventInvokeConfigOut struct {
	LastModified             float64           `json:"LastModified"`
	FunctionArn              string            `json:"FunctionArn"`
	MaximumRetryAttempts     *int              `json:"MaximumRetryAttempts,omitempty"`
	MaximumEventAgeInSeconds *int              `json:"MaximumEventAgeInSeconds,omitempty"`
	DestinationConfig        destinationConfig `json:"DestinationConfig"`
}

func (s *Service) eventConfigOut(r *awsproto.Request, name, qualifier string, c eventInvokeConfig) eventInvokeConfigOut {
	out := eventInvokeConfigOut{LastModified: float64(c.LastModified.UnixMilli()) / 1000,
		FunctionArn: s.arn(r, ref{name: name, qualifier: cmp.Or(qualifier, "$LATEST")}), MaximumRetryAttempts: c.MaxRetries,
		MaximumEventAgeInSeconds: c.MaxAgeSecs, DestinationConfig: destinationConfig{OnSuccess: &destination{}, OnFailure: &destination{}}}
	out.DestinationConfig.OnSuccess.Destination = c.OnSuccess
	out.DestinationConfig.OnFailure.Destination = c.OnFailure
	return out
}

type eventInvokeConfigInput struct {
	MaximumRetryAttempts     *int
	MaximumEventAgeInSeconds *int
	DestinationConfig        *destinationConfig
}

var functionDestinationRE = regexp.MustCompile(`^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[a-zA-Z0-9-_]{1,64}(:(\$LATEST|[a-zA-Z0-9-_]+))?$`)

// checkDestination accepts a function of this account and region; other kinds of destination
// (SQS, SNS, EventBridge, S3) are not in nubis yet.
func (s *Service) checkDestination(r *awsproto.Request, arn string) error {
	if arn == "" {
		return nil
	}
	if len(arn) > 350 {
		return validation(arn, "destinationConfig.destination", "Member must have length less than or equal to 350")
	}
	if !functionDestinationRE.MatchString(arn) {
		return invalidParam("The destination ARN %s is not supported: nubis delivers to Lambda functions only (SQS, SNS, EventBridge and S3 are not there yet).", arn)
	}
	if _, err := s.parseRef(r, arn, ""); err != nil {
		return invalidParam("The destination %s is not a function of this account and region.", arn)
	}
	return nil
}

func (in eventInvokeConfigInput) check(s *Service, r *awsproto.Request) error {
	if v := in.MaximumRetryAttempts; v != nil && *v < 0 {
		return validation(*v, "maximumRetryAttempts", "Member must have value greater than or equal to 0")
	} else if v != nil && *v > 2 {
		return validation(*v, "maximumRetryAttempts", "Member must have value less than or equal to 2")
	}
	if v := in.MaximumEventAgeInSeconds; v != nil && *v < 60 {
		return validation(*v, "maximumEventAgeInSeconds", "Member must have value greater than or equal to 60")
	} else if v != nil && *v > 21600 {
		return validation(*v, "maximumEventAgeInSeconds", "Member must have value less than or equal to 21600")
	}
	if d := in.DestinationConfig; d != nil {
		for _, dst := range []*destination{d.OnSuccess, d.OnFailure} {
			if dst != nil {
				if err := s.checkDestination(r, dst.Destination); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// apply sets what the input gives (replace: also clears what it leaves out, as Put does).
func (in eventInvokeConfigInput) apply(c *eventInvokeConfig, replace bool) {
	if replace {
		*c = eventInvokeConfig{}
	}
	if in.MaximumRetryAttempts != nil {
		c.MaxRetries = in.MaximumRetryAttempts
	}
	if in.MaximumEventAgeInSeconds != nil {
		c.MaxAgeSecs = in.MaximumEventAgeInSeconds
	}
	if d := in.DestinationConfig; d != nil {
		if d.OnSuccess != nil {
			c.OnSuccess = d.OnSuccess.Destination
		}
		if d.OnFailure != nil {
			c.OnFailure = d.OnFailure.Destination
		}
	}
}

func noEventConfig(arn string) error {
	return notFound("The function %s doesn't have an EventInvokeConfig", arn)
}

// eventConfigRef reads the function and Qualifier of an event invoke config call; the qualifier
// must exist.
func (s *Service) eventConfigRef(tx store.Tx, r *awsproto.Request) (ref, function, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), r.HTTP.URL.Query().Get("Qualifier"))
	if err != nil {
		return f, function{}, err
	}
	fn, err := s.requireFunction(tx, r, ref{name: f.name})
	if err != nil {
		return f, fn, err
	}
	if f.qualifier == "$LATEST" {
		f.qualifier = "" // one config for the unqualified function and $LATEST, as on AWS
	}
	if f.qualifier != "" {
		if _, err := s.resolve(tx, r, f); err != nil {
			return f, fn, err
		}
	}
	return f, fn, nil
}

// putEventInvokeConfig answers Put (replace) and Update (merge; the config must exist).
func (s *Service) putEventInvokeConfig(replace bool) func(context.Context, *awsproto.Request) (int, any, error) {
	return func(ctx context.Context, r *awsproto.Request) (int, any, error) {
		var in eventInvokeConfigInput
		if err := decode(r, &in); err != nil {
			return 0, nil, err
		}
		if err := in.check(s, r); err != nil {
			return 0, nil, err
		}
		var out eventInvokeConfigOut
		err := s.store.Update(ctx, func(tx store.Tx) error {
			f, fn, err := s.eventConfigRef(tx, r)
			if err != nil {
				return err
			}
			c, ok := fn.EventInvoke[f.qualifier]
			if !ok && !replace {
				return noEventConfig(s.arn(r, f))
			}
			in.apply(&c, replace)
			c.LastModified = s.now()
			if fn.EventInvoke == nil {
				fn.EventInvoke = map[string]eventInvokeConfig{}
			}
			fn.EventInvoke[f.qualifier] = c
			out = s.eventConfigOut(r, f.name, f.qualifier, c)
			return store.PutJSON(tx, s.functionKey(r, f.name), fn)
		})
		if err != nil {
			return 0, nil, err
		}
		return 200, out, nil
	}
}

func (s *Service) getEventInvokeConfig(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var out eventInvokeConfigOut
	err := s.view(ctx, func(tx store.Tx) error {
		f, fn, err := s.eventConfigRef(tx, r)
		if err != nil {
			return err
		}
		c, ok := fn.EventInvoke[f.qualifier]
		if !ok {
			return noEventConfig(s.arn(r, f))
		}
		out = s.eventConfigOut(r, f.name, f.qualifier, c)
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}

func (s *Service) deleteEventInvokeConfig(ctx context.Context, r *awsproto.Request) (int, any, error) {
	err := s.store.Update(ctx, func(tx store.Tx) error {
		f, fn, err := s.eventConfigRef(tx, r)
		if err != nil {
			return err
		}
		if _, ok := fn.EventInvoke[f.qualifier]; !ok {
			return noEventConfig(s.arn(r, f))
		}
		delete(fn.EventInvoke, f.qualifier)
		return store.PutJSON(tx, s.functionKey(r, f.name), fn)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) listEventInvokeConfigs(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	marker, max, err := pagination(r.HTTP.URL.Query())
	if err != nil {
		return 0, nil, err
	}
	if max > 50 {
		return 0, nil, validation(max, "maxItems", "Member must have value less than or equal to 50")
	}
	fn, err := s.loadFunction(ctx, r, f.name)
	if err != nil {
		return 0, nil, err
	}
	out := struct {
		Configs    []eventInvokeConfigOut `json:"FunctionEventInvokeConfigs"`
		NextMarker string                 `json:"NextMarker,omitempty"`
	}{Configs: []eventInvokeConfigOut{}}
	// In qualifier order ($LATEST for the function itself); the marker is the last one of the
	// page before.
	byKey := map[string]string{}
	for q := range fn.EventInvoke {
		byKey[cmp.Or(q, "$LATEST")] = q
	}
	last := ""
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		if marker != "" && key <= marker {
			continue
		}
		if len(out.Configs) == max {
			out.NextMarker = last
			break
		}
		q := byKey[key]
		out.Configs = append(out.Configs, s.eventConfigOut(r, f.name, q, fn.EventInvoke[q]))
		last = key
	}
	return 200, out, nil
}

// invocationRecord is what a destination receives, as Lambda sends it.
type invocationRecord struct {
	Version         string          `json:"version"`
	Timestamp       string          `json:"timestamp"`
	RequestContext  recordContext   `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	Response        recordResponse  `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
}

type recordContext struct {
	RequestID              string `json:"requestId"`
	FunctionArn            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

type recordResponse struct {
	StatusCode      int    `json:"statusCode"`
	ExecutedVersion string `json:"executedVersion"`
	FunctionError   string `json:"functionError,omitempty"`
}
