package guestinit

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// EC2 Instance Connect: sshd asks, for each login, for the keys pushed to the instance for the
// user (SendSSHPublicKey), which the metadata service serves for a minute. As on Amazon's images
// (the ec2-instance-connect package), sshd runs an AuthorizedKeysCommand: here this binary, as
// "nubis-init eic-keys <user>", as a system user of its own, ec2-instance-connect (no other
// process runs as it, so none can tamper with the command).

const (
	// eicConfig is the sshd drop-in that turns the lookup on.
	eicConfig = "/etc/ssh/sshd_config.d/60-nubis-instance-connect.conf"
	// eicCommand is the argument that makes the binary print a user's pushed keys.
	eicCommand = "eic-keys"
	// eicUser runs the command.
	eicUser = "ec2-instance-connect"
	// metadataBase is the instance metadata service as the instance reaches it.
	metadataBase = "http://169.254.169.254"
)

// writeInstanceConnect writes the sshd drop-in, if the image has sshd.
func (b *boot) writeInstanceConnect() error {
	if _, err := os.Stat(b.path(sshdPath)); err != nil {
		return nil
	}
	if _, _, err := b.ensureUser(userSpec{Name: eicUser, System: true, Shell: "/usr/sbin/nologin", NoCreateHome: true,
		Gecos: "EC2 Instance Connect"}); err != nil {
		return err
	}
	conf := "# Written by nubis at boot: EC2 Instance Connect's keys (SendSSHPublicKey), from the metadata service.\n" +
		"AuthorizedKeysCommand " + BinaryPath + " " + eicCommand + " %u\n" +
		"AuthorizedKeysCommandUser " + eicUser + "\n"
	path := b.path(eicConfig)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return writeAtomic(path, []byte(conf), 0o644)
}

var eicUserRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9@._-]{0,30}[A-Za-z0-9$_-]?$`)

// instanceConnectKeys prints the keys pushed for user, one a line: nothing when there are none
// or the metadata service cannot be reached (sshd then goes on with authorized_keys). It asks
// with an IMDSv2 token, which works whatever the instance's HttpTokens.
func instanceConnectKeys(ctx context.Context, base, user string, out io.Writer) error {
	if !eicUserRE.MatchString(user) {
		return fmt.Errorf("invalid user %q", user)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	tok, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("metadata token: %s", resp.Status)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/latest/meta-data/managed-ssh-keys/active-keys/"+user+"/", nil)
	req.Header.Set("X-aws-ec2-metadata-token", string(tok))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("metadata keys: %s", resp.Status)
	}
	keys, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		_, err = fmt.Fprintf(out, "%s\n", keys)
	}
	return err
}
