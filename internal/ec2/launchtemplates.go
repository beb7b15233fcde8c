package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Launch templates: named, numbered versions of RunInstances parameters (LaunchTemplateData), one
// of them the default, that RunInstances --launch-template starts from (the request's own
// parameters win). Stored under ec2/<account>/<region>/lt/<id>, their versions under
// .../ltv/<id>/<number> and a name index under .../ltname/<name>.

type launchTemplate struct {
	ID             string    `json:"id"`
	Name           string    `json:"name"`
	Created        time.Time `json:"created"`
	DefaultVersion int       `json:"defaultVersion"`
	LatestVersion  int       `json:"latestVersion"`
	// LastNumber is the highest version number ever given: numbers are never reused.
	LastNumber int    `json:"lastNumber"`
	CreatedBy  string `json:"createdBy"`
}

type ltVersion struct {
	Number      int               `json:"number"`
	Description string            `json:"description,omitempty"`
	Created     time.Time         `json:"created"`
	CreatedBy   string            `json:"createdBy"`
	Data        runInstancesInput `json:"data"`
}

// maxLTVersions is how many versions a launch template can have, as on AWS.
const maxLTVersions = 10000

var ltNameRE = regexp.MustCompile(`^[a-zA-Z0-9().\-/_]{3,128}$`)

func (s *Service) ltKey(r *awsproto.Request, id string) string    { return s.prefix(r) + "lt/" + id }
func (s *Service) ltNameKey(r *awsproto.Request, n string) string { return s.prefix(r) + "ltname/" + n }
func (s *Service) ltVersionsPrefix(r *awsproto.Request, id string) string {
	return s.prefix(r) + "ltv/" + id + "/"
}
func (s *Service) ltVersionKey(r *awsproto.Request, id string, n int) string {
	return s.ltVersionsPrefix(r, id) + fmt.Sprintf("%010d", n)
}

func ltIDNotFound(id string) error {
	return clientError("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
}

func ltNameNotFound(name string) error {
	return clientError("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
}

// findLT looks a launch template up by id or name (exactly one of them).
func (s *Service) findLT(tx store.Tx, r *awsproto.Request, id, name string) (launchTemplate, error) {
	switch {
	case id != "" && name != "":
		return launchTemplate{}, clientError("InvalidParameterCombination", "Specify either LaunchTemplateId or LaunchTemplateName, not both.")
	case id == "" && name == "":
		return launchTemplate{}, clientError("MissingParameter", "The request must contain the parameter LaunchTemplateName or LaunchTemplateId")
	case name != "":
		kv, err := tx.Get(s.ltNameKey(r, name))
		if errors.Is(err, store.ErrNotFound) {
			return launchTemplate{}, ltNameNotFound(name)
		}
		if err != nil {
			return launchTemplate{}, err
		}
		id = string(kv.Value)
	case !strings.HasPrefix(id, "lt-") || len(id) != 20:
		return launchTemplate{}, clientError("InvalidLaunchTemplateId.Malformed", "The specified launch template ID %s is malformed.", id)
	}
	lt, ok, err := store.GetJSON[launchTemplate](tx, s.ltKey(r, id))
	if err == nil && !ok {
		err = ltIDNotFound(id)
	}
	return lt, err
}

// launchTemplates lists the account's launch templates.
func (s *Service) launchTemplates(tx store.Tx, r *awsproto.Request) ([]launchTemplate, error) {
	kvs, err := tx.List(s.prefix(r)+"lt/", "", 0)
	if err != nil {
		return nil, err
	}
	var out []launchTemplate
	for _, kv := range kvs {
		var lt launchTemplate
		if err := json.Unmarshal(kv.Value, &lt); err != nil {
			return nil, err
		}
		out = append(out, lt)
	}
	return out, nil
}

// ltVersionNumber reads a version as requests name it: a number, $Latest or $Default ("" is the
// default).
func ltVersionNumber(lt launchTemplate, v string) (int, error) {
	switch v {
	case "", "$Default":
		return lt.DefaultVersion, nil
	case "$Latest":
		return lt.LatestVersion, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, clientError("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s for launch template ID %s.", v, lt.ID)
	}
	return n, nil
}

func (s *Service) getLTVersion(tx store.Tx, r *awsproto.Request, lt launchTemplate, v string) (ltVersion, error) {
	n, err := ltVersionNumber(lt, v)
	if err != nil {
		return ltVersion{}, err
	}
	ver, ok, err := store.GetJSON[ltVersion](tx, s.ltVersionKey(r, lt.ID, n))
	if err == nil && !ok {
		err = clientError("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %d for launch template ID %s.", n, lt.ID)
	}
	return ver, err
}

// checkLTData validates what a launch template version holds: the formats EC2 checks when the
// template is made (whether the image, key pair and groups exist is checked at launch).
func checkLTData(d *runInstancesInput) error {
	for name, set := range map[string]bool{"MinCount": d.MinCount != nil, "MaxCount": d.MaxCount != nil, "SubnetId": d.SubnetID != "",
		"PrivateIpAddress": d.PrivateIPAddress != "", "ClientToken": d.ClientToken != "", "LaunchTemplate": d.LaunchTemplate != nil, "DryRun": d.DryRun} {
		if set {
			return clientError("InvalidParameterValue", "LaunchTemplateData.%s is not a launch template parameter (give the subnet in a network interface).", name)
		}
	}
	if d.ImageID != "" && !validImageID(d.ImageID) {
		return clientError("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", d.ImageID)
	}
	if d.InstanceType != "" {
		if _, ok := lookupInstanceType(d.InstanceType); !ok {
			return clientError("InvalidParameterValue", "Invalid value '%s' for InstanceType.", d.InstanceType)
		}
	}
	if len(d.UserData) > maxUserData {
		return clientError("InvalidParameterValue", "User data is limited to %d bytes", maxUserData)
	}
	if d.IamInstanceProfile != nil {
		return invalidValue("iamInstanceProfile.name", d.IamInstanceProfile.Name+d.IamInstanceProfile.Arn,
			"Invalid IAM Instance Profile (nubis has no IAM instance profiles yet).")
	}
	switch d.ShutdownBehavior {
	case "", "stop", "terminate":
	default:
		return invalidValue("InstanceInitiatedShutdownBehavior", d.ShutdownBehavior, "Valid values are stop and terminate.")
	}
	if _, err := metadataFromInput(d.MetadataOptions); err != nil {
		return err
	}
	for _, ts := range d.TagSpecifications {
		if ts.ResourceType != "instance" && ts.ResourceType != "volume" && ts.ResourceType != "network-interface" {
			return invalidValue("TagSpecification.ResourceType", ts.ResourceType, "Launch template tags apply to instance, volume or network-interface.")
		}
		if _, err := validateTags(ts.Tags, "TagSpecification.Tag"); err != nil {
			return err
		}
	}
	return nil
}

type ltXML struct {
	ID             string             `xml:"launchTemplateId"`
	Name           string             `xml:"launchTemplateName"`
	CreateTime     string             `xml:"createTime"`
	CreatedBy      string             `xml:"createdBy"`
	DefaultVersion int                `xml:"defaultVersionNumber"`
	LatestVersion  int                `xml:"latestVersionNumber"`
	Tags           awsproto.List[Tag] `xml:"tagSet,omitempty"`
}

func (s *Service) ltToXML(r *awsproto.Request, lt launchTemplate, tags tagList) ltXML {
	return ltXML{ID: lt.ID, Name: lt.Name, CreateTime: timestamp(lt.Created), CreatedBy: lt.CreatedBy,
		DefaultVersion: lt.DefaultVersion, LatestVersion: lt.LatestVersion, Tags: tags.xml()}
}

type ltVersionXML struct {
	ID             string    `xml:"launchTemplateId"`
	Name           string    `xml:"launchTemplateName"`
	VersionNumber  int       `xml:"versionNumber"`
	Description    string    `xml:"versionDescription,omitempty"`
	CreateTime     string    `xml:"createTime"`
	CreatedBy      string    `xml:"createdBy"`
	DefaultVersion bool      `xml:"defaultVersion"`
	Data           ltDataXML `xml:"launchTemplateData"`
}

func (s *Service) ltVersionToXML(r *awsproto.Request, lt launchTemplate, v ltVersion) ltVersionXML {
	return ltVersionXML{ID: lt.ID, Name: lt.Name, VersionNumber: v.Number, Description: v.Description,
		CreateTime: timestamp(v.Created), CreatedBy: v.CreatedBy,
		DefaultVersion: v.Number == lt.DefaultVersion, Data: ltDataToXML(v.Data)}
}

type createLTInput struct {
	Name               string             `query:"LaunchTemplateName"`
	VersionDescription string             `query:"VersionDescription"`
	Data               *runInstancesInput `query:"LaunchTemplateData"`
	TagSpecifications  []TagSpecification `query:"TagSpecification"`
	ClientToken        string             `query:"ClientToken"`
	DryRun             bool               `query:"DryRun"`
}

func (s *Service) createLaunchTemplate(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createLTInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, missingParameter("LaunchTemplateName")
	}
	if !ltNameRE.MatchString(in.Name) {
		return nil, clientError("InvalidLaunchTemplateName.MalformedException",
			"A launch template name must be between 3 and 128 characters, and may contain letters, numbers, and the following characters: - ( ) . / _.'")
	}
	if in.Data == nil {
		return nil, missingParameter("LaunchTemplateData")
	}
	if len(in.VersionDescription) > 255 {
		return nil, invalidValue("VersionDescription", in.VersionDescription, "It must be at most 255 characters.")
	}
	if err := checkLTData(in.Data); err != nil {
		return nil, err
	}
	tags, err := tagsFromSpecs(in.TagSpecifications, "launch-template")
	if err != nil {
		return nil, err
	}
	if in.DryRun {
		return nil, errDryRun
	}
	now := time.Now()
	lt := launchTemplate{ID: newID("lt"), Name: in.Name, Created: now, DefaultVersion: 1, LatestVersion: 1, LastNumber: 1,
		CreatedBy: r.Caller.ARN}
	err = s.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.Create(s.ltNameKey(r, lt.Name), []byte(lt.ID)); errors.Is(err, store.ErrExists) {
			return clientError("InvalidLaunchTemplateName.AlreadyExistsException",
				"Launch template name already in use.")
		} else if err != nil {
			return err
		}
		if err := store.PutJSON(tx, s.ltKey(r, lt.ID), lt); err != nil {
			return err
		}
		if err := store.PutJSON(tx, s.ltVersionKey(r, lt.ID, 1), ltVersion{Number: 1, Description: in.VersionDescription,
			Created: now, CreatedBy: r.Caller.ARN, Data: *in.Data}); err != nil {
			return err
		}
		return putTags(tx, s.tagKey(r, lt.ID), tagList(nil).set(tags))
	})
	if err != nil {
		return nil, err
	}
	return struct {
		LT ltXML `xml:"launchTemplate"`
	}{s.ltToXML(r, lt, tagList(nil).set(tags))}, nil
}

type ltRefInput struct {
	ID     string `query:"LaunchTemplateId"`
	Name   string `query:"LaunchTemplateName"`
	DryRun bool   `query:"DryRun"`
}

type createLTVersionInput struct {
	ltRefInput
	SourceVersion      string             `query:"SourceVersion"`
	VersionDescription string             `query:"VersionDescription"`
	Data               *runInstancesInput `query:"LaunchTemplateData"`
	ClientToken        string             `query:"ClientToken"`
}

func (s *Service) createLaunchTemplateVersion(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in createLTVersionInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if in.Data == nil {
		return nil, missingParameter("LaunchTemplateData")
	}
	if len(in.VersionDescription) > 255 {
		return nil, invalidValue("VersionDescription", in.VersionDescription, "It must be at most 255 characters.")
	}
	if in.DryRun {
		return nil, errDryRun
	}
	var lt launchTemplate
	var v ltVersion
	err := s.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if lt, err = s.findLT(tx, r, in.ID, in.Name); err != nil {
			return err
		}
		data := *in.Data
		if in.SourceVersion != "" {
			src, err := s.getLTVersion(tx, r, lt, in.SourceVersion)
			if err != nil {
				return err
			}
			if data, err = mergeRunInput(*in.Data, src.Data); err != nil {
				return err
			}
		}
		if err := checkLTData(&data); err != nil {
			return err
		}
		if n, err := tx.List(s.ltVersionsPrefix(r, lt.ID), "", 0); err != nil {
			return err
		} else if len(n) >= maxLTVersions {
			return clientError("LaunchTemplateVersionLimitExceeded", "A launch template can have at most %d versions.", maxLTVersions)
		}
		lt.LastNumber = max(lt.LastNumber, lt.LatestVersion) + 1
		lt.LatestVersion = lt.LastNumber
		v = ltVersion{Number: lt.LatestVersion, Description: in.VersionDescription, Created: time.Now(), CreatedBy: r.Caller.ARN, Data: data}
		if err := store.PutJSON(tx, s.ltVersionKey(r, lt.ID, v.Number), v); err != nil {
			return err
		}
		return store.PutJSON(tx, s.ltKey(r, lt.ID), lt)
	})
	if err != nil {
		return nil, err
	}
	return struct {
		V ltVersionXML `xml:"launchTemplateVersion"`
	}{s.ltVersionToXML(r, lt, v)}, nil
}

type describeLTsInput struct {
	IDs        []string `query:"LaunchTemplateId"`
	Names      []string `query:"LaunchTemplateName"`
	Filters    []Filter `query:"Filter"`
	MaxResults int      `query:"MaxResults"`
	NextToken  string   `query:"NextToken"`
	DryRun     bool     `query:"DryRun"`
}

func (s *Service) describeLaunchTemplates(ctx context.Context, r *awsproto.Request, p awsproto.Params) (any, error) {
	var in describeLTsInput
	if err := p.Decode(&in); err != nil {
		return nil, err
	}
	if err := simpleFilters(in.Filters, "launch-template-name", "create-time"); err != nil {
		return nil, err
	}
	if in.MaxResults != 0 && (in.MaxResults < 1 || in.MaxResults > 200) {
		return nil, invalidValue("MaxResults", itoa(in.MaxResults), "It must be between 1 and 200.")
	}
	var lts []launchTemplate
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		if lts, err = s.launchTemplates(tx, r); err != nil {
			return err
		}
		for _, id := range in.IDs {
			if !slices.ContainsFunc(lts, func(lt launchTemplate) bool { return lt.ID == id }) {
				return ltIDNotFound(id)
			}
		}
		for _, n := range in.Names {
			if !slices.ContainsFunc(lts, func(lt launchTemplate) bool { return lt.Name == n }) {
				return ltNameNotFound(n)
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
	tags, err := s.tagsByPrefix(ctx, r, "lt-")
	if err != nil {
		return nil, err
	}
	out := struct {
		LTs       awsproto.List[ltXML] `xml:"launchTemplates"`
		NextToken string               `xml:"nextToken,omitempty"`
	}{LTs: awsproto.List[ltXML]{}}
	ids, names := setOf(in.IDs), setOf(in.Names)
	var shown []launchTemplate
	for _, lt := range lts {
		if (len(ids) > 0 && !ids[lt.ID]) || (len(names) > 0 && !names[lt.Name]) {
			continue
		}
		if matchFilters(in.Filters, func(name string) []string {
			switch name {
			case "launch-template-name":
				return []string{lt.Name}
			case "create-time":
				return []string{timestamp(lt.Created)}
			}
			return tags[lt.ID].filterValues(name)
		}) {
			shown = append(shown, lt)
		}
	}
	page, next, err := pageByID(shown, func(lt launchTemplate) string { return lt.ID }, in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	for _, lt := range page {
		out.LTs = append(out.LTs, s.ltToXML(r, lt, tags[lt.ID]))
	}
	out.NextToken = next
	return out, nil
}

// pageByID cuts a page of at most max items (all when max is 0) starting at the item whose id is
// token; next is the id of the item after the page.
func pageByID[T any](items []T, id func(T) string, max int, token string) (page []T, next string, err error) {
	start := 0
	if token != "" {
		start = slices.IndexFunc(items, func(t T) bool { return id(t) == token })
		if start < 0 {
			return nil, "", clientError("InvalidPaginationToken", "Invalid pagination token '%s'", token)
		}
	}
	end := len(items)
	if max > 0 && start+max < end {
		end = start + max
		next = id(items[end])
	}
	return items[start:end], next, nil
}
