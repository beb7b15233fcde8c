package container

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/nubis/nubis/internal/guestinit"
)

// SSH host keys made ahead of time. Making an RSA host key takes about half a second of CPU, most
// of an instance's first boot when the guest runs `ssh-keygen -A` itself; nubis keeps a few sets
// ready (made in the background, one process-wide pool started by the first boot) and hands one
// to each new instance, whose init installs it. When the pool is empty the guest makes its own.
const hostKeyPoolSize = 4

type hostKeySet struct {
	rsa, ecdsa, ed25519 crypto.Signer
}

var hostKeys = struct {
	once sync.Once
	ch   chan hostKeySet
}{ch: make(chan hostKeySet, hostKeyPoolSize)}

// takeHostKeys returns a ready set, if there is one, and starts the pool's filler.
func takeHostKeys() (hostKeySet, bool) {
	hostKeys.once.Do(func() { go fillHostKeys() })
	select {
	case set := <-hostKeys.ch:
		return set, true
	default:
		return hostKeySet{}, false
	}
}

// fillHostKeys keeps the pool full, one set at a time.
func fillHostKeys() {
	for {
		set, err := newHostKeySet()
		if err != nil {
			return // the guest makes its own
		}
		hostKeys.ch <- set // blocks while the pool is full
	}
}

func newHostKeySet() (hostKeySet, error) {
	r, err := rsa.GenerateKey(rand.Reader, 3072) // ssh-keygen's default size
	if err != nil {
		return hostKeySet{}, err
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return hostKeySet{}, err
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return hostKeySet{}, err
	}
	return hostKeySet{rsa: r, ecdsa: e, ed25519: ed}, nil
}

// writeHostKeys writes a set into dir as ssh-keygen names them (ssh_host_rsa_key and .pub...),
// commented root@hostname as ssh-keygen -A does.
func writeHostKeys(dir, hostname string, set hostKeySet) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	comment := "root@" + hostname
	for name, key := range map[string]crypto.Signer{"rsa": set.rsa, "ecdsa": set.ecdsa, "ed25519": set.ed25519} {
		block, err := ssh.MarshalPrivateKey(key, comment)
		if err != nil {
			return fmt.Errorf("host key %s: %w", name, err)
		}
		pub, err := ssh.NewPublicKey(key.Public())
		if err != nil {
			return fmt.Errorf("host key %s: %w", name, err)
		}
		base := filepath.Join(dir, "ssh_host_"+name+"_key")
		if err := os.WriteFile(base, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
		line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment + "\n"
		if err := os.WriteFile(base+".pub", []byte(line), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hostKeysDir is where a machine's guest dir holds its keys: guestinit.HostKeysDir inside.
func hostKeysDir(guest string) string {
	return filepath.Join(guest, filepath.Base(guestinit.HostKeysDir))
}
