package lambda

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/store"
)

// Event invocations are queued in the store before Invoke answers 202, so the queue survives a
// restart. Workers run them; a function error is retried twice, after Config.EventRetryDelays, as Lambda does,
// and then the event is dropped (there are no destinations or dead-letter queues yet).

type queuedEvent struct {
	Account   string    `json:"account"`
	Function  string    `json:"function"`
	Version   string    `json:"version"`
	Payload   []byte    `json:"payload"`
	Attempts  int       `json:"attempts"`
	NotBefore time.Time `json:"notBefore"`
}

// defaultRetryDelays are the waits before the second and third attempt, as on AWS.
var defaultRetryDelays = []time.Duration{time.Minute, 2 * time.Minute}

// maxEventWorkers bounds the queued events run at once.
const maxEventWorkers = 16

func (s *Service) queuePrefix() string { return "lambda-queue/" + s.cfg.Region + "/" }

func (s *Service) enqueue(ctx context.Context, account string, v version, payload []byte) error {
	key := fmt.Sprintf("%s%020d-%s", s.queuePrefix(), s.now().UnixNano(), uuid.NewString())
	ev := queuedEvent{Account: account, Function: v.Config.FunctionName, Version: v.Config.Version, Payload: payload}
	if err := s.store.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, key, ev) }); err != nil {
		return err
	}
	s.kickQueue()
	return nil
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

// runEvent runs one queued event and then deletes it, or schedules its retry.
func (s *Service) runEvent(ctx context.Context, key string, ev queuedEvent) {
	r := &awsproto.Request{Caller: awsproto.Caller{AccountID: ev.Account}}
	t, err := s.loadTarget(ctx, r, ref{name: ev.Function, qualifier: ev.Version})
	failed := true
	if err == nil && s.cfg.Sandboxes != nil {
		out, runErr := s.run(ctx, ev.Account, t, ev.Payload, "")
		failed = runErr != nil || out.result.Failed()
		if runErr != nil && ctx.Err() != nil {
			return // stopping: the event stays queued for the next start
		}
	}
	ev.Attempts++
	s.store.Update(context.Background(), func(tx store.Tx) error {
		if err != nil || !failed || ev.Attempts > len(s.cfg.EventRetryDelays) {
			if strings.HasPrefix(key, s.queuePrefix()) {
				return tx.Delete(key)
			}
			return nil
		}
		ev.NotBefore = s.now().Add(s.cfg.EventRetryDelays[ev.Attempts-1])
		return store.PutJSON(tx, key, ev)
	})
}
