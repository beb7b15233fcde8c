package sshkey

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nubis/nubis/internal/testenv"
)

// toolPackages names the Debian package that provides each external tool.
var toolPackages = map[string]string{
	"ssh-keygen": "openssh-client",
	"puttygen":   "putty-tools",
	"openssl":    "openssl",
}

// requireTools skips the test when one of the named tools is missing, or
// fails it when NUBIS_REQUIRE_ALL=1.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		_, err := exec.LookPath(name)
		testenv.Need(t, err == nil, fmt.Sprintf("%s is not installed (apt-get install -y %s)", name, toolPackages[name]))
	}
}

// runTool runs an external command with the given standard input and returns
// its standard output, failing the test if the command fails.
func runTool(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstderr: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// writeFile writes data to name in dir with mode 0600 and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// digestValue extracts the digest from openssl output such as
// "SHA1(stdin)= 12:34:...".
func digestValue(t *testing.T, out []byte) string {
	t.Helper()
	_, v, ok := strings.Cut(strings.TrimSpace(string(out)), "= ")
	if !ok {
		t.Fatalf("unexpected openssl digest output %q", out)
	}
	return v
}

// keyFields returns the type and base64 fields of an OpenSSH public key line.
func keyFields(t *testing.T, line string) string {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("not an OpenSSH public key line: %q", line)
	}
	return f[0] + " " + f[1]
}

// hexColons formats b as colon-separated lower-case hex, independently of
// colonHex.
func hexColons(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ":")
}

// md5Colons computes the ImportKeyPair RSA fingerprint of a PKIX DER key.
func md5Colons(der []byte) string {
	sum := md5.Sum(der)
	return hexColons(sum[:])
}

// pkcs8SHA1 computes the CreateKeyPair RSA fingerprint from a DER PKCS#1
// private key by wrapping it in a PKCS#8 PrivateKeyInfo by hand.
func pkcs8SHA1(t *testing.T, pkcs1 []byte) string {
	t.Helper()
	der, err := asn1.Marshal(struct {
		Version    int
		Algorithm  pkix.AlgorithmIdentifier
		PrivateKey []byte
	}{
		Algorithm: pkix.AlgorithmIdentifier{
			Algorithm:  asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1},
			Parameters: asn1.NullRawValue,
		},
		PrivateKey: pkcs1,
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	return hexColons(sum[:])
}

// sha256Base64 computes the ED25519 fingerprint of an OpenSSH public key
// line by hand.
func sha256Base64(t *testing.T, line string) string {
	t.Helper()
	blob, err := base64.StdEncoding.DecodeString(strings.Fields(line)[1])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ppkFile is a PuTTY private key file as parsed by parsePPK.
type ppkFile struct {
	Version    int
	Algorithm  string
	Encryption string
	Comment    string
	Public     []byte
	Private    []byte
}

// parsePPK parses an unencrypted PPK file strictly and verifies its MAC,
// independently of encodePPK.
func parsePPK(t *testing.T, text string) *ppkFile {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatalf("PPK file does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	next := func(prefix string) string {
		t.Helper()
		if len(lines) == 0 {
			t.Fatalf("PPK file ends before %q", prefix)
		}
		v, ok := strings.CutPrefix(lines[0], prefix)
		if !ok {
			t.Fatalf("PPK line %q does not start with %q", lines[0], prefix)
		}
		lines = lines[1:]
		return v
	}
	blob := func(label string) []byte {
		t.Helper()
		n, err := strconv.Atoi(next(label + ": "))
		if err != nil || n < 1 || n > len(lines) {
			t.Fatalf("bad %s count", label)
		}
		var b64 string
		for i, l := range lines[:n] {
			if len(l) > 64 || (i < n-1 && len(l) != 64) {
				t.Fatalf("%s line %d has %d characters", label, i, len(l))
			}
			b64 += l
		}
		lines = lines[n:]
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		return data
	}

	var p ppkFile
	header := next("PuTTY-User-Key-File-")
	version, alg, ok := strings.Cut(header, ": ")
	if !ok {
		t.Fatalf("bad PPK header %q", header)
	}
	p.Version, _ = strconv.Atoi(version)
	p.Algorithm = alg
	p.Encryption = next("Encryption: ")
	p.Comment = next("Comment: ")
	p.Public = blob("Public-Lines")
	p.Private = blob("Private-Lines")
	gotMAC, err := hex.DecodeString(next("Private-MAC: "))
	if err != nil {
		t.Fatalf("Private-MAC: %v", err)
	}
	if len(lines) != 0 {
		t.Fatalf("unexpected trailing PPK lines %q", lines)
	}
	if p.Encryption != "none" {
		t.Fatalf("Encryption = %q, want none", p.Encryption)
	}

	var data []byte
	for _, field := range [][]byte{[]byte(p.Algorithm), []byte(p.Encryption), []byte(p.Comment), p.Public, p.Private} {
		data = binary.BigEndian.AppendUint32(data, uint32(len(field)))
		data = append(data, field...)
	}
	var mac []byte
	switch p.Version {
	case 2:
		key := sha1.Sum([]byte("putty-private-key-file-mac-key"))
		h := hmac.New(sha1.New, key[:])
		h.Write(data)
		mac = h.Sum(nil)
	case 3:
		h := hmac.New(sha256.New, nil)
		h.Write(data)
		mac = h.Sum(nil)
	default:
		t.Fatalf("unexpected PPK version %d", p.Version)
	}
	if !hmac.Equal(mac, gotMAC) {
		t.Fatalf("Private-MAC %x does not verify (want %x)", gotMAC, mac)
	}
	return &p
}

// sshReader reads SSH wire-format fields.
type sshReader struct {
	t    *testing.T
	data []byte
}

func (r *sshReader) bytes() []byte {
	r.t.Helper()
	if len(r.data) < 4 {
		r.t.Fatalf("short SSH field")
	}
	n := int(binary.BigEndian.Uint32(r.data))
	if n > len(r.data)-4 {
		r.t.Fatalf("SSH field of %d bytes overruns its blob", n)
	}
	b := r.data[4 : 4+n]
	r.data = r.data[4+n:]
	return b
}

// mpint reads a non-negative, minimally encoded mpint.
func (r *sshReader) mpint() *big.Int {
	r.t.Helper()
	b := r.bytes()
	if len(b) > 0 && (b[0]&0x80 != 0 || (b[0] == 0 && (len(b) == 1 || b[1]&0x80 == 0))) {
		r.t.Fatalf("mpint %x is negative or not minimal", b)
	}
	return new(big.Int).SetBytes(b)
}

func (r *sshReader) done() {
	r.t.Helper()
	if len(r.data) != 0 {
		r.t.Fatalf("%d trailing bytes in SSH blob", len(r.data))
	}
}

// rsaFromPPK rebuilds an RSA private key from a parsed PPK file, checking
// PuTTY's conventions: p > q and iqmp = q^-1 mod p.
func rsaFromPPK(t *testing.T, p *ppkFile) *rsa.PrivateKey {
	t.Helper()
	pub := &sshReader{t: t, data: p.Public}
	if alg := string(pub.bytes()); alg != "ssh-rsa" {
		t.Fatalf("public blob algorithm %q", alg)
	}
	e, n := pub.mpint(), pub.mpint()
	pub.done()
	priv := &sshReader{t: t, data: p.Private}
	d, pp, q, iqmp := priv.mpint(), priv.mpint(), priv.mpint(), priv.mpint()
	priv.done()
	if pp.Cmp(q) <= 0 {
		t.Errorf("PPK RSA primes are not ordered p > q")
	}
	if new(big.Int).Mod(new(big.Int).Mul(iqmp, q), pp).Cmp(big.NewInt(1)) != 0 {
		t.Errorf("iqmp is not q^-1 mod p")
	}
	key := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())},
		D:         d,
		Primes:    []*big.Int{pp, q},
	}
	key.Precompute()
	if err := key.Validate(); err != nil {
		t.Fatalf("RSA key from PPK does not validate: %v", err)
	}
	return key
}
