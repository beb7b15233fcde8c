package sshkey

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestGenerate(t *testing.T) {
	for _, typ := range []Type{TypeRSA, TypeED25519} {
		for _, f := range []Format{FormatPEM, FormatPPK} {
			t.Run(string(typ)+"/"+string(f), func(t *testing.T) {
				t.Parallel()
				const name = "my key-1"
				g, err := Generate(typ, f, name)
				if err != nil {
					t.Fatal(err)
				}
				if g.Type != typ {
					t.Errorf("Type = %q, want %q", g.Type, typ)
				}

				pub, comment, _, rest, err := ssh.ParseAuthorizedKey([]byte(g.PublicKey))
				if err != nil {
					t.Fatalf("PublicKey %q: %v", g.PublicKey, err)
				}
				if comment != name || len(rest) != 0 || strings.ContainsAny(g.PublicKey, "\r\n") {
					t.Errorf("PublicKey = %q, want one line with comment %q", g.PublicKey, name)
				}
				wantAlg := map[Type]string{TypeRSA: ssh.KeyAlgoRSA, TypeED25519: ssh.KeyAlgoED25519}[typ]
				if pub.Type() != wantAlg {
					t.Errorf("public key type %q, want %q", pub.Type(), wantAlg)
				}

				var priv crypto.Signer
				var pkcs1 []byte // DER PKCS#1 of an RSA key, for its fingerprint
				switch f {
				case FormatPEM:
					priv, pkcs1 = checkGeneratedPEM(t, typ, g.PrivateKey)
				case FormatPPK:
					priv = checkGeneratedPPK(t, typ, g.PrivateKey, name)
					if k, ok := priv.(*rsa.PrivateKey); ok {
						pkcs1 = x509.MarshalPKCS1PrivateKey(k)
					}
				}
				derived, err := ssh.NewPublicKey(priv.Public())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(derived.Marshal(), pub.Marshal()) {
					t.Errorf("the private key does not match PublicKey")
				}

				var want string
				switch typ {
				case TypeRSA:
					want = pkcs8SHA1(t, pkcs1)
					if len(g.Fingerprint) != 59 {
						t.Errorf("RSA fingerprint %q is not 20 colon-separated bytes", g.Fingerprint)
					}
				case TypeED25519:
					want = sha256Base64(t, g.PublicKey)
					if alt := strings.TrimPrefix(ssh.FingerprintSHA256(pub), "SHA256:") + "="; alt != want {
						t.Errorf("hand-computed fingerprint %q differs from x/crypto's %q", want, alt)
					}
				}
				if g.Fingerprint != want {
					t.Errorf("Fingerprint = %q, want %q", g.Fingerprint, want)
				}
			})
		}
	}
}

// checkGeneratedPEM checks the layout of a generated PEM private key and
// parses it. For RSA it also returns the DER PKCS#1 key from the PEM block.
func checkGeneratedPEM(t *testing.T, typ Type, text string) (crypto.Signer, []byte) {
	t.Helper()
	label := map[Type]string{TypeRSA: "RSA PRIVATE KEY", TypeED25519: "OPENSSH PRIVATE KEY"}[typ]
	if !strings.HasPrefix(text, "-----BEGIN "+label+"-----\n") || !strings.HasSuffix(text, "-----END "+label+"-----\n") {
		t.Fatalf("private key is not a newline-terminated %s PEM block:\n%s", label, text)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	body := lines[1 : len(lines)-1]
	for i, l := range body {
		if len(l) > 64 || (i < len(body)-1 && len(l) != 64) {
			t.Errorf("PEM line %d has %d columns, want 64", i, len(l))
		}
	}
	raw, err := ssh.ParseRawPrivateKey([]byte(text))
	if err != nil {
		t.Fatalf("ParseRawPrivateKey: %v", err)
	}
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		if typ != TypeRSA {
			t.Fatalf("parsed a %T for %s", k, typ)
		}
		if k.N.BitLen() != GeneratedRSABits {
			t.Errorf("RSA key is %d bits, want %d", k.N.BitLen(), GeneratedRSABits)
		}
		if err := k.Validate(); err != nil {
			t.Errorf("RSA key does not validate: %v", err)
		}
		if k.Primes[0].Cmp(k.Primes[1]) <= 0 {
			t.Errorf("RSA primes are not ordered p > q")
		}
		block, _ := pem.Decode([]byte(text))
		return k, block.Bytes
	case *ed25519.PrivateKey:
		if typ != TypeED25519 {
			t.Fatalf("parsed a %T for %s", k, typ)
		}
		return *k, nil
	case ed25519.PrivateKey:
		if typ != TypeED25519 {
			t.Fatalf("parsed a %T for %s", k, typ)
		}
		return k, nil
	default:
		t.Fatalf("parsed an unexpected %T", raw)
		return nil, nil
	}
}

// checkGeneratedPPK parses a generated PPK file, verifying its MAC, and
// rebuilds the private key from it.
func checkGeneratedPPK(t *testing.T, typ Type, text, comment string) crypto.Signer {
	t.Helper()
	p := parsePPK(t, text)
	if p.Version != 2 {
		t.Errorf("PPK version %d, want 2 (what EC2 returns)", p.Version)
	}
	if p.Comment != comment {
		t.Errorf("PPK comment %q, want %q", p.Comment, comment)
	}
	switch typ {
	case TypeRSA:
		if p.Algorithm != "ssh-rsa" {
			t.Fatalf("PPK algorithm %q", p.Algorithm)
		}
		return rsaFromPPK(t, p)
	default:
		if p.Algorithm != "ssh-ed25519" {
			t.Fatalf("PPK algorithm %q", p.Algorithm)
		}
		return ed25519FromPPK(t, p)
	}
}

// ed25519FromPPK rebuilds an ED25519 key from a parsed PPK file, whose
// private blob holds the 32-byte seed.
func ed25519FromPPK(t *testing.T, p *ppkFile) ed25519.PrivateKey {
	t.Helper()
	pub := &sshReader{t: t, data: p.Public}
	if alg := string(pub.bytes()); alg != "ssh-ed25519" {
		t.Fatalf("public blob algorithm %q", alg)
	}
	pubKey := pub.bytes()
	pub.done()
	priv := &sshReader{t: t, data: p.Private}
	seed := priv.bytes()
	priv.done()
	if len(seed) != ed25519.SeedSize {
		t.Fatalf("ED25519 private blob holds %d bytes, want the %d-byte seed", len(seed), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(seed)
	if !bytes.Equal(key.Public().(ed25519.PublicKey), pubKey) {
		t.Fatalf("PPK private seed does not match its public key")
	}
	return key
}

func TestGenerateRejects(t *testing.T) {
	for _, tc := range []struct {
		typ     Type
		format  Format
		comment string
	}{
		{"dsa", FormatPEM, "k"},
		{"", FormatPEM, "k"},
		{TypeRSA, "der", "k"},
		{TypeED25519, "", "k"},
		{TypeED25519, FormatPPK, "two\nlines"},
		{TypeRSA, FormatPEM, "cr\r"},
	} {
		if g, err := Generate(tc.typ, tc.format, tc.comment); err == nil {
			t.Errorf("Generate(%q, %q, %q) = %+v, want an error", tc.typ, tc.format, tc.comment, g)
		}
	}
}

func TestTypeAndFormatValid(t *testing.T) {
	for _, v := range []Type{TypeRSA, TypeED25519} {
		if !v.Valid() {
			t.Errorf("%q.Valid() = false", v)
		}
	}
	for _, v := range []Type{"RSA", "dsa", ""} {
		if v.Valid() {
			t.Errorf("%q.Valid() = true", v)
		}
	}
	for _, v := range []Format{FormatPEM, FormatPPK} {
		if !v.Valid() {
			t.Errorf("%q.Valid() = false", v)
		}
	}
	for _, v := range []Format{"PEM", "der", ""} {
		if v.Valid() {
			t.Errorf("%q.Valid() = true", v)
		}
	}
}

// TestFingerprintVectors checks the fingerprint functions against values
// computed with OpenSSL and ssh-keygen for the fixtures in testdata.
func TestFingerprintVectors(t *testing.T) {
	// ssh-keygen -e -f testdata/X.pub -m PEM | openssl rsa -RSAPublicKey_in -outform DER | openssl md5 -c
	for file, want := range map[string]string{
		"rsa1024.pub": "3f:02:58:76:7d:57:e7:8b:e1:8b:34:43:51:4d:71:84",
		"rsa2048.pub": "f1:0f:e3:a8:fc:47:10:a7:9c:f8:e1:5b:16:c7:b8:b3",
		"rsa3072.pub": "b4:70:ec:18:11:b5:84:45:53:78:ed:bb:74:69:64:17",
		"rsa4096.pub": "a5:96:e3:85:53:a8:3a:d1:43:ca:3b:8c:1c:3a:84:b4",
		"rsa8192.pub": "60:31:7a:c3:ae:97:e2:e8:e9:58:9d:8a:86:62:a7:9c",
	} {
		pub := fixtureKey(t, file).(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
		got, err := FingerprintRSAPublic(pub)
		if err != nil || got != want {
			t.Errorf("FingerprintRSAPublic(%s) = %q, %v; want %q", file, got, err, want)
		}
	}

	// ssh-keygen -l -f testdata/ed25519.pub, plus the '=' padding.
	pub := fixtureKey(t, "ed25519.pub").(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey)
	got, err := FingerprintED25519(pub)
	if want := "CXSm6TTZOczfZEI8URcXQqiQOq7itsmsGiqzuUbTzxs="; err != nil || got != want {
		t.Errorf("FingerprintED25519 = %q, %v; want %q", got, err, want)
	}
	if _, err := FingerprintED25519(pub[:31]); err == nil {
		t.Errorf("FingerprintED25519 accepted a 31-byte key")
	}
}

func TestFingerprintRSAPrivateMatchesPKCS8(t *testing.T) {
	g, err := Generate(TypeRSA, FormatPEM, "k")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(g.PrivateKey))
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := FingerprintRSAPrivate(key)
	if err != nil {
		t.Fatal(err)
	}
	if want := pkcs8SHA1(t, block.Bytes); got != want || got != g.Fingerprint {
		t.Errorf("FingerprintRSAPrivate = %q, hand-built PKCS#8 gives %q, Generate said %q", got, want, g.Fingerprint)
	}
}
