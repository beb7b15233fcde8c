package server_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/nubis/nubis/internal/server/servertest"
)

func putEvents(t *testing.T, c *cloudwatchlogs.Client, group, stream string, at time.Time, msgs ...string) {
	t.Helper()
	var events []types.InputLogEvent
	for i, m := range msgs {
		events = append(events, types.InputLogEvent{Timestamp: aws.Int64(at.Add(time.Duration(i) * time.Millisecond).UnixMilli()), Message: aws.String(m)})
	}
	out, err := c.PutLogEvents(context.Background(), &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(group),
		LogStreamName: aws.String(stream), LogEvents: events})
	if err != nil {
		t.Fatal(err)
	}
	if out.RejectedLogEventsInfo != nil {
		t.Fatalf("rejected: %+v", out.RejectedLogEventsInfo)
	}
}

func messages[E types.OutputLogEvent | types.FilteredLogEvent](events []E) []string {
	var out []string
	for _, e := range events {
		switch e := any(e).(type) {
		case types.OutputLogEvent:
			out = append(out, aws.ToString(e.Message))
		case types.FilteredLogEvent:
			out = append(out, aws.ToString(e.Message))
		}
	}
	return out
}

// TestLogs drives CloudWatch Logs with the SDK: groups, streams, events written and read back in
// pages both ways, filters, retention, tags, and everything still there after a restart.
func TestLogs(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	s := servertest.Start(t, dataDir)
	c := cloudwatchlogs.NewFromConfig(s.Config(t, nil))
	g := "/nubis/test-app"
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(g),
		Tags: map[string]string{"team": "data"}}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"web/1", "web/2", "worker"} {
		if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(g), LogStreamName: aws.String(st)}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	var many []string
	for i := range 25 {
		many = append(many, fmt.Sprintf("line %02d", i))
	}
	putEvents(t, c, g, "web/1", t0, many...)
	putEvents(t, c, g, "web/2", t0.Add(5*time.Millisecond), "GET / 200", "GET /missing 404", "POST /api ERROR timeout")
	putEvents(t, c, g, "worker", t0.Add(7*time.Millisecond), "job started", "job ERROR disk full", "job done")

	// GetLogEvents: the latest page by default, then backwards; from the head, then forwards; the
	// forward token comes back unchanged at the end.
	get := func(in cloudwatchlogs.GetLogEventsInput) *cloudwatchlogs.GetLogEventsOutput {
		t.Helper()
		in.LogGroupName, in.LogStreamName = aws.String(g), aws.String("web/1")
		out, err := c.GetLogEvents(ctx, &in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	last := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(10)})
	if got := messages(last.Events); !slices.Equal(got, many[15:]) {
		t.Fatalf("latest 10: %q", got)
	}
	back := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(10), NextToken: last.NextBackwardToken})
	if got := messages(back.Events); !slices.Equal(got, many[5:15]) {
		t.Fatalf("10 before: %q", got)
	}
	var read []string
	var token *string
	for i := 0; ; i++ {
		out := get(cloudwatchlogs.GetLogEventsInput{Limit: aws.Int32(7), StartFromHead: aws.Bool(true), NextToken: token})
		read = append(read, messages(out.Events)...)
		if token != nil && aws.ToString(out.NextForwardToken) == aws.ToString(token) {
			break
		}
		token = out.NextForwardToken
		if i > 10 {
			t.Fatal("the forward token never came back unchanged")
		}
	}
	if !slices.Equal(read, many) {
		t.Fatalf("read forwards: %q", read)
	}
	if got := messages(get(cloudwatchlogs.GetLogEventsInput{StartFromHead: aws.Bool(true),
		StartTime: aws.Int64(t0.Add(20 * time.Millisecond).UnixMilli()), EndTime: aws.Int64(t0.Add(22 * time.Millisecond).UnixMilli())}).Events); !slices.Equal(got, many[20:22]) {
		t.Fatalf("time window [20, 22): %q", got)
	}

	// FilterLogEvents: across streams in time order, terms, ?terms, -terms, quoted phrases,
	// stream names and prefixes, pages.
	filter := func(in cloudwatchlogs.FilterLogEventsInput) []string {
		t.Helper()
		in.LogGroupName = aws.String(g)
		var all []string
		p := cloudwatchlogs.NewFilterLogEventsPaginator(c, &in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, messages(out.Events)...)
		}
		return all
	}
	for _, tc := range []struct {
		pattern string
		streams []string
		prefix  string
		want    []string
	}{
		{pattern: "ERROR", want: []string{"POST /api ERROR timeout", "job ERROR disk full"}},
		{pattern: "ERROR -disk", want: []string{"POST /api ERROR timeout"}},
		{pattern: "?404 ?done", want: []string{"GET /missing 404", "job done"}},
		{pattern: `"disk full"`, want: []string{"job ERROR disk full"}},
		{pattern: "error", want: nil}, // case-sensitive
		{pattern: "job", streams: []string{"web/2"}, want: nil},
		{pattern: "GET", prefix: "web/", want: []string{"GET / 200", "GET /missing 404"}},
		{pattern: `"line 0"`, prefix: "web/1", want: many[:10]},
	} {
		in := cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String(tc.pattern), LogStreamNames: tc.streams, Limit: aws.Int32(3)}
		if tc.prefix != "" {
			in.LogStreamNamePrefix = aws.String(tc.prefix)
		}
		if got := filter(in); !slices.Equal(got, tc.want) {
			t.Errorf("filter %q streams %v prefix %q: %q, want %q", tc.pattern, tc.streams, tc.prefix, got, tc.want)
		}
	}
	// FilterLogEvents' endTime is inclusive (GetLogEvents' is not).
	if got := filter(cloudwatchlogs.FilterLogEventsInput{StartTime: aws.Int64(t0.Add(5 * time.Millisecond).UnixMilli()),
		EndTime: aws.Int64(t0.Add(6 * time.Millisecond).UnixMilli())}); !slices.Equal(got, []string{"line 05", "GET / 200", "line 06", "GET /missing 404"}) {
		t.Errorf("filter [5, 6]: %q", got)
	}
	if got := filter(cloudwatchlogs.FilterLogEventsInput{}); len(got) != 31 || got[0] != "line 00" || got[6] != "GET / 200" {
		t.Errorf("everything, interleaved by time: %d events %q", len(got), got)
	}

	// DescribeLogStreams, by name and by last event; DescribeLogGroups with prefixes and pages.
	ls, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: aws.String(g),
		OrderBy: types.OrderByLastEventTime, Descending: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range ls.LogStreams {
		names = append(names, aws.ToString(st.LogStreamName))
	}
	if !slices.Equal(names, []string{"web/1", "worker", "web/2"}) {
		t.Errorf("streams by last event, descending: %q", names)
	}
	if st := ls.LogStreams[0]; aws.ToInt64(st.FirstEventTimestamp) != t0.UnixMilli() ||
		aws.ToInt64(st.LastEventTimestamp) != t0.Add(24*time.Millisecond).UnixMilli() || aws.ToInt64(st.CreationTime) == 0 {
		t.Errorf("web/1: first %d last %d created %d (t0 %d)", aws.ToInt64(st.FirstEventTimestamp), aws.ToInt64(st.LastEventTimestamp),
			aws.ToInt64(st.CreationTime), t0.UnixMilli())
	}
	for i := range 3 {
		if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(fmt.Sprintf("/nubis/page-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	var groups []string
	gp := cloudwatchlogs.NewDescribeLogGroupsPaginator(c, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/nubis/"), Limit: aws.Int32(2)})
	for gp.HasMorePages() {
		out, err := gp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, lg := range out.LogGroups {
			groups = append(groups, aws.ToString(lg.LogGroupName))
		}
	}
	if !slices.Equal(groups, []string{"/nubis/page-0", "/nubis/page-1", "/nubis/page-2", g}) {
		t.Errorf("groups: %q", groups)
	}

	// Retention and tags.
	if _, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: aws.String(g), RetentionInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TagResource(ctx, &cloudwatchlogs.TagResourceInput{ResourceArn: aws.String("arn:aws:logs:us-east-1:" + s.Identity().Account().ID + ":log-group:" + g),
		Tags: map[string]string{"env": "dev"}}); err != nil {
		t.Fatal(err)
	}

	// After a restart: the group, its settings and its events.
	s.Stop(t)
	s = servertest.Start(t, dataDir)
	c = cloudwatchlogs.NewFromConfig(s.Config(t, nil))
	dg, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String(g)})
	if err != nil || len(dg.LogGroups) != 1 {
		t.Fatalf("after restart: %+v %v", dg, err)
	}
	if lg := dg.LogGroups[0]; aws.ToInt32(lg.RetentionInDays) != 7 || aws.ToInt64(lg.StoredBytes) == 0 ||
		!strings.HasSuffix(aws.ToString(lg.Arn), ":log-group:"+g+":*") {
		t.Errorf("group after restart: retention %d, %d bytes, arn %s", aws.ToInt32(lg.RetentionInDays), aws.ToInt64(lg.StoredBytes), aws.ToString(lg.Arn))
	}
	tags, err := c.ListTagsForResource(ctx, &cloudwatchlogs.ListTagsForResourceInput{ResourceArn: dg.LogGroups[0].Arn})
	if err != nil || tags.Tags["team"] != "data" || tags.Tags["env"] != "dev" {
		t.Errorf("tags after restart: %v %v", tags, err)
	}
	if got := filter(cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String("ERROR")}); len(got) != 2 {
		t.Errorf("events after restart: %q", got)
	}

	// Deleting a stream, then the group.
	if _, err := c.DeleteLogStream(ctx, &cloudwatchlogs.DeleteLogStreamInput{LogGroupName: aws.String(g), LogStreamName: aws.String("worker")}); err != nil {
		t.Fatal(err)
	}
	if got := filter(cloudwatchlogs.FilterLogEventsInput{FilterPattern: aws.String("ERROR")}); !slices.Equal(got, []string{"POST /api ERROR timeout"}) {
		t.Errorf("after deleting worker: %q", got)
	}
	if _, err := c.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: aws.String(g)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(g), LogStreamName: aws.String("web/1")})
	wantAPIError(t, err, "ResourceNotFoundException", 400)
}

// TestLogsErrors: each refusal has CloudWatch Logs' code and changes nothing.
func TestLogsErrors(t *testing.T) {
	ctx := context.Background()
	s := servertest.Start(t, "")
	c := cloudwatchlogs.NewFromConfig(s.Config(t, nil))
	g, st := aws.String("/nubis/errors"), aws.String("s1")
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: g}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: g, LogStreamName: st}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	ev := func(ts int64, m string) types.InputLogEvent {
		return types.InputLogEvent{Timestamp: aws.Int64(ts), Message: aws.String(m)}
	}
	missing := aws.String("/nubis/missing")
	for _, tc := range []struct {
		name string
		call func() error
		code string
	}{
		{"group exists", func() error {
			_, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: g})
			return err
		}, "ResourceAlreadyExistsException"},
		{"bad group name", func() error {
			_, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("bad name!")})
			return err
		}, "InvalidParameterException"},
		{"kms key", func() error {
			_, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("/nubis/kms"), KmsKeyId: aws.String("arn:aws:kms:us-east-1:1:key/x")})
			return err
		}, "InvalidParameterException"},
		{"stream exists", func() error {
			_, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: g, LogStreamName: st})
			return err
		}, "ResourceAlreadyExistsException"},
		{"stream name with a colon", func() error {
			_, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: g, LogStreamName: aws.String("a:b")})
			return err
		}, "InvalidParameterException"},
		{"stream in a missing group", func() error {
			_, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: missing, LogStreamName: st})
			return err
		}, "ResourceNotFoundException"},
		{"delete a missing group", func() error {
			_, err := c.DeleteLogGroup(ctx, &cloudwatchlogs.DeleteLogGroupInput{LogGroupName: missing})
			return err
		}, "ResourceNotFoundException"},
		{"delete a missing stream", func() error {
			_, err := c.DeleteLogStream(ctx, &cloudwatchlogs.DeleteLogStreamInput{LogGroupName: g, LogStreamName: aws.String("nope")})
			return err
		}, "ResourceNotFoundException"},
		{"events out of order", func() error {
			_, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: st,
				LogEvents: []types.InputLogEvent{ev(now, "b"), ev(now-1, "a")}})
			return err
		}, "InvalidParameterException"},
		{"batch over 24 hours", func() error {
			_, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: st,
				LogEvents: []types.InputLogEvent{ev(now-25*3600*1000, "a"), ev(now, "b")}})
			return err
		}, "InvalidParameterException"},
		{"no events", func() error {
			_, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: st, LogEvents: []types.InputLogEvent{}})
			return err
		}, "InvalidParameterException"},
		{"events to a missing stream", func() error {
			_, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: aws.String("nope"),
				LogEvents: []types.InputLogEvent{ev(now, "a")}})
			return err
		}, "ResourceNotFoundException"},
		{"retention not in the list", func() error {
			_, err := c.PutRetentionPolicy(ctx, &cloudwatchlogs.PutRetentionPolicyInput{LogGroupName: g, RetentionInDays: aws.Int32(2)})
			return err
		}, "InvalidParameterException"},
		{"describe limit", func() error {
			_, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{Limit: aws.Int32(51)})
			return err
		}, "InvalidParameterException"},
		{"bad next token", func() error {
			_, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: g, LogStreamName: st, NextToken: aws.String("x")})
			return err
		}, "InvalidParameterException"},
		{"JSON filter pattern", func() error {
			_, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: g, FilterPattern: aws.String(`{ $.level = "ERROR" }`)})
			return err
		}, "InvalidParameterException"},
		{"stream names and prefix", func() error {
			_, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: g, LogStreamNames: []string{"s1"}, LogStreamNamePrefix: aws.String("s")})
			return err
		}, "InvalidParameterException"},
		{"order by last event with a prefix", func() error {
			_, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: g, OrderBy: types.OrderByLastEventTime, LogStreamNamePrefix: aws.String("s")})
			return err
		}, "InvalidParameterException"},
		{"filter a missing group", func() error {
			_, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: missing})
			return err
		}, "ResourceNotFoundException"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantAPIError(t, tc.call(), tc.code, 400) })
	}
	// Nothing changed: one group of that prefix, one stream, no events.
	dg, err := c.DescribeLogGroups(ctx, &cloudwatchlogs.DescribeLogGroupsInput{LogGroupNamePrefix: aws.String("/nubis/")})
	if err != nil || len(dg.LogGroups) != 1 {
		t.Fatalf("groups: %+v %v", dg, err)
	}
	ls, err := c.DescribeLogStreams(ctx, &cloudwatchlogs.DescribeLogStreamsInput{LogGroupName: g})
	if err != nil || len(ls.LogStreams) != 1 || ls.LogStreams[0].LastEventTimestamp != nil {
		t.Fatalf("streams: %+v %v", ls, err)
	}

	// Events too old and too new are reported, the others kept.
	out, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: st,
		LogEvents: []types.InputLogEvent{ev(now-15*24*3600*1000, "old"), ev(now-15*24*3600*1000+1, "old"), ev(now, "kept"), ev(now+3*3600*1000, "new")}})
	if err == nil {
		// The 24-hour span rule comes first on AWS too.
		t.Fatalf("a batch spanning 15 days was accepted: %+v", out)
	}
	out, err = c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: g, LogStreamName: st,
		LogEvents: []types.InputLogEvent{ev(now, "kept"), ev(now+3*3600*1000, "new")}})
	if err != nil {
		t.Fatal(err)
	}
	if r := out.RejectedLogEventsInfo; r == nil || aws.ToInt32(r.TooNewLogEventStartIndex) != 1 {
		t.Fatalf("rejected: %+v", r)
	}
	ge, err := c.GetLogEvents(ctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: g, LogStreamName: st})
	if err != nil || !slices.Equal(messages(ge.Events), []string{"kept"}) {
		t.Fatalf("events: %v %v", messages(ge.Events), err)
	}
}

// TestLogsMigration: function logs kept in the layout before CloudWatch Logs
// (<data>/lambda/logs/<account>/<region>/<function>/<stream>.jsonl) are in the function's log
// group after an upgrade.
func TestLogsMigration(t *testing.T) {
	dataDir := t.TempDir()
	s := servertest.Start(t, dataDir)
	account := s.Identity().Account().ID
	s.Stop(t)
	old := filepath.Join(dataDir, "lambda", "logs", account, "us-east-1", "legacy")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf(`{"timestamp":%d,"message":"START RequestId: 1 Version: $LATEST\n"}`+"\n", time.Now().UnixMilli())
	if err := os.WriteFile(filepath.Join(old, url.PathEscape("2026/11/25/[$LATEST]abc")+".jsonl"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	s = servertest.Start(t, dataDir)
	c := cloudwatchlogs.NewFromConfig(s.Config(t, nil))
	out, err := c.GetLogEvents(context.Background(), &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String("/aws/lambda/legacy"),
		LogStreamName: aws.String("2026/11/25/[$LATEST]abc")})
	if err != nil || !slices.Equal(messages(out.Events), []string{"START RequestId: 1 Version: $LATEST\n"}) {
		t.Fatalf("migrated stream: %v %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "lambda", "logs")); !os.IsNotExist(err) {
		t.Fatalf("the old log directory is still there: %v", err)
	}
}

// TestFunctionLogGroup: a function's LoggingConfig.LogGroup is where its logs go; JSON logs are
// refused with a clear error.
func TestFunctionLogGroup(t *testing.T) {
	needSandboxes(t)
	ctx := context.Background()
	s := servertest.Start(t, "")
	c := lambda.NewFromConfig(s.Config(t, nil))
	createMean(t, c, "grouped", func(in *lambda.CreateFunctionInput) {
		in.LoggingConfig = &ltypes.LoggingConfig{LogGroup: aws.String("/team/shared")}
	})
	invoke(t, c, "grouped", `{"nums": [1, 2]}`)
	cw := cloudwatchlogs.NewFromConfig(s.Config(t, nil))
	out, err := cw.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("/team/shared"), FilterPattern: aws.String("REPORT")})
	if err != nil || len(out.Events) != 1 {
		t.Fatalf("the custom group: %+v %v", out, err)
	}
	cfg, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String("grouped")})
	if err != nil || aws.ToString(cfg.LoggingConfig.LogGroup) != "/team/shared" {
		t.Fatalf("LoggingConfig: %+v %v", cfg.LoggingConfig, err)
	}
	_, err = c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("grouped"),
		LoggingConfig: &ltypes.LoggingConfig{LogFormat: ltypes.LogFormatJson}})
	wantAPIError(t, err, "InvalidParameterValueException", 400)
}
