package sshkey

// These tests check the package against the real tools users run on the key
// material: ssh-keygen, puttygen and openssl. They skip when a tool is
// missing unless NUBIS_REQUIRE_ALL=1.

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestExternalGeneratedPEM feeds generated PEM keys to ssh-keygen and openssl.
func TestExternalGeneratedPEM(t *testing.T) {
	requireTools(t, "ssh-keygen", "openssl")
	dir := t.TempDir()
	for _, typ := range []Type{TypeRSA, TypeED25519} {
		t.Run(string(typ), func(t *testing.T) {
			g, err := Generate(typ, FormatPEM, "ext-"+string(typ))
			if err != nil {
				t.Fatal(err)
			}
			key := writeFile(t, dir, string(typ)+".pem", []byte(g.PrivateKey))
			out := runTool(t, nil, "ssh-keygen", "-y", "-f", key)
			if got, want := keyFields(t, string(out)), keyFields(t, g.PublicKey); got != want {
				t.Errorf("ssh-keygen -y printed %q, want %q", got, want)
			}

			switch typ {
			case TypeRSA:
				der := runTool(t, nil, "openssl", "pkcs8", "-in", key, "-inform", "PEM", "-outform", "DER", "-topk8", "-nocrypt")
				if got := digestValue(t, runTool(t, der, "openssl", "sha1", "-c")); got != g.Fingerprint {
					t.Errorf("openssl SHA-1 of the PKCS#8 key is %q, Fingerprint is %q", got, g.Fingerprint)
				}
			case TypeED25519:
				checkSSHKeygenSHA256(t, key, g.Fingerprint)
			}
		})
	}
}

// checkSSHKeygenSHA256 compares ssh-keygen's SHA256 fingerprint of the key
// file with an AWS ED25519 fingerprint.
func checkSSHKeygenSHA256(t *testing.T, path, fingerprint string) {
	t.Helper()
	fields := strings.Fields(string(runTool(t, nil, "ssh-keygen", "-l", "-E", "sha256", "-f", path)))
	if len(fields) < 2 {
		t.Fatalf("unexpected ssh-keygen -l output %q", fields)
	}
	if got := strings.TrimPrefix(fields[1], "SHA256:") + "="; got != fingerprint {
		t.Errorf("ssh-keygen -l gives %q (padded), Fingerprint is %q", got, fingerprint)
	}
}

// TestExternalGeneratedPPK loads generated PPK files with puttygen, which
// verifies the MAC, and converts them back to OpenSSH keys.
func TestExternalGeneratedPPK(t *testing.T) {
	requireTools(t, "puttygen", "ssh-keygen", "openssl")
	dir := t.TempDir()
	for _, typ := range []Type{TypeRSA, TypeED25519} {
		t.Run(string(typ), func(t *testing.T) {
			name := "ext key " + string(typ)
			g, err := Generate(typ, FormatPPK, name)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(g.PrivateKey, "PuTTY-User-Key-File-2: ") {
				t.Errorf("not a version 2 PPK file: %q", strings.SplitN(g.PrivateKey, "\n", 2)[0])
			}
			ppk := writeFile(t, dir, string(typ)+".ppk", []byte(g.PrivateKey))
			out := strings.TrimSpace(string(runTool(t, nil, "puttygen", ppk, "-O", "public-openssh")))
			if out != g.PublicKey {
				t.Errorf("puttygen -O public-openssh printed %q, want %q", out, g.PublicKey)
			}

			// The private half: convert to OpenSSH and derive the public key.
			back := filepath.Join(dir, string(typ)+"-back.pem")
			runTool(t, nil, "puttygen", ppk, "-O", "private-openssh", "-o", back)
			out = string(runTool(t, nil, "ssh-keygen", "-y", "-f", back))
			if got, want := keyFields(t, out), keyFields(t, g.PublicKey); got != want {
				t.Errorf("ssh-keygen -y of the converted key printed %q, want %q", got, want)
			}
			// ssh-keygen -y may just echo the public key stored beside the
			// private one, so also derive it from the private half itself.
			checkPrivateMatches(t, readFile(t, back), g.PublicKey)
			switch typ {
			case TypeRSA:
				// puttygen writes PKCS#1 with PuTTY's prime order, which
				// Generate also uses, so the fingerprint still matches.
				der := runTool(t, nil, "openssl", "pkcs8", "-in", back, "-inform", "PEM", "-outform", "DER", "-topk8", "-nocrypt")
				if got := digestValue(t, runTool(t, der, "openssl", "sha1", "-c")); got != g.Fingerprint {
					t.Errorf("openssl SHA-1 of the converted key is %q, Fingerprint is %q", got, g.Fingerprint)
				}
			case TypeED25519:
				checkSSHKeygenSHA256(t, back, g.Fingerprint)
			}
		})
	}
}

// TestExternalImport imports keys made by ssh-keygen, in every form
// ssh-keygen can export, and checks the fingerprints with openssl.
func TestExternalImport(t *testing.T) {
	requireTools(t, "ssh-keygen", "openssl")
	dir := t.TempDir()
	for _, tc := range []struct {
		typ     string
		bits    int
		comment string
	}{
		{"rsa", 2048, "alice@example.com"},
		{"rsa", 3072, ""},
		{"rsa", 4096, "a comment with spaces"},
		{"ed25519", 256, "bob@example.com"},
		{"ed25519", 256, ""},
	} {
		name := fmt.Sprintf("%s%d-%t", tc.typ, tc.bits, tc.comment != "")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			key := filepath.Join(dir, name)
			args := []string{"-q", "-t", tc.typ, "-N", "", "-C", tc.comment, "-f", key}
			if tc.typ == "rsa" {
				args = append(args, "-b", fmt.Sprint(tc.bits))
			}
			runTool(t, nil, "ssh-keygen", args...)
			line := readFile(t, key+".pub")

			imp, err := Import([]byte(line))
			if err != nil {
				t.Fatalf("Import(%q): %v", line, err)
			}
			if imp.PublicKey != keyFields(t, line) || imp.Comment != tc.comment || imp.Bits != tc.bits {
				t.Errorf("Import = %+v, from %q", *imp, line)
			}
			if imp.Type == TypeED25519 {
				checkSSHKeygenSHA256(t, key+".pub", imp.Fingerprint)
				return
			}

			pkcs1 := runTool(t, nil, "ssh-keygen", "-e", "-f", key+".pub", "-m", "PEM")
			der := runTool(t, pkcs1, "openssl", "rsa", "-RSAPublicKey_in", "-outform", "DER")
			if want := digestValue(t, runTool(t, der, "openssl", "md5", "-c")); imp.Fingerprint != want {
				t.Errorf("Fingerprint = %q, openssl MD5 of the PKIX key is %q", imp.Fingerprint, want)
			}

			// The other forms of the same key import identically.
			forms := map[string]string{
				"RFC 4716":     string(runTool(t, nil, "ssh-keygen", "-e", "-f", key+".pub")),
				"PKCS8":        string(runTool(t, nil, "ssh-keygen", "-e", "-f", key+".pub", "-m", "PKCS8")),
				"PEM":          string(pkcs1),
				"base64 twice": b64(line),
			}
			for form, material := range forms {
				got, err := Import([]byte(material))
				if err != nil {
					t.Errorf("Import(%s): %v", form, err)
					continue
				}
				if got.PublicKey != imp.PublicKey || got.Fingerprint != imp.Fingerprint || got.Bits != tc.bits {
					t.Errorf("Import(%s) = %+v, want key and fingerprint of %+v", form, *got, *imp)
				}
			}
		})
	}
}

// TestExternalImportRejectsSmallRSA checks that an ssh-keygen 1024-bit key is
// refused.
func TestExternalImportRejectsSmallRSA(t *testing.T) {
	requireTools(t, "ssh-keygen")
	key := filepath.Join(t.TempDir(), "small")
	runTool(t, nil, "ssh-keygen", "-q", "-t", "rsa", "-b", "1024", "-N", "", "-C", "", "-f", key)
	if imp, err := Import([]byte(readFile(t, key+".pub"))); err == nil {
		t.Errorf("Import accepted a 1024-bit key: %+v", *imp)
	}
}

// readFile returns the contents of a file.
func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// checkPrivateMatches derives the public key from the private half of a PEM
// or OpenSSH private key and compares it with an OpenSSH public key line.
func checkPrivateMatches(t *testing.T, privatePEM, publicLine string) {
	t.Helper()
	raw, err := ssh.ParseRawPrivateKey([]byte(privatePEM))
	if err != nil {
		t.Fatalf("parsing the converted key: %v", err)
	}
	var pub crypto.PublicKey
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		if err := k.Validate(); err != nil {
			t.Fatalf("the converted RSA key does not validate: %v", err)
		}
		pub = &k.PublicKey
	case *ed25519.PrivateKey:
		pub = ed25519.NewKeyFromSeed(k.Seed()).Public()
	default:
		t.Fatalf("unexpected converted key type %T", raw)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := authorizedKey(sshPub, ""), keyFields(t, publicLine); got != want {
		t.Errorf("the converted private key is for %q, want %q", got, want)
	}
}
