package ec2

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Tag is an EC2 tag as requests carry it (Tag.N.Key, Tag.N.Value) and responses render it.
type Tag struct {
	Key   *string `query:"Key" xml:"key"`
	Value *string `query:"Value" xml:"value"`
}

// TagSpecification is one TagSpecification.N of a create request.
type TagSpecification struct {
	ResourceType string `query:"ResourceType"`
	Tags         []Tag  `query:"Tag"`
}

// tagList is the stored tags of one resource, ordered by key.
type tagList []storedTag

type storedTag struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// maxTags is EC2's limit of tags on one resource.
const maxTags = 50

func (l tagList) xml() awsproto.List[Tag] {
	out := make(awsproto.List[Tag], len(l))
	for i, t := range l {
		out[i] = Tag{Key: &t.Key, Value: &t.Value}
	}
	return out
}

func (l tagList) get(key string) (string, bool) {
	for _, t := range l {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

func (l tagList) keys() []string {
	out := make([]string, len(l))
	for i, t := range l {
		out[i] = t.Key
	}
	return out
}

// filterValues is what the tag filters see of a resource with these tags: its keys for tag-key,
// the value of <key> for tag:<key> (none when it lacks the tag), nothing for other names.
func (l tagList) filterValues(name string) []string {
	if name == "tag-key" {
		return l.keys()
	}
	if key, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, ok := l.get(key); ok {
			return []string{v}
		}
	}
	return nil
}

// set adds or replaces tags and keeps the list ordered.
func (l tagList) set(tags []storedTag) tagList {
	m := map[string]string{}
	for _, t := range l {
		m[t.Key] = t.Value
	}
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	out := make(tagList, 0, len(m))
	for k, v := range m {
		out = append(out, storedTag{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// validateTags checks tags as EC2 does and returns them in stored form. Value defaults to "".
func validateTags(tags []Tag, param string) ([]storedTag, error) {
	out := make([]storedTag, 0, len(tags))
	for _, t := range tags {
		if t.Key == nil {
			return nil, missingParameter(param + ".Key")
		}
		k, v := *t.Key, ""
		if t.Value != nil {
			v = *t.Value
		}
		switch {
		case k == "":
			return nil, clientError("InvalidParameterValue", "Tag key cannot be empty")
		case utf8.RuneCountInString(k) > 128 || !utf8.ValidString(k):
			return nil, clientError("InvalidParameterValue", "Tag key exceeds the maximum length of 128 characters")
		case utf8.RuneCountInString(v) > 256 || !utf8.ValidString(v):
			return nil, clientError("InvalidParameterValue", "Tag value exceeds the maximum length of 256 characters")
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, clientError("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
		out = append(out, storedTag{k, v})
	}
	if len(out) > maxTags {
		return nil, clientError("TagLimitExceeded", "The maximum number of tags per resource is %d", maxTags)
	}
	return out, nil
}

// tagsFromSpecs returns the tags that TagSpecifications give a new resource of type resourceType.
func tagsFromSpecs(specs []TagSpecification, resourceType string) ([]storedTag, error) {
	var all []storedTag
	for _, spec := range specs {
		if spec.ResourceType == "" {
			return nil, missingParameter("TagSpecification.ResourceType")
		}
		if spec.ResourceType != resourceType {
			return nil, clientError("InvalidParameterValue",
				"'%s' is not a valid taggable resource type for this operation.", spec.ResourceType)
		}
		tags, err := validateTags(spec.Tags, "TagSpecification.Tag")
		if err != nil {
			return nil, err
		}
		all = append(all, tags...)
	}
	if len(tagList(nil).set(all)) > maxTags {
		return nil, clientError("TagLimitExceeded", "The maximum number of tags per resource is %d", maxTags)
	}
	return all, nil
}

func (s *Service) tagKey(r *awsproto.Request, resourceID string) string {
	return s.prefix(r) + "tags/" + resourceID
}

// loadTags returns a resource's tags (none if it has none).
func loadTags(kv store.KV, err error) (tagList, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l tagList
	return l, json.Unmarshal(kv.Value, &l)
}

// putTags writes a resource's tags, deleting the record when none are left.
func putTags(tx store.Tx, key string, l tagList) error {
	if len(l) == 0 {
		if err := tx.Delete(key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return tx.Put(key, b)
}

// resourceType returns the EC2 resource type of an id after checking that the resource exists, or
// the error EC2 gives for an id that is malformed or names nothing.
func (s *Service) resourceType(tx store.Tx, r *awsproto.Request, id string) (string, error) {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "key":
		if _, found, err := s.findKeyPair(tx, r, id, false); err != nil || !found {
			if err == nil {
				err = notFoundByName(id)
			}
			return "", err
		}
		return "key-pair", nil
	case "i":
		if _, err := s.getInstance(tx, r, id); err != nil {
			return "", err
		}
		return "instance", nil
	case "sg":
		if _, err := s.resolveGroup(tx, r.Caller.AccountID, id, ""); err != nil {
			return "", err
		}
		return "security-group", nil
	case "vol":
		if _, err := s.getVolume(tx, r.Caller.AccountID, id); err != nil {
			return "", err
		}
		return "volume", nil
	case "snap":
		if _, err := s.getSnapshot(tx, r.Caller.AccountID, id); err != nil {
			return "", err
		}
		return "snapshot", nil
	case "vpc":
		if _, found, err := s.getVPC(tx, r.Caller.AccountID, id); err != nil || !found {
			if err == nil {
				err = clientError("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
			}
			return "", err
		}
		return "vpc", nil
	case "subnet":
		if _, found, err := s.getSubnet(tx, r.Caller.AccountID, id); err != nil || !found {
			if err == nil {
				err = clientError("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
			}
			return "", err
		}
		return "subnet", nil
	case "lt":
		if _, err := s.findLT(tx, r, id, ""); err != nil {
			return "", err
		}
		return "launch-template", nil
	case "ami":
		if _, found, err := s.findImage(tx, r.Caller.AccountID, id); err != nil || !found {
			if err == nil {
				err = imageNotFound(id)
			}
			return "", err
		}
		return "image", nil
	}
	return "", clientError("InvalidID", "The ID '%s' is not valid", id)
}

type createTagsInput struct {
	DryRun    bool     `query:"DryRun"`
	Resources []string `query:"ResourceId"`
	Tags      []Tag    `query:"Tag"`
}

func (s *Service) createTags(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createTagsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if len(in.Resources) == 0 {
		return nil, missingParameter("ResourceId")
	}
	if len(in.Tags) == 0 {
		return nil, missingParameter("Tag")
	}
	tags, err := validateTags(in.Tags, "Tag")
	if err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		for _, id := range in.Resources {
			if _, err := s.resourceType(tx, r, id); err != nil {
				return err
			}
			if in.DryRun {
				continue
			}
			key := s.tagKey(r, id)
			l, err := loadTags(tx.Get(key))
			if err != nil {
				return err
			}
			l = l.set(tags)
			if len(l) > maxTags {
				return clientError("TagLimitExceeded", "The maximum number of tags per resource is %d", maxTags)
			}
			if err := putTags(tx, key, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	return returnTrue{Return: true}, nil
}

// returnTrue is the body of EC2 actions that only confirm: <return>true</return>.
type returnTrue struct {
	Return bool `xml:"return"`
}

type deleteTagsInput struct {
	DryRun    bool     `query:"DryRun"`
	Resources []string `query:"ResourceId"`
	Tags      []Tag    `query:"Tag"`
}

func (s *Service) deleteTags(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in deleteTagsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if len(in.Resources) == 0 {
		return nil, missingParameter("ResourceId")
	}
	for _, t := range in.Tags {
		if t.Key == nil {
			return nil, missingParameter("Tag.Key")
		}
	}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		for _, id := range in.Resources {
			if _, err := s.resourceType(tx, r, id); err != nil {
				return err
			}
			if in.DryRun {
				continue
			}
			key := s.tagKey(r, id)
			l, err := loadTags(tx.Get(key))
			if err != nil {
				return err
			}
			var kept tagList
			for _, t := range l {
				if !deletes(in.Tags, t) {
					kept = append(kept, t)
				}
			}
			if err := putTags(tx, key, kept); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	return returnTrue{Return: true}, nil
}

// deletes reports whether a DeleteTags request removes t: no tags given removes all; a tag given
// with a value removes it only when the value is equal (an empty value only an empty one).
func deletes(req []Tag, t storedTag) bool {
	if len(req) == 0 {
		return true
	}
	for _, d := range req {
		if *d.Key == t.Key && (d.Value == nil || *d.Value == t.Value) {
			return true
		}
	}
	return false
}

type describeTagsInput struct {
	DryRun     bool     `query:"DryRun"`
	Filters    []Filter `query:"Filter"`
	MaxResults *int     `query:"MaxResults"`
	NextToken  string   `query:"NextToken"`
}

type tagDescription struct {
	ResourceID   string `xml:"resourceId"`
	ResourceType string `xml:"resourceType"`
	Key          string `xml:"key"`
	Value        string `xml:"value"`
}

type describeTagsOutput struct {
	Tags      awsproto.List[tagDescription] `xml:"tagSet"`
	NextToken string                        `xml:"nextToken,omitempty"`
}

var describeTagsFilters = map[string]bool{"key": true, "value": true, "resource-id": true, "resource-type": true}

func (s *Service) describeTags(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeTagsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	err := checkFilters(in.Filters, func(n string) bool {
		return describeTagsFilters[n] || strings.HasPrefix(n, "tag:") && len(n) > 4
	})
	if err != nil {
		return nil, err
	}
	limit := 1000
	if in.MaxResults != nil {
		if *in.MaxResults < 5 || *in.MaxResults > 1000 {
			return nil, invalidValue("MaxResults", itoa(*in.MaxResults), "Valid values are from 5 to 1000.")
		}
		limit = *in.MaxResults
	}
	after := ""
	if in.NextToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		if err != nil || !strings.Contains(string(b), "\x00") {
			return nil, clientError("InvalidPaginationToken", "The specified pagination token is not valid or is expired.")
		}
		after = string(b)
	}
	if in.DryRun {
		return nil, errDryRun
	}
	prefix := s.prefix(r) + "tags/"
	kvs, err := s.store.List(ctx, prefix, "", 0)
	if err != nil {
		return nil, err
	}
	var out describeTagsOutput
	for _, kv := range kvs {
		id := strings.TrimPrefix(kv.Key, prefix)
		l, err := loadTags(kv, nil)
		if err != nil {
			return nil, err
		}
		typ := resourceTypeOf(id)
		for _, t := range l {
			pos := id + "\x00" + t.Key
			if pos <= after {
				continue
			}
			ok := matchFilters(in.Filters, func(name string) []string {
				switch name {
				case "key":
					return []string{t.Key}
				case "value":
					return []string{t.Value}
				case "resource-id":
					return []string{id}
				case "resource-type":
					return []string{typ}
				}
				return l.filterValues(name)
			})
			if !ok {
				continue
			}
			if len(out.Tags) == limit {
				last := out.Tags[limit-1]
				out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(last.ResourceID + "\x00" + last.Key))
				return out, nil
			}
			out.Tags = append(out.Tags, tagDescription{ResourceID: id, ResourceType: typ, Key: t.Key, Value: t.Value})
		}
	}
	return out, nil
}

// resourceTypeOf names the resource type of a well-formed id.
func resourceTypeOf(id string) string {
	prefix, _, _ := strings.Cut(id, "-")
	switch prefix {
	case "key":
		return "key-pair"
	case "i":
		return "instance"
	case "ami":
		return "image"
	case "sg":
		return "security-group"
	case "sgr":
		return "security-group-rule"
	case "vol":
		return "volume"
	case "snap":
		return "snapshot"
	case "lt":
		return "launch-template"
	}
	return prefix
}
