package logs

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
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
	if last-first > maxBatchSpan.Milliseconds() {
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
	} else if err := s.store.streamExists(r.Caller.AccountID, r.Region, in.LogGroupName, in.LogStreamName); err != nil {
		return nil, s.streamError(r, in.LogGroupName, err)
	}
	out := map[string]any{}
	if len(keep) < len(in.LogEvents) {
		out["rejectedLogEventsInfo"] = rejected
	}
	return out, nil
}

// window selects events by time: from start, up to end (GetLogEvents leaves events at end out,
// FilterLogEvents keeps them), in epoch ms, unset ends open; the group's retention drops older
// events.
type window struct {
	start, end   *int64
	inclusiveEnd bool
	expired      int64
}

func (w window) has(e Event) bool {
	return e.Timestamp >= w.expired && (w.start == nil || e.Timestamp >= *w.start) &&
		(w.end == nil || e.Timestamp < *w.end || (w.inclusiveEnd && e.Timestamp == *w.end))
}

func (s *Service) window(g Group, start, end *int64, inclusiveEnd bool) window {
	w := window{start: start, end: end, inclusiveEnd: inclusiveEnd, expired: -1 << 63}
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

// GetLogEvents' tokens are f/<timestamp>/<offset> and b/<timestamp>/<offset>: the key (in time
// order, then the order written) of the last event a page returned, to read on after it, or of
// the first, to read back before it. Keys stay right while events are appended. At the end of the
// stream the token comes back unchanged, which is how clients know to stop.
type eventKey struct{ ts, off int64 }

func keyOf(e Event) eventKey { return eventKey{e.Timestamp, e.Offset} }

func (k eventKey) cmp(e Event) int {
	return cmp.Or(cmp.Compare(e.Timestamp, k.ts), cmp.Compare(e.Offset, k.off))
}

func eventToken(dir byte, k eventKey) string { return fmt.Sprintf("%c/%d/%d", dir, k.ts, k.off) }

func fromEventToken(tok string) (byte, eventKey, error) {
	bad := invalid("The specified nextToken is invalid.")
	if len(tok) < 3 || (tok[0] != 'f' && tok[0] != 'b') || tok[1] != '/' {
		return 0, eventKey{}, bad
	}
	ts, off, ok := strings.Cut(tok[2:], "/")
	var k eventKey
	var err1, err2 error
	k.ts, err1 = strconv.ParseInt(ts, 10, 64)
	k.off, err2 = strconv.ParseInt(off, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return 0, eventKey{}, bad
	}
	return tok[0], k, nil
}

// Before every event and after every event, for the tokens of pages with none.
var (
	keyFirst = eventKey{-1 << 63, -1}
	keyLast  = eventKey{1<<63 - 1, 1<<63 - 1}
)

// cut returns how many of events, taken in order, fit in a response of maxResponse bytes (at
// least one).
func cut(events []Event, reverse bool) int {
	size := 0
	for i := range events {
		e := events[i]
		if reverse {
			e = events[len(events)-1-i]
		}
		size += len(e.Message) + eventOverhead
		if size > maxResponse && i > 0 {
			return i
		}
	}
	return len(events)
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
	group, err := groupFrom(r, in.LogGroupName, in.LogGroupIdentifier)
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
	dir, key, tokened := byte('f'), eventKey{}, in.NextToken != ""
	if tokened {
		if dir, key, err = fromEventToken(in.NextToken); err != nil {
			return nil, err
		}
	}
	g, err := s.store.Group(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	all, err := s.store.events(r.Caller.AccountID, r.Region, group, in.LogStreamName)
	if err != nil {
		return nil, s.streamError(r, group, err)
	}
	w := s.window(g, in.StartTime, in.EndTime, false)
	events := slices.DeleteFunc(all, func(e Event) bool { return !w.has(e) })
	slices.SortStableFunc(events, func(a, b Event) int { return cmp.Compare(a.Timestamp, b.Timestamp) })

	// The page: after the key (forwards) or before it (backwards); without a token, the first
	// events (startFromHead) or the last.
	var page []Event
	backward := dir == 'b' || (!tokened && !in.StartFromHead)
	switch {
	case !tokened:
	case dir == 'f':
		events = events[sort.Search(len(events), func(i int) bool { return key.cmp(events[i]) > 0 }):]
	default:
		events = events[:sort.Search(len(events), func(i int) bool { return key.cmp(events[i]) >= 0 })]
	}
	if backward {
		page = events[max(0, len(events)-limit):]
		page = page[len(page)-cut(page, true):]
	} else {
		page = events[:min(limit, len(events))]
		page = page[:cut(page, false)]
	}
	fwd, bwd := keyFirst, keyLast
	if tokened {
		fwd, bwd = key, key
	}
	if len(page) > 0 {
		fwd, bwd = keyOf(page[len(page)-1]), keyOf(page[0])
	}
	out := struct {
		Events            []outputEvent `json:"events"`
		NextForwardToken  string        `json:"nextForwardToken"`
		NextBackwardToken string        `json:"nextBackwardToken"`
	}{Events: make([]outputEvent, 0, len(page)), NextForwardToken: eventToken('f', fwd), NextBackwardToken: eventToken('b', bwd)}
	for _, e := range page {
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
	offset        int64
}

// eventID is an event's id: stable across calls (aws logs tail --follow tells new events from
// seen ones by it), made of its stream's name and its place in the stream's file.
func eventID(stream string, offset int64) string {
	h := fnv.New64a()
	h.Write([]byte(stream))
	return fmt.Sprintf("%020d%020d", h.Sum64(), offset)
}

// FilterLogEvents' nextToken is the key (timestamp, stream, offset) of the last event of the page
// before; the next page starts after it, in that order. Keys stay right while events are
// appended and streams come and go.
type filterKey struct {
	ts     int64
	stream string
	off    int64
}

func (k filterKey) cmp(e filteredEvent) int {
	return cmp.Or(cmp.Compare(e.Timestamp, k.ts), strings.Compare(e.LogStreamName, k.stream), cmp.Compare(e.offset, k.off))
}

func filterToken(e filteredEvent) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "e:%d:%d:%s", e.Timestamp, e.offset, e.LogStreamName))
}

func fromFilterToken(tok string) (filterKey, error) {
	bad := invalid("The specified nextToken is invalid.")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	rest, ok := strings.CutPrefix(string(b), "e:")
	parts := strings.SplitN(rest, ":", 3)
	if err != nil || !ok || len(parts) != 3 {
		return filterKey{}, bad
	}
	k := filterKey{stream: parts[2]}
	var err1, err2 error
	k.ts, err1 = strconv.ParseInt(parts[0], 10, 64)
	k.off, err2 = strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return filterKey{}, bad
	}
	return k, nil
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
	group, err := groupFrom(r, in.LogGroupName, in.LogGroupIdentifier)
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
	var after *filterKey
	if in.NextToken != "" {
		k, err := fromFilterToken(in.NextToken)
		if err != nil {
			return nil, err
		}
		after = &k
	}
	g, err := s.store.Group(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	streams, err := s.store.streams(r.Caller.AccountID, r.Region, group)
	if err != nil {
		return nil, apiError(err, "log group")
	}
	w := s.window(g, in.StartTime, in.EndTime, true)
	out := struct {
		Events []filteredEvent `json:"events"`
		// Deprecated on AWS (every stream is searched completely); empty, as paginators merge it.
		SearchedLogStreams []struct{} `json:"searchedLogStreams"`
		NextToken          string     `json:"nextToken,omitempty"`
	}{Events: []filteredEvent{}, SearchedLogStreams: []struct{}{}}
	var matched []filteredEvent
	for _, st := range streams {
		if (len(in.LogStreamNames) > 0 && !slices.Contains(in.LogStreamNames, st.Name)) || !strings.HasPrefix(st.Name, in.LogStreamNamePrefix) {
			continue
		}
		events, err := s.store.events(r.Caller.AccountID, r.Region, group, st.Name)
		if err != nil {
			continue // deleted meanwhile
		}
		for _, e := range events {
			fe := filteredEvent{LogStreamName: st.Name, Timestamp: e.Timestamp, Message: e.Message,
				IngestionTime: e.IngestionTime, EventID: eventID(st.Name, e.Offset), offset: e.Offset}
			if w.has(e) && (after == nil || after.cmp(fe) > 0) && pattern.Match(e.Message) {
				matched = append(matched, fe)
			}
		}
	}
	slices.SortFunc(matched, func(a, b filteredEvent) int {
		return filterKey{b.Timestamp, b.LogStreamName, b.offset}.cmp(a)
	})
	size := 0
	for i := 0; i < len(matched); i++ {
		e := matched[i]
		if len(out.Events) == limit || (len(out.Events) > 0 && size+len(e.Message)+eventOverhead > maxResponse) {
			out.NextToken = filterToken(matched[i-1])
			break
		}
		size += len(e.Message) + eventOverhead
		out.Events = append(out.Events, e)
	}
	return out, nil
}
