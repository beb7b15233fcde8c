package lambda

import (
	"context"
	"encoding/json"
	"io"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// codePath is where GetFunction's presigned Code.Location points: nubis serves the zip itself.
const codePath = "/_nubis/lambda/code/"

// codeURLExpiry is how long a Code.Location URL is valid, as on AWS.
const codeURLExpiry = 10 * time.Minute

var hexSHA = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *Service) downloadCode(ctx context.Context, r *awsproto.Request) (int, any, error) {
	sum := r.HTTP.PathValue("sha")
	if !hexSHA.MatchString(sum) {
		return 0, nil, notFound("No code %s", sum)
	}
	// Only code that one of the caller's functions or layer versions has is served.
	used := false
	kvs, err := s.store.List(ctx, s.prefix(r)+"version/", "", 0)
	if err != nil {
		return 0, nil, err
	}
	for _, kv := range kvs {
		var v version
		if json.Unmarshal(kv.Value, &v) == nil && v.CodeHex == sum {
			used = true
			break
		}
	}
	if !used {
		kvs, err := s.store.List(ctx, s.prefix(r)+"layerversion/", "", 0)
		if err != nil {
			return 0, nil, err
		}
		for _, kv := range kvs {
			var lv layerVersion
			if json.Unmarshal(kv.Value, &lv) == nil && lv.CodeHex == sum {
				used = true
				break
			}
		}
	}
	if !used {
		return 0, nil, notFound("No code %s", sum)
	}
	f, err := s.code.open(sum)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return 0, nil, err
	}
	return 200, awsproto.RawBody{ContentType: "application/zip", Body: b}, nil
}

type concurrencyInput struct {
	ReservedConcurrentExecutions *int
}

// minUnreserved is the concurrency Lambda keeps unreserved for functions without a reservation.
const minUnreserved = 100

func (s *Service) putConcurrency(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	var in concurrencyInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.ReservedConcurrentExecutions == nil {
		return 0, nil, validation("null", "reservedConcurrentExecutions", "Member must not be null")
	}
	n := *in.ReservedConcurrentExecutions
	if n < 0 {
		return 0, nil, validation(n, "reservedConcurrentExecutions", "Member must have value greater than or equal to 0")
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		fn, err := s.requireFunction(tx, r, f)
		if err != nil {
			return err
		}
		others := 0
		kvs, err := tx.List(s.prefix(r)+"function/", "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			var o function
			if err := json.Unmarshal(kv.Value, &o); err != nil {
				return err
			}
			if o.Name != fn.Name && o.Reserved != nil {
				others += *o.Reserved
			}
		}
		if s.cfg.AccountConcurrency-others-n < minUnreserved {
			return invalidParam("Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [%d].", minUnreserved)
		}
		fn.Reserved = &n
		return store.PutJSON(tx, s.functionKey(r, f.name), fn)
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, concurrency{ReservedConcurrentExecutions: &n}, nil
}

func (s *Service) getConcurrency(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	fn, err := s.loadFunction(ctx, r, f.name)
	if err != nil {
		return 0, nil, err
	}
	return 200, concurrency{ReservedConcurrentExecutions: fn.Reserved}, nil
}

func (s *Service) deleteConcurrency(ctx context.Context, r *awsproto.Request) (int, any, error) {
	f, err := s.parseRef(r, r.HTTP.PathValue("name"), "")
	if err != nil {
		return 0, nil, err
	}
	err = s.updateFunction(ctx, r, f.name, func(fn *function) error {
		fn.Reserved = nil
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) loadFunction(ctx context.Context, r *awsproto.Request, name string) (function, error) {
	var fn function
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		fn, err = s.requireFunction(tx, r, ref{name: name})
		return err
	})
	return fn, err
}

// updateFunction changes a function's record in one transaction.
func (s *Service) updateFunction(ctx context.Context, r *awsproto.Request, name string, change func(*function) error) error {
	return s.store.Update(ctx, func(tx store.Tx) error {
		fn, err := s.requireFunction(tx, r, ref{name: name})
		if err != nil {
			return err
		}
		if err := change(&fn); err != nil {
			return err
		}
		return store.PutJSON(tx, s.functionKey(r, name), fn)
	})
}

// taggedFunction returns the function an ARN in a tags path names; tags belong to unqualified
// function ARNs.
func (s *Service) taggedFunction(r *awsproto.Request) (string, error) {
	raw, err := url.PathUnescape(r.HTTP.PathValue("arn"))
	if err != nil {
		return "", invalidParam("Invalid ARN: %s", r.HTTP.PathValue("arn"))
	}
	if !strings.HasPrefix(raw, "arn:") {
		return "", validation(raw, "resource", "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1}:\\d{12}:function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?")
	}
	f, err := s.parseRef(r, raw, "")
	if err != nil {
		return "", err
	}
	if f.qualifier != "" {
		return "", invalidParam("Tags are not supported on a function version or alias: use the function ARN %s.", s.functionARN(r, f.name))
	}
	return f.name, nil
}

type tagInput struct {
	Tags map[string]string
}

func (s *Service) tagResource(ctx context.Context, r *awsproto.Request) (int, any, error) {
	name, err := s.taggedFunction(r)
	if err != nil {
		return 0, nil, err
	}
	var in tagInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if len(in.Tags) == 0 {
		return 0, nil, validation("null", "tags", "Member must not be null")
	}
	err = s.updateFunction(ctx, r, name, func(fn *function) error {
		if fn.Tags == nil {
			fn.Tags = map[string]string{}
		}
		for k, v := range in.Tags {
			fn.Tags[k] = v
		}
		return validateTags(fn.Tags)
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) untagResource(ctx context.Context, r *awsproto.Request) (int, any, error) {
	name, err := s.taggedFunction(r)
	if err != nil {
		return 0, nil, err
	}
	keys := r.HTTP.URL.Query()["tagKeys"]
	if len(keys) == 0 {
		return 0, nil, validation("null", "tagKeys", "Member must not be null")
	}
	err = s.updateFunction(ctx, r, name, func(fn *function) error {
		for _, k := range keys {
			delete(fn.Tags, k)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) listTags(ctx context.Context, r *awsproto.Request) (int, any, error) {
	name, err := s.taggedFunction(r)
	if err != nil {
		return 0, nil, err
	}
	fn, err := s.loadFunction(ctx, r, name)
	if err != nil {
		return 0, nil, err
	}
	tags := fn.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return 200, map[string]map[string]string{"Tags": tags}, nil
}

// getAccountSettings answers GetAccountSettings: Lambda's limits as nubis applies them, and what
// the account uses.
func (s *Service) getAccountSettings(ctx context.Context, r *awsproto.Request) (int, any, error) {
	type limit struct {
		TotalCodeSize                  int64 `json:"TotalCodeSize"`
		CodeSizeUnzipped               int64 `json:"CodeSizeUnzipped"`
		CodeSizeZipped                 int64 `json:"CodeSizeZipped"`
		ConcurrentExecutions           int   `json:"ConcurrentExecutions"`
		UnreservedConcurrentExecutions int   `json:"UnreservedConcurrentExecutions"`
	}
	type usage struct {
		TotalCodeSize int64 `json:"TotalCodeSize"`
		FunctionCount int64 `json:"FunctionCount"`
	}
	var functions, total int64
	reserved := 0
	err := s.view(ctx, func(tx store.Tx) error {
		kvs, err := tx.List(s.prefix(r), "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			rest := strings.TrimPrefix(kv.Key, s.prefix(r))
			switch {
			case strings.HasPrefix(rest, "function/"):
				var fn function
				if json.Unmarshal(kv.Value, &fn) == nil {
					functions++
					if fn.Reserved != nil {
						reserved += *fn.Reserved
					}
				}
			case strings.HasPrefix(rest, "version/"):
				var v version
				if json.Unmarshal(kv.Value, &v) == nil {
					total += v.Config.CodeSize // each version counts, as on AWS
				}
			case strings.HasPrefix(rest, "layerversion/"):
				var lv layerVersion
				if json.Unmarshal(kv.Value, &lv) == nil {
					total += lv.CodeSize
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, struct {
		AccountLimit limit `json:"AccountLimit"`
		AccountUsage usage `json:"AccountUsage"`
	}{limit{TotalCodeSize: 75 << 30, CodeSizeUnzipped: maxUnzippedBytes, CodeSizeZipped: maxZippedBytes,
		ConcurrentExecutions: s.cfg.AccountConcurrency, UnreservedConcurrentExecutions: s.cfg.AccountConcurrency - reserved},
		usage{TotalCodeSize: total, FunctionCount: functions}}, nil
}
