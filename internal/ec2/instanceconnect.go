package ec2

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/sshkey"
	"github.com/nubis/nubis/internal/store"
)

// EC2 Instance Connect (the ec2-instance-connect service): SendSSHPublicKey pushes a public key
// for an OS user of a running instance, valid for 60 seconds, as the console's "Connect" button
// and `aws ec2-instance-connect send-ssh-public-key` do. The instance's metadata service serves
// the key under meta-data/managed-ssh-keys/active-keys/<user>, and the instance's sshd asks for
// it (guestinit configures an AuthorizedKeysCommand). Keys are kept in memory only: they are
// worth a minute.

// instanceConnectTTL is how long a pushed key is valid, as on AWS.
const instanceConnectTTL = 60 * time.Second

// pushedKeys are the keys pushed to instances, by instance and user.
type pushedKeys struct {
	mu   sync.Mutex
	ttl  time.Duration
	keys map[string]map[string][]pushedKey
}

type pushedKey struct {
	line    string
	expires time.Time
}

// active returns the unexpired keys of an instance, by user (nil when there are none).
func (p *pushedKeys) active(id string) map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	var out map[string][]string
	for user, keys := range p.keys[id] {
		keys = slicesDeleteExpired(keys, now)
		if len(keys) == 0 {
			delete(p.keys[id], user)
			continue
		}
		p.keys[id][user] = keys
		if out == nil {
			out = map[string][]string{}
		}
		for _, k := range keys {
			out[user] = append(out[user], k.line)
		}
	}
	if len(p.keys[id]) == 0 {
		delete(p.keys, id)
	}
	return out
}

func slicesDeleteExpired(keys []pushedKey, now time.Time) []pushedKey {
	out := keys[:0]
	for _, k := range keys {
		if now.Before(k.expires) {
			out = append(out, k)
		}
	}
	return out
}

// maxPushedKeys bounds the keys kept for one user of one instance: the oldest go first.
const maxPushedKeys = 16

func (p *pushedKeys) push(id, user, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	// Sweep what has expired everywhere, so instances that never ask keep nothing.
	for iid, users := range p.keys {
		for u, keys := range users {
			if keys = slicesDeleteExpired(keys, now); len(keys) == 0 {
				delete(users, u)
			} else {
				users[u] = keys
			}
		}
		if len(users) == 0 {
			delete(p.keys, iid)
		}
	}
	if p.keys == nil {
		p.keys = map[string]map[string][]pushedKey{}
	}
	if p.keys[id] == nil {
		p.keys[id] = map[string][]pushedKey{}
	}
	ttl := p.ttl
	if ttl <= 0 {
		ttl = instanceConnectTTL
	}
	keys := append(p.keys[id][user], pushedKey{line: line, expires: now.Add(ttl)})
	if len(keys) > maxPushedKeys {
		keys = keys[len(keys)-maxPushedKeys:]
	}
	p.keys[id][user] = keys
}

// SetInstanceConnectTTL changes how long pushed keys are valid (60 seconds unless set: for tests).
func (s *Service) SetInstanceConnectTTL(d time.Duration) {
	s.pushed.mu.Lock()
	s.pushed.ttl = d
	s.pushed.mu.Unlock()
}

var (
	osUserRE     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9$_-]?$`)
	instanceIDRE = regexp.MustCompile(`^i-[a-f0-9]{8,17}$`)
)

func eicError(code, format string, args ...any) error {
	return awsproto.Errorf(400, code, format, args...)
}

// InstanceConnectAPI returns the ec2-instance-connect service (JSON 1.1).
func (s *Service) InstanceConnectAPI(log *slog.Logger) awsproto.Service {
	return &awsproto.JSONService{Name: "ec2-instance-connect", TargetPrefix: "AWSEC2InstanceConnectService", Log: log,
		Actions: map[string]awsproto.JSONHandler{"SendSSHPublicKey": s.sendSSHPublicKey}}
}

func (s *Service) sendSSHPublicKey(ctx context.Context, r *awsproto.Request) (any, error) {
	var in struct {
		InstanceID       string `json:"InstanceId"`
		InstanceOSUser   string `json:"InstanceOSUser"`
		SSHPublicKey     string `json:"SSHPublicKey"`
		AvailabilityZone string `json:"AvailabilityZone"`
	}
	if err := awsproto.DecodeJSON(r.Body, &in); err != nil {
		return nil, err
	}
	switch {
	case !instanceIDRE.MatchString(in.InstanceID):
		return nil, eicError("InvalidArgsException", "Invalid instance ID %q.", in.InstanceID)
	case !osUserRE.MatchString(in.InstanceOSUser):
		return nil, eicError("InvalidArgsException", "Invalid OS user %q.", in.InstanceOSUser)
	case len(in.SSHPublicKey) < 80 || len(in.SSHPublicKey) > 4096:
		return nil, eicError("InvalidArgsException", "The SSH public key must be 80 to 4096 characters long.")
	}
	key, err := sshkey.Import([]byte(strings.TrimSpace(in.SSHPublicKey)))
	if err != nil {
		return nil, eicError("InvalidArgsException", "The SSH public key is not a valid OpenSSH RSA (2048 bits or more) or ED25519 public key.")
	}
	var inst instance
	err = s.store.View(ctx, func(tx store.Tx) error {
		var err error
		inst, err = s.getInstanceOf(tx, r.Caller.AccountID, in.InstanceID)
		return err
	})
	var nf *awsproto.Error
	if errors.As(err, &nf) || errors.Is(err, store.ErrNotFound) {
		return nil, eicError("EC2InstanceNotFoundException", "Instance not found")
	}
	if err != nil {
		return nil, err
	}
	if in.AvailabilityZone != "" && in.AvailabilityZone != inst.Zone {
		return nil, eicError("InvalidArgsException", "The instance is in %s, not in %s.", inst.Zone, in.AvailabilityZone)
	}
	if inst.State != stateRunning {
		return nil, eicError("EC2InstanceStateInvalidException", "Instance is not in a valid state. Instance must be in running state.")
	}
	s.pushed.push(inst.ID, in.InstanceOSUser, key.PublicKey)
	return struct {
		RequestID string `json:"RequestId"`
		Success   bool   `json:"Success"`
	}{r.ID, true}, nil
}
