package apigw

import (
	"context"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

const maxTags = 50

func validateTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return badRequest("Too many tags: a resource can have at most %d tags.", maxTags)
	}
	for k, v := range tags {
		if l := len(k); l < 1 || l > 128 {
			return badRequest("Invalid tag key: %q. A tag key is 1 to 128 characters long.", k)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return badRequest("Invalid tag key: %q. Tag keys starting with aws: are reserved.", k)
		}
		if len(v) > 1600 {
			return badRequest("Invalid value of tag %s: it must be at most 1600 characters long.", k)
		}
	}
	return nil
}

// tagTarget is the resource a tagging ARN names: an API, or one of its stages.
type tagTarget struct {
	apiID, stage string
}

// parseTagARN reads arn:aws:apigateway:<region>::/apis/<apiId>[/stages/<stageName>].
func (s *Service) parseTagARN(arn string) (tagTarget, error) {
	prefix := "arn:aws:apigateway:" + s.cfg.Region + "::/apis/"
	rest, ok := strings.CutPrefix(arn, prefix)
	if !ok {
		return tagTarget{}, badRequest("Invalid resource ARN specified: %s. nubis tags APIs and stages: %s<apiId>[/stages/<stageName>].", arn, prefix)
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 1 && parts[0] != "":
		return tagTarget{apiID: parts[0]}, nil
	case len(parts) == 3 && parts[0] != "" && parts[1] == "stages" && parts[2] != "":
		return tagTarget{apiID: parts[0], stage: parts[2]}, nil
	}
	return tagTarget{}, badRequest("Invalid resource ARN specified: %s. nubis tags APIs and stages: %s<apiId>[/stages/<stageName>].", arn, prefix)
}

// withTags runs fn on the tags of the resource arn names, and stores them if write is set.
func (s *Service) withTags(ctx context.Context, r *awsproto.Request, write bool, fn func(tags map[string]string) error) error {
	t, err := s.parseTagARN(r.HTTP.PathValue("arn"))
	if err != nil {
		return err
	}
	acct := r.Caller.AccountID
	return s.update(ctx, func(tx store.Tx) error {
		if t.stage == "" {
			a, err := s.loadAPI(tx, acct, t.apiID)
			if err != nil {
				return err
			}
			if a.Tags == nil {
				a.Tags = map[string]string{}
			}
			if err := fn(a.Tags); err != nil || !write {
				return err
			}
			return store.PutJSON(tx, s.apiKey(acct, t.apiID), a)
		}
		st, err := s.loadStage(tx, acct, t.apiID, t.stage)
		if err != nil {
			return err
		}
		if st.Tags == nil {
			st.Tags = map[string]string{}
		}
		if err := fn(st.Tags); err != nil || !write {
			return err
		}
		return store.PutJSON(tx, s.childKey(acct, kindStage, t.apiID, t.stage), st)
	})
}

type tagInput struct {
	Tags map[string]string `json:"tags"`
}

func (s *Service) tagResource(ctx context.Context, r *awsproto.Request) (int, any, error) {
	var in tagInput
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	if err := validateTags(in.Tags); err != nil {
		return 0, nil, err
	}
	err := s.withTags(ctx, r, true, func(tags map[string]string) error {
		for k, v := range in.Tags {
			tags[k] = v
		}
		if len(tags) > maxTags {
			return badRequest("Too many tags: a resource can have at most %d tags.", maxTags)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 201, struct{}{}, nil
}

func (s *Service) untagResource(ctx context.Context, r *awsproto.Request) (int, any, error) {
	keys, ok := r.HTTP.URL.Query()["tagKeys"]
	if !ok {
		return 0, nil, badRequest("TagKeys is required.")
	}
	err := s.withTags(ctx, r, true, func(tags map[string]string) error {
		for _, k := range keys {
			delete(tags, k)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 204, nil, nil
}

func (s *Service) getTags(ctx context.Context, r *awsproto.Request) (int, any, error) {
	out := tagInput{Tags: map[string]string{}}
	err := s.withTags(ctx, r, false, func(tags map[string]string) error {
		for k, v := range tags {
			out.Tags[k] = v
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}
