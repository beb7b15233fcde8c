package logs

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/errdefs"
)

// Service is the CloudWatch Logs API over a Store.
type Service struct {
	store *Store
	log   *slog.Logger
	now   func() time.Time
}

// New returns the API over store.
func New(store *Store, log *slog.Logger) *Service {
	return &Service{store: store, log: log, now: time.Now}
}

// Run lets expired log data go, hourly, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.store.Prune(s.now()); err != nil {
			s.log.Warn("pruning expired log streams", "err", err)
		} else if n > 0 {
			s.log.Info("deleted expired log streams", "streams", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// API returns the JSON 1.1 service for the server to route to.
func (s *Service) API() awsproto.Service {
	h := func(f func(context.Context, *awsproto.Request) (any, error)) awsproto.JSONHandler { return f }
	return &awsproto.JSONService{Name: "logs", TargetPrefix: "Logs_20140328", Log: s.log, Actions: map[string]awsproto.JSONHandler{
		"CreateLogGroup":        h(s.createLogGroup),
		"DeleteLogGroup":        h(s.deleteLogGroup),
		"DescribeLogGroups":     h(s.describeLogGroups),
		"PutRetentionPolicy":    h(s.putRetentionPolicy),
		"DeleteRetentionPolicy": h(s.deleteRetentionPolicy),
		"CreateLogStream":       h(s.createLogStream),
		"DeleteLogStream":       h(s.deleteLogStream),
		"DescribeLogStreams":    h(s.describeLogStreams),
		"PutLogEvents":          h(s.putLogEvents),
		"GetLogEvents":          h(s.getLogEvents),
		"FilterLogEvents":       h(s.filterLogEvents),
		"ListTagsLogGroup":      h(s.listTagsLogGroup),
		"TagLogGroup":           h(s.tagLogGroup),
		"UntagLogGroup":         h(s.untagLogGroup),
		"ListTagsForResource":   h(s.listTagsForResource),
		"TagResource":           h(s.tagResource),
		"UntagResource":         h(s.untagResource),
	}}
}

func invalid(format string, args ...any) error {
	return awsproto.Errorf(400, "InvalidParameterException", format, args...)
}

// apiError maps the store's errors to the API's.
func apiError(err error, what string) error {
	switch {
	case errors.Is(err, errdefs.ErrNotFound):
		return awsproto.Errorf(400, "ResourceNotFoundException", "The specified %s does not exist.", what)
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return awsproto.Errorf(400, "ResourceAlreadyExistsException", "The specified %s already exists", what)
	}
	return err
}

var groupNameRE = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)

func checkGroupName(name string) error {
	if !groupNameRE.MatchString(name) {
		return invalid("1 validation error detected: Value '%s' at 'logGroupName' failed to satisfy constraint: "+
			"Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+ and have length between 1 and 512", name)
	}
	return nil
}

func checkStreamName(name string) error {
	if name == "" || len(name) > 512 || strings.ContainsAny(name, ":*") || !utf8.ValidString(name) {
		return invalid("1 validation error detected: Value '%s' at 'logStreamName' failed to satisfy constraint: "+
			"Member must satisfy regular expression pattern: [^:*]* and have length between 1 and 512", name)
	}
	return nil
}

// groupFrom returns the group a request names by logGroupName or logGroupIdentifier (a name or
// an ARN, which must be of the caller's account and this region).
func groupFrom(r *awsproto.Request, name, identifier string) (string, error) {
	switch {
	case name != "" && identifier != "":
		return "", invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
	case identifier != "":
		if strings.HasPrefix(identifier, "arn:") {
			parts := strings.SplitN(identifier, ":", 7)
			if len(parts) < 7 || parts[2] != "logs" || parts[5] != "log-group" {
				return "", invalid("The log group identifier %q is not a log group name or ARN.", identifier)
			}
			if parts[3] != r.Region || parts[4] != r.Caller.AccountID {
				return "", awsproto.Errorf(400, "ResourceNotFoundException", "The specified log group does not exist.")
			}
			name = strings.TrimSuffix(parts[6], ":*")
		} else {
			name = identifier
		}
	case name == "":
		return "", invalid("Either logGroupName or logGroupIdentifier must be specified.")
	}
	return name, checkGroupName(name)
}

func (s *Service) groupARN(r *awsproto.Request, name string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", r.Region, r.Caller.AccountID, name)
}

// validRetention is the retentionInDays values CloudWatch Logs accepts.
var validRetention = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

func (s *Service) createLogGroup(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupName string            `json:"logGroupName"`
		KmsKeyID     string            `json:"kmsKeyId"`
		Tags         map[string]string `json:"tags"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	if err := checkGroupName(in.LogGroupName); err != nil {
		return nil, err
	}
	if in.KmsKeyID != "" {
		return nil, invalid("nubis does not encrypt log groups with KMS keys; create the group without kmsKeyId.")
	}
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	err := s.store.CreateGroup(r.Caller.AccountID, r.Region, Group{Name: in.LogGroupName, Tags: in.Tags})
	return nil, apiError(err, "log group")
}

// decodeGroupName decodes a request whose only member is logGroupName.
func decodeGroupName(r *awsproto.Request) (string, error) {
	var in struct {
		LogGroupName string `json:"logGroupName"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return "", err
	}
	return in.LogGroupName, checkGroupName(in.LogGroupName)
}

func (s *Service) deleteLogGroup(_ context.Context, r *awsproto.Request) (any, error) {
	group, err := decodeGroupName(r)
	if err != nil {
		return nil, err
	}
	return nil, apiError(s.store.DeleteGroup(r.Caller.AccountID, r.Region, group), "log group")
}

type logGroupOut struct {
	LogGroupName      string `json:"logGroupName"`
	CreationTime      int64  `json:"creationTime"`
	RetentionInDays   int    `json:"retentionInDays,omitempty"`
	MetricFilterCount int    `json:"metricFilterCount"`
	Arn               string `json:"arn"`
	LogGroupArn       string `json:"logGroupArn"`
	StoredBytes       int64  `json:"storedBytes"`
	LogGroupClass     string `json:"logGroupClass"`
}

// describeLimit reads the limit of a Describe call: 1 to 50, 50 when unset.
func describeLimit(limit *int) (int, error) {
	if limit == nil {
		return 50, nil
	}
	if *limit < 1 || *limit > 50 {
		return 0, invalid("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: "+
			"Member must have value between 1 and 50", *limit)
	}
	return *limit, nil
}

// A Describe call's nextToken is the last name of the page before, encoded.
func nameToken(name string) string { return base64.RawURLEncoding.EncodeToString([]byte("n:" + name)) }

func fromNameToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	name, ok := strings.CutPrefix(string(b), "n:")
	if err != nil || !ok {
		return "", invalid("The specified nextToken is invalid.")
	}
	return name, nil
}

func (s *Service) describeLogGroups(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupNamePrefix  string   `json:"logGroupNamePrefix"`
		LogGroupNamePattern string   `json:"logGroupNamePattern"`
		LogGroupIdentifiers []string `json:"logGroupIdentifiers"`
		NextToken           string   `json:"nextToken"`
		Limit               *int     `json:"limit"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	limit, err := describeLimit(in.Limit)
	if err != nil {
		return nil, err
	}
	if in.LogGroupNamePrefix != "" && in.LogGroupNamePattern != "" {
		return nil, invalid("LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
	}
	if len(in.LogGroupIdentifiers) > 0 && (in.LogGroupNamePrefix != "" || in.LogGroupNamePattern != "") {
		return nil, invalid("logGroupIdentifiers cannot be combined with logGroupNamePrefix or logGroupNamePattern.")
	}
	if len(in.LogGroupIdentifiers) > 50 {
		return nil, invalid("1 validation error detected: Value at 'logGroupIdentifiers' failed to satisfy constraint: Member must have length less than or equal to 50")
	}
	only := map[string]bool{}
	for _, id := range in.LogGroupIdentifiers {
		name, err := groupFrom(r, "", id)
		if err != nil {
			return nil, err
		}
		only[name] = true
	}
	after := ""
	if in.NextToken != "" {
		if after, err = fromNameToken(in.NextToken); err != nil {
			return nil, err
		}
	}
	groups, err := s.store.Groups(r.Caller.AccountID, r.Region)
	if err != nil {
		return nil, err
	}
	out := struct {
		LogGroups []logGroupOut `json:"logGroups"`
		NextToken string        `json:"nextToken,omitempty"`
	}{LogGroups: []logGroupOut{}}
	pattern := strings.ToLower(in.LogGroupNamePattern)
	for _, g := range groups {
		if !strings.HasPrefix(g.Name, in.LogGroupNamePrefix) || !strings.Contains(strings.ToLower(g.Name), pattern) ||
			(after != "" && g.Name <= after) || (len(only) > 0 && !only[g.Name]) {
			continue
		}
		if len(out.LogGroups) == limit {
			out.NextToken = nameToken(out.LogGroups[limit-1].LogGroupName)
			break
		}
		arn := s.groupARN(r, g.Name)
		out.LogGroups = append(out.LogGroups, logGroupOut{LogGroupName: g.Name, CreationTime: g.Created,
			RetentionInDays: g.RetentionDays, Arn: arn + ":*", LogGroupArn: arn, LogGroupClass: "STANDARD",
			StoredBytes: s.store.StoredBytes(r.Caller.AccountID, r.Region, g.Name)})
	}
	return out, nil
}

func (s *Service) putRetentionPolicy(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupName    string `json:"logGroupName"`
		RetentionInDays *int   `json:"retentionInDays"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	if err := checkGroupName(in.LogGroupName); err != nil {
		return nil, err
	}
	if in.RetentionInDays == nil || !slices.Contains(validRetention, *in.RetentionInDays) {
		days := "null"
		if in.RetentionInDays != nil {
			days = strconv.Itoa(*in.RetentionInDays)
		}
		return nil, invalid("1 validation error detected: Value '%s' at 'retentionInDays' failed to satisfy constraint: "+
			"Member must satisfy enum value set: %v", days, validRetention)
	}
	err := s.store.UpdateGroup(r.Caller.AccountID, r.Region, in.LogGroupName, func(g *Group) error {
		g.RetentionDays = *in.RetentionInDays
		return nil
	})
	return nil, apiError(err, "log group")
}

func (s *Service) deleteRetentionPolicy(_ context.Context, r *awsproto.Request) (any, error) {
	group, err := decodeGroupName(r)
	if err != nil {
		return nil, err
	}
	err = s.store.UpdateGroup(r.Caller.AccountID, r.Region, group, func(g *Group) error {
		g.RetentionDays = 0
		return nil
	})
	return nil, apiError(err, "log group")
}

type streamIn struct {
	LogGroupName  string `json:"logGroupName"`
	LogStreamName string `json:"logStreamName"`
}

func (in streamIn) check() error {
	if err := checkGroupName(in.LogGroupName); err != nil {
		return err
	}
	return checkStreamName(in.LogStreamName)
}

func (s *Service) createLogStream(_ context.Context, r *awsproto.Request) (any, error) {
	var in streamIn
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	err := s.store.CreateStream(r.Caller.AccountID, r.Region, in.LogGroupName, in.LogStreamName)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, apiError(err, "log group")
	}
	return nil, apiError(err, "log stream")
}

func (s *Service) deleteLogStream(_ context.Context, r *awsproto.Request) (any, error) {
	var in streamIn
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	if err := in.check(); err != nil {
		return nil, err
	}
	return nil, s.streamError(r, in.LogGroupName, s.store.DeleteStream(r.Caller.AccountID, r.Region, in.LogGroupName, in.LogStreamName))
}

// streamError maps ErrNotFound to the group's or the stream's ResourceNotFoundException.
func (s *Service) streamError(r *awsproto.Request, group string, err error) error {
	if errors.Is(err, errdefs.ErrNotFound) {
		if _, gerr := s.store.Group(r.Caller.AccountID, r.Region, group); gerr != nil {
			return apiError(gerr, "log group")
		}
		return apiError(err, "log stream")
	}
	return err
}

type logStreamOut struct {
	LogStreamName       string `json:"logStreamName"`
	CreationTime        int64  `json:"creationTime"`
	FirstEventTimestamp int64  `json:"firstEventTimestamp,omitempty"`
	LastEventTimestamp  int64  `json:"lastEventTimestamp,omitempty"`
	LastIngestionTime   int64  `json:"lastIngestionTime,omitempty"`
	Arn                 string `json:"arn"`
	StoredBytes         int64  `json:"storedBytes"`
}

func (s *Service) describeLogStreams(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupName        string `json:"logGroupName"`
		LogGroupIdentifier  string `json:"logGroupIdentifier"`
		LogStreamNamePrefix string `json:"logStreamNamePrefix"`
		OrderBy             string `json:"orderBy"`
		Descending          bool   `json:"descending"`
		NextToken           string `json:"nextToken"`
		Limit               *int   `json:"limit"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	group, err := groupFrom(r, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	limit, err := describeLimit(in.Limit)
	if err != nil {
		return nil, err
	}
	switch in.OrderBy {
	case "", "LogStreamName":
	case "LastEventTime":
		if in.LogStreamNamePrefix != "" {
			return nil, invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
		}
	default:
		return nil, invalid("1 validation error detected: Value '%s' at 'orderBy' failed to satisfy constraint: "+
			"Member must satisfy enum value set: [LogStreamName, LastEventTime]", in.OrderBy)
	}
	// The order, and the token: the key (last event, name) of the last stream of the page before.
	order := func(a, b Stream) int { return strings.Compare(a.Name, b.Name) }
	if in.OrderBy == "LastEventTime" {
		order = func(a, b Stream) int {
			return cmp.Or(cmp.Compare(a.LastEvent, b.LastEvent), strings.Compare(a.Name, b.Name))
		}
	}
	var after *Stream
	if in.NextToken != "" {
		tok, err := fromNameToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		last, name, ok := strings.Cut(tok, "/")
		t, aerr := strconv.ParseInt(last, 10, 64)
		if !ok || aerr != nil {
			return nil, invalid("The specified nextToken is invalid.")
		}
		after = &Stream{Name: name, LastEvent: t}
	}
	streams, err := s.store.Streams(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	streams = slices.DeleteFunc(streams, func(st Stream) bool {
		if !strings.HasPrefix(st.Name, in.LogStreamNamePrefix) {
			return true
		}
		if after == nil {
			return false
		}
		c := order(st, *after)
		return (!in.Descending && c <= 0) || (in.Descending && c >= 0)
	})
	slices.SortFunc(streams, order)
	if in.Descending {
		slices.Reverse(streams)
	}
	out := struct {
		LogStreams []logStreamOut `json:"logStreams"`
		NextToken  string         `json:"nextToken,omitempty"`
	}{LogStreams: []logStreamOut{}}
	arn := s.groupARN(r, group)
	for i, st := range streams {
		if i == limit {
			last := streams[i-1]
			out.NextToken = nameToken(strconv.FormatInt(last.LastEvent, 10) + "/" + last.Name)
			break
		}
		out.LogStreams = append(out.LogStreams, logStreamOut{LogStreamName: st.Name, CreationTime: st.Created,
			FirstEventTimestamp: st.FirstEvent, LastEventTimestamp: st.LastEvent, LastIngestionTime: st.LastIngestion,
			Arn: arn + ":log-stream:" + st.Name, StoredBytes: st.Bytes})
	}
	return out, nil
}
