package lambda

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Event invocations are queued in the store before Invoke answers 202, so the queue survives a
// restart. Workers run them; a function error is retried (twice unless the function's event
// invoke config says fewer), after Config.EventRetryDelays, as Lambda does; an event older than
// its maximum age is not run again. The record of an event that succeeded or finally failed goes
// to the config's OnSuccess or OnFailure function, as an event of its own.

type queuedEvent struct {
	Account  string `json:"account"`
	Function string `json:"function"`
	Version  string `json:"version"`
	// Qualifier is how the caller named the function ("" unqualified): its settings apply.
	Qualifier string    `json:"qualifier,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	Queued    time.Time `json:"queued"`
	Payload   []byte    `json:"payload"`
	Attempts  int       `json:"attempts"`
	NotBefore time.Time `json:"notBefore"`
	// Hops counts the destinations an event's records went through: a chain that loops back
	// (a function its own destination, or two that name each other) stops at maxHops.
	Hops int `json:"hops,omitempty"`
}

// maxHops bounds a chain of destination records, as Lambda stops recursive loops.
const maxHops = 16

// defaultRetryDelays are the waits before the second and third attempt, as on AWS.
var defaultRetryDelays = []time.Duration{time.Minute, 2 * time.Minute}

// maxEventWorkers bounds the queued events run at once.
const maxEventWorkers = 16

func (s *Service) queuePrefix() string { return "lambda-queue/" + s.cfg.Region + "/" }

func (s *Service) enqueue(ctx context.Context, account string, v version, qualifier, reqID string, payload []byte) error {
	key, ev := s.newEvent(account, v, qualifier, reqID, payload)
	if err := s.store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, key, ev) }); err != nil {
		return err
	}
	s.kickQueue()
	return nil
}

// newEvent makes a queued event and its key. The unqualified function and $LATEST are one.
func (s *Service) newEvent(account string, v version, qualifier, reqID string, payload []byte) (string, queuedEvent) {
	if qualifier == "$LATEST" {
		qualifier = ""
	}
	key := fmt.Sprintf("%s%020d-%s", s.queuePrefix(), s.now().UnixNano(), uuid.NewString())
	return key, queuedEvent{Account: account, Function: v.Config.FunctionName, Version: v.Config.Version, Qualifier: qualifier,
		RequestID: reqID, Queued: s.now(), Payload: payload}
}

func (s *Service) kickQueue() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// runQueue dispatches queued events until ctx ends.
func (s *Service) runQueue(ctx context.Context) {
	var mu sync.Mutex
	inflight := map[string]bool{}
	sem := make(chan struct{}, maxEventWorkers)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		kvs, err := s.store.List(ctx, s.queuePrefix(), "", 0)
		if err != nil && ctx.Err() == nil {
			s.log.Error("event queue", "err", err)
		}
		for _, kv := range kvs {
			var ev queuedEvent
			if json.Unmarshal(kv.Value, &ev) != nil || s.now().Before(ev.NotBefore) {
				continue
			}
			mu.Lock()
			busy := inflight[kv.Key]
			inflight[kv.Key] = true
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			s.wg.Add(1)
			go func(key string, ev queuedEvent) {
				defer s.wg.Done()
				defer func() { <-sem; mu.Lock(); delete(inflight, key); mu.Unlock() }()
				s.runEvent(ctx, key, ev)
			}(kv.Key, ev)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
	}
}

// runEvent runs one queued event and then deletes it, or schedules its retry. The event is read
// again first: the dispatcher's copy may be of an event a worker has finished with meanwhile.
func (s *Service) runEvent(ctx context.Context, key string, ev queuedEvent) {
	fresh := false
	s.view(ctx, func(tx store.Tx) error {
		cur, ok, err := store.GetJSON[queuedEvent](tx, key)
		if err == nil && ok && cur.Attempts == ev.Attempts && !s.now().Before(cur.NotBefore) {
			ev, fresh = cur, true
		}
		return err
	})
	if !fresh {
		return
	}
	r := &awsproto.Request{Caller: awsproto.Caller{AccountID: ev.Account}}
	t, err := s.loadTarget(ctx, r, ref{name: ev.Function, qualifier: ev.Version})
	cfg := t.fn.EventInvoke[ev.Qualifier]
	expired := !ev.Queued.IsZero() && s.now().Sub(ev.Queued) > cfg.maxAge()
	failed, throttled := true, false
	var out invocation
	if err == nil && s.cfg.Sandboxes != nil && !expired {
		var runErr error
		out, runErr = s.runID(ctx, ev.Account, t, ev.Payload, "", ev.RequestID)
		if runErr != nil && ctx.Err() != nil {
			return // stopping: the event stays queued for the next start
		}
		var ae *awsproto.Error
		throttled = errors.As(runErr, &ae) && ae.Status == http.StatusTooManyRequests
		failed = runErr != nil || out.result.Failed()
	}
	if throttled {
		// Throttling is no attempt: the event waits for capacity until its maximum age.
		ev.NotBefore = s.now().Add(throttleRetry)
		s.putEvent(key, ev)
		return
	}
	if !expired {
		ev.Attempts++
	}
	retries := min(cfg.retries(), len(s.cfg.EventRetryDelays))
	done := err != nil || !failed || expired || ev.Attempts > retries
	if !done {
		ev.NotBefore = s.now().Add(s.cfg.EventRetryDelays[ev.Attempts-1])
		s.putEvent(key, ev)
		return
	}
	// Finished: deleted, and its record queued for its destination in the same transaction.
	var destKey string
	var destEv *queuedEvent
	if err == nil {
		dest, condition := cfg.OnFailure, "RetriesExhausted"
		switch {
		case expired:
			condition = "EventAgeExceeded"
		case !failed:
			dest, condition = cfg.OnSuccess, "Success"
		}
		switch {
		case dest == "":
		case ev.Hops >= maxHops:
			s.log.Warn("asynchronous invocation: a loop of destinations stopped", "function", ev.Function, "destination", dest, "hops", ev.Hops)
		default:
			k, de, derr := s.destinationEvent(ctx, r, ev, t, out, condition, dest)
			if derr != nil {
				s.log.Warn("asynchronous invocation: the destination cannot be invoked", "function", ev.Function, "destination", dest, "err", derr)
			} else {
				destKey, destEv = k, &de
			}
		}
	}
	uerr := s.store.Update(context.Background(), func(tx store.Tx) error {
		if !strings.HasPrefix(key, s.queuePrefix()) {
			return nil
		}
		if err := tx.Delete(key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if destEv != nil {
			return store.PutJSON(tx, destKey, *destEv)
		}
		return nil
	})
	if uerr != nil {
		s.log.Error("event queue", "err", uerr)
	}
	if destEv != nil {
		s.kickQueue()
	}
}

// throttleRetry is how soon a throttled event is tried again.
const throttleRetry = time.Second

func (s *Service) putEvent(key string, ev queuedEvent) {
	if err := s.store.Update(context.Background(), func(tx store.Tx) error { return store.PutJSON(tx, key, ev) }); err != nil {
		s.log.Error("event queue", "err", err)
	}
}

// destinationEvent makes the event that takes an event's invocation record to a destination
// function.
func (s *Service) destinationEvent(ctx context.Context, r *awsproto.Request, ev queuedEvent, t target, out invocation, condition, dest string) (string, queuedEvent, error) {
	rec := invocationRecord{Version: "1.0", Timestamp: s.now().UTC().Format("2006-01-02T15:04:05.000Z"),
		RequestContext: recordContext{RequestID: ev.RequestID, FunctionArn: s.arn(r, ref{name: ev.Function, qualifier: cmp.Or(ev.Qualifier, "$LATEST")}),
			Condition: condition, ApproximateInvokeCount: ev.Attempts},
		RequestPayload: ev.Payload, Response: recordResponse{StatusCode: 200, ExecutedVersion: t.v.Config.Version}}
	if ev.Attempts > 0 {
		rec.ResponsePayload = out.result.Payload
		if out.result.Failed() {
			rec.Response.FunctionError = "Unhandled"
		}
	}
	if !json.Valid(rec.RequestPayload) {
		rec.RequestPayload = json.RawMessage("null")
	}
	if len(rec.ResponsePayload) > 0 && !json.Valid(rec.ResponsePayload) {
		b, _ := json.Marshal(string(rec.ResponsePayload))
		rec.ResponsePayload = b
	}
	payload, err := json.Marshal(rec)
	if err != nil {
		return "", queuedEvent{}, err
	}
	f, err := s.parseRef(r, dest, "")
	if err != nil {
		return "", queuedEvent{}, err
	}
	dt, err := s.loadTarget(ctx, r, f)
	if err != nil {
		return "", queuedEvent{}, err
	}
	key, dev := s.newEvent(ev.Account, dt.v, f.qualifier, uuid.NewString(), payload)
	dev.Hops = ev.Hops + 1
	return key, dev, nil
}
