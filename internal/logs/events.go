package logs

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nubis/nubis/internal/awsproto"
)

// CloudWatch Logs' PutLogEvents limits.
const (
	maxBatchEvents = 10000
	maxBatchBytes  = 1048576 // the sum of the messages' UTF-8 bytes plus 26 per event
	eventOverhead  = 26
	maxEventBytes  = 1048576 - eventOverhead
	maxBatchSpan   = 24 * time.Hour
	maxPast        = 14 * 24 * time.Hour
	maxFuture      = 2 * time.Hour
	// maxResponse bounds the events a Get or Filter call returns, as CloudWatch Logs does (1 MB).
	maxResponse = 1048576
)

func (s *Service) putLogEvents(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupName  string `json:"logGroupName"`
		LogStreamName string `json:"logStreamName"`
		LogEvents     []struct {
			Timestamp *int64  `json:"timestamp"`
			Message   *string `json:"message"`
		} `json:"logEvents"`
		SequenceToken string `json:"sequenceToken"` // ignored, as CloudWatch Logs now does
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	if err := (streamIn{in.LogGroupName, in.LogStreamName}).check(); err != nil {
		return nil, err
	}
	if len(in.LogEvents) == 0 || len(in.LogEvents) > maxBatchEvents {
		return nil, invalid("1 validation error detected: Value at 'logEvents' failed to satisfy constraint: "+
			"Member must have length between 1 and %d", maxBatchEvents)
	}
	size := 0
	for i, e := range in.LogEvents {
		if e.Timestamp == nil || e.Message == nil {
			return nil, invalid("1 validation error detected: Value null at 'logEvents.%d.member.%s' failed to satisfy constraint: "+
				"Member must not be null", i+1, map[bool]string{true: "timestamp", false: "message"}[e.Timestamp == nil])
		}
		if *e.Message == "" {
			return nil, invalid("1 validation error detected: Value '' at 'logEvents.%d.member.message' failed to satisfy constraint: "+
				"Member must have length greater than or equal to 1", i+1)
		}
		if len(*e.Message) > maxEventBytes {
			return nil, invalid("Log event too large: %d bytes exceeds limit of %d", len(*e.Message)+eventOverhead, maxEventBytes+eventOverhead)
		}
		if i > 0 && *e.Timestamp < *in.LogEvents[i-1].Timestamp {
			return nil, invalid("Log events in a single PutLogEvents request must be in chronological order.")
		}
		size += len(*e.Message) + eventOverhead
	}
	if size > maxBatchBytes {
		return nil, invalid("Upload too large: %d bytes exceeds limit of %d", size, maxBatchBytes)
	}
	first, last := *in.LogEvents[0].Timestamp, *in.LogEvents[len(in.LogEvents)-1].Timestamp
	if time.Duration(last-first)*time.Millisecond > maxBatchSpan {
		return nil, invalid("The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
	}
	g, err := s.store.Group(r.Caller.AccountID, r.Region, in.LogGroupName)
	if err != nil {
		return nil, apiError(err, "log group")
	}

	// Too old (14 days, or the group's retention) and too new (2 hours ahead) events are rejected
	// and reported, the others kept.
	now := s.now().UnixMilli()
	tooOld := now - maxPast.Milliseconds()
	expired := int64(-1 << 63)
	if g.RetentionDays > 0 {
		expired = now - int64(g.RetentionDays)*24*time.Hour.Milliseconds()
	}
	tooNew := now + maxFuture.Milliseconds()
	var rejected struct {
		TooNewLogEventStartIndex *int `json:"tooNewLogEventStartIndex,omitempty"`
		TooOldLogEventEndIndex   *int `json:"tooOldLogEventEndIndex,omitempty"`
		ExpiredLogEventEndIndex  *int `json:"expiredLogEventEndIndex,omitempty"`
	}
	var keep []Event
	for i, e := range in.LogEvents {
		switch ts := *e.Timestamp; {
		case ts < expired:
			rejected.ExpiredLogEventEndIndex = &i
		case ts < tooOld:
			rejected.TooOldLogEventEndIndex = &i
		case ts > tooNew:
			if rejected.TooNewLogEventStartIndex == nil {
				rejected.TooNewLogEventStartIndex = &i
			}
		default:
			keep = append(keep, Event{Timestamp: ts, Message: *e.Message})
		}
	}
	if len(keep) > 0 {
		if err := s.store.Append(r.Caller.AccountID, r.Region, in.LogGroupName, in.LogStreamName, keep); err != nil {
			return nil, s.streamError(r, in.LogGroupName, err)
		}
	} else if _, err := s.store.Events(r.Caller.AccountID, r.Region, in.LogGroupName, in.LogStreamName); err != nil {
		return nil, s.streamError(r, in.LogGroupName, err)
	}
	out := map[string]any{}
	if len(keep) < len(in.LogEvents) {
		out["rejectedLogEventsInfo"] = rejected
	}
	return out, nil
}

// window selects events by time: [start, end) in epoch ms, unset ends open; the group's
// retention drops older events.
type window struct {
	start, end *int64
	expired    int64
}

func (w window) has(e Event) bool {
	return e.Timestamp >= w.expired && (w.start == nil || e.Timestamp >= *w.start) && (w.end == nil || e.Timestamp < *w.end)
}

func (s *Service) window(g Group, start, end *int64) window {
	w := window{start: start, end: end, expired: -1 << 63}
	if g.RetentionDays > 0 {
		w.expired = s.now().UnixMilli() - int64(g.RetentionDays)*24*time.Hour.Milliseconds()
	}
	return w
}

// eventsLimit reads the limit of a Get or Filter call: 1 to 10,000, 10,000 when unset.
func eventsLimit(limit *int) (int, error) {
	if limit == nil {
		return maxBatchEvents, nil
	}
	if *limit < 1 || *limit > maxBatchEvents {
		return 0, invalid("1 validation error detected: Value '%d' at 'limit' failed to satisfy constraint: "+
			"Member must have value between 1 and %d", *limit, maxBatchEvents)
	}
	return *limit, nil
}

type outputEvent struct {
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
}

// GetLogEvents' tokens are f/<index> and b/<index>, positions in the stream's events in the
// window, in time order: forward tokens read on from there, backward tokens back from there. At
// the end of the stream the forward token comes back unchanged, which is how clients know to stop.
func eventToken(dir byte, i int) string { return fmt.Sprintf("%c/%020d", dir, i) }

func fromEventToken(tok string) (byte, int, error) {
	if len(tok) < 3 || (tok[0] != 'f' && tok[0] != 'b') || tok[1] != '/' {
		return 0, 0, invalid("The specified nextToken is invalid.")
	}
	i, err := strconv.Atoi(tok[2:])
	if err != nil || i < 0 {
		return 0, 0, invalid("The specified nextToken is invalid.")
	}
	return tok[0], i, nil
}

func (s *Service) getLogEvents(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupName       string `json:"logGroupName"`
		LogGroupIdentifier string `json:"logGroupIdentifier"`
		LogStreamName      string `json:"logStreamName"`
		StartTime          *int64 `json:"startTime"`
		EndTime            *int64 `json:"endTime"`
		NextToken          string `json:"nextToken"`
		Limit              *int   `json:"limit"`
		StartFromHead      bool   `json:"startFromHead"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	group, err := groupFrom(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if err := checkStreamName(in.LogStreamName); err != nil {
		return nil, err
	}
	limit, err := eventsLimit(in.Limit)
	if err != nil {
		return nil, err
	}
	dir, pos := byte('f'), -1
	if in.NextToken != "" {
		if dir, pos, err = fromEventToken(in.NextToken); err != nil {
			return nil, err
		}
	}
	g, err := s.store.Group(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	all, err := s.store.Events(r.Caller.AccountID, r.Region, group, in.LogStreamName)
	if err != nil {
		return nil, s.streamError(r, group, err)
	}
	w := s.window(g, in.StartTime, in.EndTime)
	events := slices.DeleteFunc(all, func(e Event) bool { return !w.has(e) })
	slices.SortStableFunc(events, func(a, b Event) int { return cmp.Compare(a.Timestamp, b.Timestamp) })

	n := len(events)
	var from, to int
	switch {
	case pos < 0 && in.StartFromHead:
		from, to = 0, min(limit, n)
	case pos < 0:
		from, to = max(0, n-limit), n
	case dir == 'f':
		from = min(pos, n)
		to = min(from+limit, n)
	default:
		to = min(pos, n)
		from = max(0, to-limit)
	}
	// At most 1 MB of events: cut from the far end of the reading direction.
	backward := dir == 'b' || (pos < 0 && !in.StartFromHead)
	for size := 0; ; {
		size = 0
		for _, e := range events[from:to] {
			size += len(e.Message) + eventOverhead
		}
		if size <= maxResponse || to-from <= 1 {
			break
		}
		if backward {
			from++
		} else {
			to--
		}
	}
	out := struct {
		Events            []outputEvent `json:"events"`
		NextForwardToken  string        `json:"nextForwardToken"`
		NextBackwardToken string        `json:"nextBackwardToken"`
	}{Events: make([]outputEvent, 0, to-from), NextForwardToken: eventToken('f', to), NextBackwardToken: eventToken('b', from)}
	for _, e := range events[from:to] {
		out.Events = append(out.Events, outputEvent{Timestamp: e.Timestamp, Message: e.Message, IngestionTime: e.IngestionTime})
	}
	return out, nil
}

type filteredEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

// eventID is an event's id: stable across calls (aws logs tail --follow tells new events from
// seen ones by it), made of its stream's name and its place in the stream's file.
func eventID(stream string, offset int64) string {
	h := fnv.New64a()
	h.Write([]byte(stream))
	return fmt.Sprintf("%020d%020d", h.Sum64(), offset)
}

// FilterLogEvents' nextToken is the index of the next event among those the filter selects, in
// time order.
func filterToken(i int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("e:" + strconv.Itoa(i)))
}

func fromFilterToken(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	rest, ok := strings.CutPrefix(string(b), "e:")
	i, aerr := strconv.Atoi(rest)
	if err != nil || !ok || aerr != nil || i < 0 {
		return 0, invalid("The specified nextToken is invalid.")
	}
	return i, nil
}

func (s *Service) filterLogEvents(_ context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		LogGroupName        string   `json:"logGroupName"`
		LogGroupIdentifier  string   `json:"logGroupIdentifier"`
		LogStreamNames      []string `json:"logStreamNames"`
		LogStreamNamePrefix string   `json:"logStreamNamePrefix"`
		StartTime           *int64   `json:"startTime"`
		EndTime             *int64   `json:"endTime"`
		FilterPattern       string   `json:"filterPattern"`
		NextToken           string   `json:"nextToken"`
		Limit               *int     `json:"limit"`
		Interleaved         bool     `json:"interleaved"` // always so
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	group, err := groupFrom(in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
	}
	if len(in.LogStreamNames) > 100 {
		return nil, invalid("1 validation error detected: Value at 'logStreamNames' failed to satisfy constraint: " +
			"Member must have length less than or equal to 100")
	}
	for _, name := range in.LogStreamNames {
		if err := checkStreamName(name); err != nil {
			return nil, err
		}
	}
	limit, err := eventsLimit(in.Limit)
	if err != nil {
		return nil, err
	}
	if len(in.FilterPattern) > 1024 || !utf8.ValidString(in.FilterPattern) {
		return nil, invalid("1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: " +
			"Member must have length less than or equal to 1024")
	}
	pattern, err := ParsePattern(in.FilterPattern)
	if err != nil {
		return nil, invalid("Invalid filter pattern: %v", err)
	}
	start := 0
	if in.NextToken != "" {
		if start, err = fromFilterToken(in.NextToken); err != nil {
			return nil, err
		}
	}
	g, err := s.store.Group(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	streams, err := s.store.Streams(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	w := s.window(g, in.StartTime, in.EndTime)
	type searched struct {
		LogStreamName      string `json:"logStreamName"`
		SearchedCompletely bool   `json:"searchedCompletely"`
	}
	out := struct {
		Events             []filteredEvent `json:"events"`
		SearchedLogStreams []searched      `json:"searchedLogStreams"`
		NextToken          string          `json:"nextToken,omitempty"`
	}{Events: []filteredEvent{}, SearchedLogStreams: []searched{}}
	var matched []filteredEvent
	for _, st := range streams {
		if (len(in.LogStreamNames) > 0 && !slices.Contains(in.LogStreamNames, st.Name)) || !strings.HasPrefix(st.Name, in.LogStreamNamePrefix) {
			continue
		}
		events, err := s.store.Events(r.Caller.AccountID, r.Region, group, st.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		for _, e := range events {
			if w.has(e) && pattern.Match(e.Message) {
				matched = append(matched, filteredEvent{LogStreamName: st.Name, Timestamp: e.Timestamp, Message: e.Message,
					IngestionTime: e.IngestionTime, EventID: eventID(st.Name, e.Offset)})
			}
		}
		out.SearchedLogStreams = append(out.SearchedLogStreams, searched{st.Name, true})
	}
	slices.SortStableFunc(matched, func(a, b filteredEvent) int {
		return cmp.Or(cmp.Compare(a.Timestamp, b.Timestamp), strings.Compare(a.LogStreamName, b.LogStreamName))
	})
	size := 0
	for i := start; i < len(matched); i++ {
		e := matched[i]
		if len(out.Events) == limit || (len(out.Events) > 0 && size+len(e.Message)+eventOverhead > maxResponse) {
			out.NextToken = filterToken(i)
			break
		}
		size += len(e.Message) + eventOverhead
		out.Events = append(out.Events, e)
	}
	return out, nil
}
