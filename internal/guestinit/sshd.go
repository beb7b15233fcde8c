package guestinit

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	sshdPath   = "/usr/sbin/sshd"
	keygenPath = "/usr/bin/ssh-keygen"
	sshdLog    = "/var/log/sshd.log"
)

// hostKeyTypes are the types `ssh-keygen -A` makes.
var hostKeyTypes = []string{"rsa", "ecdsa", "ed25519"}

// hostKeys generates the SSH host keys the disk lacks (so once per instance: the disk persists,
// and an image never carries keys of its own) and prints their fingerprints and public keys to
// the console as cloud-init does on EC2, for users who check a host key against the console.
func (b *boot) hostKeys(ctx context.Context) error {
	if _, err := os.Stat(b.path("/etc/ssh")); err != nil {
		return nil // no OpenSSH in the image
	}
	missing := false
	for _, t := range hostKeyTypes {
		key := "/etc/ssh/ssh_host_" + t + "_key"
		if _, err := os.Stat(b.path(key)); err == nil {
			continue
		}
		// Keys nubis made ahead of time for this instance, if any (see HostKeysDir).
		if b.installHostKey(HostKeysDir+"/ssh_host_"+t+"_key", key) {
			continue
		}
		missing = true
	}
	if missing {
		if _, err := os.Stat(b.path(keygenPath)); err != nil {
			return fmt.Errorf("host keys missing and no %s", keygenPath)
		}
		args := []string{"ssh-keygen", "-A"}
		if !b.chroot && b.root != "/" {
			args = append(args, "-f", b.root) // keys under the fake root, not the host's /etc/ssh
		}
		ws, err := b.runProc(ctx, proc{path: keygenPath, args: args, line: b.consoleLines})
		if err != nil {
			return err
		}
		if ws != 0 {
			return fmt.Errorf("ssh-keygen -A: %s", statusText(ws))
		}
	}
	block, err := hostKeyBlock(b.path("/etc/ssh"))
	if err != nil {
		return err
	}
	if block != "" {
		fmt.Fprint(b.console, block)
	}
	return nil
}

// installHostKey copies a host key pair (private 0600, public 0644, owned by root) from src to
// dst; false if there is none to copy or the copy failed.
func (b *boot) installHostKey(src, dst string) bool {
	priv, err1 := os.ReadFile(b.path(src))
	pub, err2 := os.ReadFile(b.path(src + ".pub"))
	if err1 != nil || err2 != nil {
		return false
	}
	if err := os.WriteFile(b.path(dst), priv, 0o600); err != nil {
		return false
	}
	if err := os.WriteFile(b.path(dst+".pub"), pub, 0o644); err != nil {
		os.Remove(b.path(dst))
		return false
	}
	return true
}

// hostKeyBlock renders the console block of cloud-init's write-ssh-key-fingerprints for the
// ssh_host_*key.pub files in dir: fingerprints as `ssh-keygen -l -f` prints them, then the keys.
// DSA keys are left out, as cloud-init's default does. It is empty when dir has no keys.
func hostKeyBlock(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "ssh_host_*key.pub"))
	if err != nil {
		return "", fmt.Errorf("host keys: %w", err)
	}
	sort.Strings(files)
	var fps, keys []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("host keys: %w", err)
		}
		line := strings.TrimSpace(string(data))
		if strings.HasPrefix(line, "ssh-dss ") {
			continue
		}
		fp, err := fingerprintLine(line)
		if err != nil {
			return "", fmt.Errorf("host key %s: %w", f, err)
		}
		fps = append(fps, fp)
		keys = append(keys, line)
	}
	if len(keys) == 0 {
		return "", nil
	}
	const hashes = "#############################################################"
	var s strings.Builder
	s.WriteString("\n" + hashes + "\n-----BEGIN SSH HOST KEY FINGERPRINTS-----\n")
	for _, fp := range fps {
		s.WriteString(fp + "\n")
	}
	s.WriteString("-----END SSH HOST KEY FINGERPRINTS-----\n" + hashes + "\n")
	s.WriteString("-----BEGIN SSH HOST KEY KEYS-----\n")
	for _, k := range keys {
		s.WriteString(k + "\n")
	}
	s.WriteString("-----END SSH HOST KEY KEYS-----\n")
	return s.String(), nil
}

// fingerprintLine is `ssh-keygen -l -f` for one public key line:
// "256 SHA256:... root@host (ED25519)".
func fingerprintLine(line string) (string, error) {
	pk, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return "", fmt.Errorf("parse public key: %w", err)
	}
	if comment == "" {
		comment = "no comment"
	}
	bits, name := 0, strings.ToUpper(pk.Type())
	switch pk.Type() {
	case ssh.KeyAlgoRSA:
		name = "RSA"
	case ssh.KeyAlgoED25519:
		name, bits = "ED25519", 256
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		name = "ECDSA"
	}
	if cpk, ok := pk.(ssh.CryptoPublicKey); ok {
		switch k := cpk.CryptoPublicKey().(type) {
		case *rsa.PublicKey:
			bits = k.N.BitLen()
		case *ecdsa.PublicKey:
			bits = k.Curve.Params().BitSize
		}
	}
	return fmt.Sprintf("%d %s %s (%s)", bits, ssh.FingerprintSHA256(pk), comment, name), nil
}

// startSSHD starts sshd, if the image has one, under a supervisor that restarts it when it
// dies, and waits up to 5 s for it to accept connections.
func (b *boot) startSSHD(ctx context.Context) error {
	if _, err := os.Stat(b.path(sshdPath)); err != nil {
		b.logf("no %s in the image; not starting sshd", sshdPath)
		return nil
	}
	started := make(chan struct{})
	b.wg.Add(1)
	go b.superviseSSHD(ctx, started)
	select {
	case <-started:
	case <-ctx.Done():
		return nil
	}
	if !waitAccept(ctx, b.sshAddr, 5*time.Second) {
		if ctx.Err() == nil {
			b.logf("sshd does not accept connections on %s after 5s (see %s); going on", b.sshAddr, sshdLog)
		}
		return nil
	}
	b.logf("sshd accepts connections on %s", b.sshAddr)
	return nil
}

// superviseSSHD runs `sshd -D -e`, its output appended to /var/log/sshd.log, and restarts it
// with a growing pause (1 s to 30 s, back to 1 s after a minute's run) until ctx ends.
func (b *boot) superviseSSHD(ctx context.Context, started chan<- struct{}) {
	defer b.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			b.logf("sshd supervisor: panic: %v", r)
		}
	}()
	var once sync.Once
	signalStarted := func() { once.Do(func() { close(started) }) }
	defer signalStarted()
	backoff := time.Second
	for ctx.Err() == nil {
		t0 := time.Now()
		ws, err := b.runSSHD(ctx, signalStarted)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			b.logf("sshd: %v", err)
		} else {
			b.logf("sshd exited (%s)", statusText(ws))
		}
		if time.Since(t0) > time.Minute {
			backoff = time.Second
		}
		b.logf("restarting sshd in %v", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (b *boot) runSSHD(ctx context.Context, started func()) (syscall.WaitStatus, error) {
	defer started()
	logPath := b.path(sshdLog)
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", sshdLog, err)
	}
	defer f.Close()
	_, status, _, err := b.start(proc{path: sshdPath, args: []string{sshdPath, "-D", "-e"}, file: f})
	if err != nil {
		return 0, err
	}
	f.Close()
	started()
	select {
	case s := <-status:
		return s, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// waitAccept polls addr until a TCP connection succeeds or timeout passes.
func waitAccept(ctx context.Context, addr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	var d net.Dialer
	for {
		dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		c, err := d.DialContext(dctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return false
		}
	}
}
