package lambda

import (
	"context"
	"sync"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
)

// pool keeps the execution environments: idle ones by what they run, and counts of the busy ones
// for the concurrency limits. An environment serves one invocation at a time; concurrent
// invocations scale out to more environments, up to the account's limit and the function's
// reserved concurrency.
type pool struct {
	s      *Service
	mu     sync.Mutex
	idle   map[envKey][]*environment
	busy   map[string]int // per account/function: environments busy or starting
	inUse  map[*environment]bool
	active int // account-wide (one account per server today)
	closed bool
}

func newPool(s *Service) *pool {
	return &pool{s: s, idle: map[envKey][]*environment{}, busy: map[string]int{}, inUse: map[*environment]bool{}}
}

// throttled is Lambda's TooManyRequestsException with the Reason member.
func throttled(reason string) error {
	return &awsproto.Error{Status: 429, Code: "TooManyRequestsException", Message: "Rate Exceeded.",
		Fields: map[string]string{"Reason": reason}}
}

// acquire returns an environment for v: a warm one when there is one, else a new one (cold).
func (p *pool) acquire(ctx context.Context, v version, account string, reserved *int) (*environment, error) {
	key := envKey{account, v.Config.FunctionName, v.Config.Version, v.Config.RevisionID}
	fnKey := account + "/" + v.Config.FunctionName
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errServiceClosed
	}
	if reserved != nil && p.busy[fnKey] >= *reserved {
		p.mu.Unlock()
		return nil, throttled("ReservedFunctionConcurrentInvocationLimitExceeded")
	}
	if p.active >= p.s.cfg.AccountConcurrency {
		p.mu.Unlock()
		return nil, throttled("ConcurrentInvocationLimitExceeded")
	}
	p.busy[fnKey]++
	p.active++
	var stale []*environment
	for k, envs := range p.idle {
		if k.account == account && k.function == key.function && k.version == key.version && k != key {
			stale = append(stale, envs...) // new code or configuration retires the old environments
			delete(p.idle, k)
		}
	}
	var env *environment
	if envs := p.idle[key]; len(envs) > 0 {
		env = envs[len(envs)-1]
		p.idle[key] = envs[:len(envs)-1]
	}
	if env != nil {
		p.inUse[env] = true
	}
	p.mu.Unlock()
	for _, e := range stale {
		go e.stop(context.Background())
	}
	if env != nil {
		return env, nil
	}
	env, err := p.s.startEnvironment(ctx, account, v)
	if err != nil {
		p.done(fnKey)
		return nil, err
	}
	p.mu.Lock()
	closed := p.closed
	p.inUse[env] = !closed
	p.mu.Unlock()
	if closed {
		env.stop(context.Background())
		p.done(fnKey)
		return nil, errServiceClosed
	}
	return env, nil
}

func (p *pool) done(fnKey string) {
	p.mu.Lock()
	p.busy[fnKey]--
	p.active--
	p.mu.Unlock()
}

// release takes an environment back after an invocation; a broken one is stopped instead.
func (p *pool) release(env *environment, healthy bool) {
	p.done(env.key.account + "/" + env.key.function)
	env.lastUsed = p.s.now()
	p.mu.Lock()
	wasInUse := p.inUse[env]
	delete(p.inUse, env)
	if !wasInUse { // close stopped it meanwhile
		p.mu.Unlock()
		return
	}
	if healthy && !p.closed {
		p.idle[env.key] = append(p.idle[env.key], env)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	env.stop(context.Background())
}

// retire stops the idle environments of a function (all of its versions), as after a delete.
func (p *pool) retire(account, function string) {
	p.mu.Lock()
	var stop []*environment
	for k, envs := range p.idle {
		if k.account == account && k.function == function {
			stop = append(stop, envs...)
			delete(p.idle, k)
		}
	}
	p.mu.Unlock()
	for _, e := range stop {
		e.stop(context.Background())
	}
}

// reap stops environments idle for longer than keepWarm (scale to zero), until ctx ends.
func (p *pool) reap(ctx context.Context, keepWarm time.Duration) {
	t := time.NewTicker(max(keepWarm/4, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := p.s.now().Add(-keepWarm)
		p.mu.Lock()
		var stop []*environment
		for k, envs := range p.idle {
			kept := envs[:0]
			for _, e := range envs {
				if e.lastUsed.Before(cutoff) {
					stop = append(stop, e)
				} else {
					kept = append(kept, e)
				}
			}
			p.idle[k] = kept
			if len(kept) == 0 {
				delete(p.idle, k)
			}
		}
		p.mu.Unlock()
		for _, e := range stop {
			e.stop(context.Background())
		}
	}
}

// idleCount is the number of warm environments (for tests and logs).
func (p *pool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, envs := range p.idle {
		n += len(envs)
	}
	return n
}

// close stops every environment, idle or busy (an invocation in flight then fails), and refuses
// new ones: environments do not outlive the server that serves their Runtime API.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var stop []*environment
	for _, envs := range p.idle {
		stop = append(stop, envs...)
	}
	for env := range p.inUse {
		stop = append(stop, env)
	}
	p.inUse = map[*environment]bool{}
	p.idle = map[envKey][]*environment{}
	p.mu.Unlock()
	for _, e := range stop {
		e.stop(context.Background())
	}
}
