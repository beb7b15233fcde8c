package logs

import (
	"context"
	"maps"
	"regexp"
	"strings"

	"github.com/nubis/nubis/internal/awsproto"
)

// maxTags is how many tags a log group can have.
const maxTags = 50

// The tag patterns of the CloudWatch Logs API model.
var (
	tagKeyRE   = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$`)
	tagValueRE = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$`)
)

func checkTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return invalid("A log group can have at most %d tags.", maxTags)
	}
	for k, v := range tags {
		if !tagKeyRE.MatchString(k) || strings.HasPrefix(k, "aws:") || !tagValueRE.MatchString(v) {
			return invalid("1 validation error detected: Value '%s' at 'tags' failed to satisfy constraint: Tag keys must "+
				"have 1 to 128 characters and tag values at most 256, of letters, digits, spaces and _.:/=+-@ (keys may not start with aws:)", k)
		}
	}
	return nil
}

// tagGroup merges tags into a group's tags (add added, the keys del removed).
func (s *Service) tagGroup(r *awsproto.Request, group string, add map[string]string, del []string) error {
	if err := checkTags(add); err != nil {
		return err
	}
	err := s.store.UpdateGroup(r.Caller.AccountID, r.Region, group, func(g *Group) error {
		tags := maps.Clone(g.Tags)
		if tags == nil {
			tags = map[string]string{}
		}
		maps.Copy(tags, add)
		for _, k := range del {
			delete(tags, k)
		}
		if err := checkTags(tags); err != nil {
			return err
		}
		g.Tags = tags
		return nil
	})
	return apiError(err, "log group")
}

func (s *Service) groupTags(r *awsproto.Request, group string) (any, error) {
	g, err := s.store.Group(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	tags := g.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return map[string]any{"tags": tags}, nil
}

type tagsIn struct {
	LogGroupName string            `json:"logGroupName"`
	ResourceArn  string            `json:"resourceArn"`
	Tags         map[string]string `json:"tags"`
	TagKeys      []string          `json:"tagKeys"`
}

func (s *Service) decodeTags(r *awsproto.Request, byARN bool) (string, tagsIn, error) {
	var in tagsIn
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return "", in, err
	}
	if byARN {
		if in.ResourceArn == "" {
			return "", in, invalid("resourceArn is required.")
		}
		group, err := groupFrom(r, "", in.ResourceArn)
		return group, in, err
	}
	return in.LogGroupName, in, checkGroupName(in.LogGroupName)
}

func (s *Service) listTagsLogGroup(_ context.Context, r *awsproto.Request) (any, error) {
	group, err := decodeGroupName(r)
	if err != nil {
		return nil, err
	}
	return s.groupTags(r, group)
}

func (s *Service) tagLogGroup(_ context.Context, r *awsproto.Request) (any, error) {
	group, in, err := s.decodeTags(r, false)
	if err != nil {
		return nil, err
	}
	return nil, s.tagGroup(r, group, in.Tags, nil)
}

func (s *Service) untagLogGroup(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupName string   `json:"logGroupName"`
		Tags         []string `json:"tags"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	if err := checkGroupName(in.LogGroupName); err != nil {
		return nil, err
	}
	return nil, s.tagGroup(r, in.LogGroupName, nil, in.Tags)
}

func (s *Service) listTagsForResource(_ context.Context, r *awsproto.Request) (any, error) {
	group, _, err := s.decodeTags(r, true)
	if err != nil {
		return nil, err
	}
	return s.groupTags(r, group)
}

func (s *Service) tagResource(_ context.Context, r *awsproto.Request) (any, error) {
	group, in, err := s.decodeTags(r, true)
	if err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 {
		return nil, invalid("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
	}
	return nil, s.tagGroup(r, group, in.Tags, nil)
}

func (s *Service) untagResource(_ context.Context, r *awsproto.Request) (any, error) {
	group, in, err := s.decodeTags(r, true)
	if err != nil {
		return nil, err
	}
	return nil, s.tagGroup(r, group, nil, in.TagKeys)
}
