package sshkey

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// readFixture returns the contents of a file in testdata.
func readFixture(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// fixtureKey parses an OpenSSH public key fixture.
func fixtureKey(t testing.TB, name string) ssh.PublicKey {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(readFixture(t, name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return pub
}

// fixtureRSA returns the RSA key of a fixture.
func fixtureRSA(t testing.TB, name string) *rsa.PublicKey {
	t.Helper()
	return fixtureKey(t, name).(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// wrap breaks s into lines of n characters.
func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

// fixtureBlob returns the SSH wire-format blob of a public key fixture,
// whatever its type.
func fixtureBlob(t testing.TB, name string) []byte {
	t.Helper()
	blob, err := base64.StdEncoding.DecodeString(strings.Fields(readFixture(t, name))[1])
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return blob
}

// rfc4716 writes an SSH public key blob as an RFC 4716 public key with the
// given header lines.
func rfc4716(blob []byte, headers ...string) string {
	var b strings.Builder
	b.WriteString("---- BEGIN SSH2 PUBLIC KEY ----\n")
	for _, h := range headers {
		b.WriteString(h + "\n")
	}
	b.WriteString(wrap(base64.StdEncoding.EncodeToString(blob), 70))
	b.WriteString("\n---- END SSH2 PUBLIC KEY ----\n")
	return b.String()
}

func pemString(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func mustPKIX(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// privateKeys holds private key material made once for the reject cases.
var privateKeys = sync.OnceValues(func() (map[string]string, error) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		return nil, err
	}
	openssh, err := ssh.MarshalPrivateKey(edKey, "k")
	if err != nil {
		return nil, err
	}
	ppk, err := encodePPK(2, edKey, "k")
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"pkcs1":   pemString("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)),
		"pkcs8":   pemString("PRIVATE KEY", pkcs8),
		"openssh": string(pem.EncodeToMemory(openssh)),
		"ppk":     ppk,
		"der":     base64.StdEncoding.EncodeToString(pkcs8),
	}, nil
})

func TestImportAccepts(t *testing.T) {
	rsa2048 := fixtureKey(t, "rsa2048.pub")
	rsa2048Line := strings.TrimSpace(readFixture(t, "rsa2048.pub"))
	rsa2048Bare := keyFields(t, rsa2048Line)
	rsa2048Pub := fixtureRSA(t, "rsa2048.pub")
	pkix2048 := mustPKIX(t, rsa2048Pub)
	pkcs1 := x509.MarshalPKCS1PublicKey(rsa2048Pub)
	edLine := strings.TrimSpace(readFixture(t, "ed25519.pub"))

	const (
		fp2048 = "f1:0f:e3:a8:fc:47:10:a7:9c:f8:e1:5b:16:c7:b8:b3"
		fpEd   = "CXSm6TTZOczfZEI8URcXQqiQOq7itsmsGiqzuUbTzxs="
	)
	type want struct {
		typ         Type
		bits        int
		fingerprint string
		publicKey   string
		comment     string
	}
	want2048 := func(comment string) want {
		return want{TypeRSA, 2048, fp2048, rsa2048Bare, comment}
	}
	for _, tc := range []struct {
		name     string
		material string
		want     want
	}{
		{"rsa2048 line", rsa2048Line, want2048("fixture-rsa2048@nubis")},
		{"rsa2048 line, newline", rsa2048Line + "\n", want2048("fixture-rsa2048@nubis")},
		{"rsa2048 line, CRLF and blanks", "  " + rsa2048Line + "\r\n\r\n", want2048("fixture-rsa2048@nubis")},
		{"rsa2048 no comment", rsa2048Bare, want2048("")},
		{"rsa2048 tabs", strings.ReplaceAll(rsa2048Bare, " ", "\t") + "\tthe  comment ", want2048("the  comment")},
		{"rsa2048 BOM", "\ufeff" + rsa2048Line, want2048("fixture-rsa2048@nubis")},
		{"rsa3072", readFixture(t, "rsa3072.pub"), want{TypeRSA, 3072, "b4:70:ec:18:11:b5:84:45:53:78:ed:bb:74:69:64:17",
			keyFields(t, readFixture(t, "rsa3072.pub")), "fixture-rsa3072@nubis"}},
		{"rsa4096", readFixture(t, "rsa4096.pub"), want{TypeRSA, 4096, "a5:96:e3:85:53:a8:3a:d1:43:ca:3b:8c:1c:3a:84:b4",
			keyFields(t, readFixture(t, "rsa4096.pub")), "fixture-rsa4096@nubis"}},
		{"ed25519", edLine, want{TypeED25519, 256, fpEd, keyFields(t, edLine), "fixture-ed25519@nubis"}},
		{"ed25519 no comment", keyFields(t, edLine), want{TypeED25519, 256, fpEd, keyFields(t, edLine), ""}},
		{"ed25519 base64 twice", b64(edLine + "\n"), want{TypeED25519, 256, fpEd, keyFields(t, edLine), "fixture-ed25519@nubis"}},
		{"rsa2048 base64 twice", b64(rsa2048Line), want2048("fixture-rsa2048@nubis")},
		{"rsa2048 base64 twice, wrapped", wrap(b64(rsa2048Line+"\n"), 76) + "\n", want2048("fixture-rsa2048@nubis")},
		{"rsa2048 base64 twice, unpadded", strings.TrimRight(b64(rsa2048Bare+" x"), "="), want2048("x")},
		{"RFC 4716", rfc4716(rsa2048.Marshal(), `Comment: "2048-bit RSA, converted by me"`), want2048("2048-bit RSA, converted by me")},
		{"RFC 4716 no headers", rfc4716(rsa2048.Marshal()), want2048("")},
		{"RFC 4716 continued header", rfc4716(rsa2048.Marshal(), `Subject: me`, `Comment: "a long \`, `comment"`, `x-private: 1`), want2048("a long comment")},
		{"RFC 4716 CRLF", strings.ReplaceAll(rfc4716(rsa2048.Marshal(), "Comment: plain"), "\n", "\r\n"), want2048("plain")},
		{"RFC 4716 base64 twice", b64(rfc4716(rsa2048.Marshal())), want2048("")},
		{"PEM PKIX", pemString("PUBLIC KEY", pkix2048), want2048("")},
		{"PEM PKCS#1", pemString("RSA PUBLIC KEY", pkcs1), want2048("")},
		{"PEM PKIX base64 twice", b64(pemString("PUBLIC KEY", pkix2048)), want2048("")},
		{"DER PKIX", base64.StdEncoding.EncodeToString(pkix2048), want2048("")},
		{"DER PKIX wrapped", wrap(base64.StdEncoding.EncodeToString(pkix2048), 64), want2048("")},
		{"DER PKCS#1", base64.StdEncoding.EncodeToString(pkcs1), want2048("")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Import([]byte(tc.material))
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			w := tc.want
			if got.Type != w.typ || got.Bits != w.bits || got.Fingerprint != w.fingerprint ||
				got.PublicKey != w.publicKey || got.Comment != w.comment {
				t.Errorf("Import =\n  %+v\nwant type %s, %d bits, fingerprint %s, comment %q, key %s",
					*got, w.typ, w.bits, w.fingerprint, w.comment, w.publicKey)
			}
		})
	}
}

func TestImportRejects(t *testing.T) {
	priv, err := privateKeys()
	if err != nil {
		t.Fatal(err)
	}
	rsa2048Line := strings.TrimSpace(readFixture(t, "rsa2048.pub"))
	rsa2048Blob := strings.Fields(rsa2048Line)[1]
	edLine := strings.TrimSpace(readFixture(t, "ed25519.pub"))
	edKey := fixtureKey(t, "ed25519.pub")
	edPub := edKey.(ssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey)

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, caKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	cert := &ssh.Certificate{Key: edKey, CertType: ssh.UserCert, ValidPrincipals: []string{"u"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	badExponent := &rsa.PublicKey{N: fixtureRSA(t, "rsa2048.pub").N, E: 1}

	for _, tc := range []struct {
		name        string
		material    string
		reason      string // a substring of FormatError.Reason
		unsupported bool
	}{
		{"rsa1024", readFixture(t, "rsa1024.pub"), "1024 bits", true},
		{"rsa8192", readFixture(t, "rsa8192.pub"), "8192 bits", true},
		{"rsa1024 PEM", pemString("PUBLIC KEY", mustPKIX(t, fixtureRSA(t, "rsa1024.pub"))), "1024 bits", true},
		{"rsa8192 RFC 4716", rfc4716(fixtureBlob(t, "rsa8192.pub")), "8192 bits", true},
		{"rsa1024 base64 twice", b64(readFixture(t, "rsa1024.pub")), "1024 bits", true},
		{"dsa", readFixture(t, "dsa.pub"), "DSA", true},
		{"ecdsa", readFixture(t, "ecdsa.pub"), "ECDSA", true},
		{"ecdsa PEM", pemString("PUBLIC KEY", mustPKIX(t, ecKey.Public())), "ECDSA", true},
		{"dsa RFC 4716", rfc4716(fixtureBlob(t, "dsa.pub")), "DSA", true},
		{"ecdsa RFC 4716", rfc4716(fixtureBlob(t, "ecdsa.pub")), "ECDSA", true},
		{"dsa type with rsa data", "ssh-dss " + rsa2048Blob, "DSA", true},
		{"ed25519 PEM", pemString("PUBLIC KEY", mustPKIX(t, edPub)), "only as an OpenSSH", true},
		{"ed25519 DER", base64.StdEncoding.EncodeToString(mustPKIX(t, edPub)), "only as an OpenSSH", true},
		{"ed25519 RFC 4716", rfc4716(edKey.Marshal()), "only as an OpenSSH", true},
		{"certificate", string(ssh.MarshalAuthorizedKey(cert)), "certificates", true},
		{"security key", "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t", "security key", true},
		{"empty", "", "empty", false},
		{"blank", " \r\n\t\n", "empty", false},
		{"junk words", "hello world", "unknown key type", false},
		{"junk", "!!!not a key", "unknown key type", false},
		{"junk no spaces", "%%%%", "unrecognised key format", false},
		{"base64 of junk", b64("this is not a key at all"), "unrecognised key format", false},
		{"type only", "ssh-rsa", "no key data", false},
		{"bad base64", "ssh-rsa AAAA%%%%", "not valid base64", false},
		{"truncated base64", "ssh-rsa " + rsa2048Blob[:len(rsa2048Blob)-7], "not valid base64", false},
		{"truncated key", "ssh-rsa " + rsa2048Blob[:len(rsa2048Blob)/8*4], "not a valid ssh-rsa public key", false},
		{"truncated type", "ssh-rsa AAAAB3Nz", "truncated", false},
		{"type mismatch", "ssh-ed25519 " + rsa2048Blob, "does not match", false},
		{"two keys", rsa2048Line + "\n" + edLine + "\n", "more than one line", false},
		{"options", `from="10.0.0.1" ` + rsa2048Line, "options", false},
		{"base64 three times", b64(b64(rsa2048Line)), "more than twice", false},
		{"too large", rsa2048Line + " " + strings.Repeat("x", maxMaterialLen), "at most", false},
		{"bare SSH blob", rsa2048Blob, "lacks its key type", false},
		{"bad exponent", pemString("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(badExponent)), "exponent", false},
		{"private PKCS#1", priv["pkcs1"], "private key", false},
		{"private PKCS#8", priv["pkcs8"], "private key", false},
		{"private OpenSSH", priv["openssh"], "private key", false},
		{"private PuTTY", priv["ppk"], "private key", false},
		{"private DER", priv["der"], "private key", false},
		{"private base64 twice", b64(priv["openssh"]), "private key", false},
		{"private SSH2", "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56w==\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n", "private key", false},
		{"X.509 certificate", pemString("CERTIFICATE", certDER), "certificates", false},
		{"PEM junk type", pemString("FOO", []byte{1, 2, 3}), "unsupported PEM block", false},
		{"PEM bad body", pemString("PUBLIC KEY", []byte{1, 2, 3}), "not a valid public key", false},
		{"PEM then junk", pemString("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(fixtureRSA(t, "rsa2048.pub"))) + "junk", "unexpected data", false},
		{"PEM unterminated", "-----BEGIN PUBLIC KEY-----\nAAAA\n", "malformed PEM", false},
		{"RFC 4716 unterminated", strings.TrimSuffix(rfc4716(fixtureBlob(t, "rsa2048.pub")), "---- END SSH2 PUBLIC KEY ----\n"), "has no", false},
		{"RFC 4716 empty", "---- BEGIN SSH2 PUBLIC KEY ----\n---- END SSH2 PUBLIC KEY ----\n", "no key data", false},
		{"RFC 4716 trailing junk", rfc4716(fixtureBlob(t, "rsa2048.pub")) + "junk\n", "unexpected data", false},
		{"RFC 4716 bad base64", "---- BEGIN SSH2 PUBLIC KEY ----\n%%%%\n---- END SSH2 PUBLIC KEY ----\n", "not valid base64", false},
		{"RFC 4716 unknown block", "---- BEGIN SOMETHING ----\n", "unsupported key block", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Import([]byte(tc.material))
			if err == nil {
				t.Fatalf("Import accepted it: %+v", *got)
			}
			if !errors.Is(err, ErrInvalidFormat) {
				t.Errorf("error %v does not wrap ErrInvalidFormat", err)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", fe.Reason, tc.reason)
			}
			if errors.Is(err, ErrUnsupportedKey) != tc.unsupported || fe.Unsupported != tc.unsupported {
				t.Errorf("unsupported = %v, want %v (%v)", fe.Unsupported, tc.unsupported, err)
			}
			if !strings.HasPrefix(err.Error(), "invalid key format: ") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// TestImportGenerated imports the public half of freshly generated keys and
// checks the fingerprints against the ImportKeyPair rules.
func TestImportGenerated(t *testing.T) {
	for _, typ := range []Type{TypeRSA, TypeED25519} {
		g, err := Generate(typ, FormatPEM, "gen")
		if err != nil {
			t.Fatal(err)
		}
		got, err := Import([]byte(g.PublicKey))
		if err != nil {
			t.Fatalf("Import(%s): %v", typ, err)
		}
		if got.PublicKey != keyFields(t, g.PublicKey) || got.Comment != "gen" || got.Type != typ {
			t.Errorf("Import(%s) = %+v", typ, *got)
		}
		switch typ {
		case TypeED25519:
			// Created and imported ED25519 keys share one fingerprint rule.
			if got.Fingerprint != g.Fingerprint {
				t.Errorf("imported ED25519 fingerprint %q, created %q", got.Fingerprint, g.Fingerprint)
			}
		case TypeRSA:
			// MD5 of the PKIX DER, not SHA-1 of the PKCS#8 private key.
			pub := fixtureFromLine(t, g.PublicKey)
			der := mustPKIX(t, pub)
			if want := md5Colons(der); got.Fingerprint != want || got.Fingerprint == g.Fingerprint {
				t.Errorf("imported RSA fingerprint %q, want %q (and unlike the created %q)", got.Fingerprint, want, g.Fingerprint)
			}
		}
	}
}

// fixtureFromLine returns the RSA key of an OpenSSH public key line.
func fixtureFromLine(t *testing.T, line string) *rsa.PublicKey {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return pub.(ssh.CryptoPublicKey).CryptoPublicKey().(*rsa.PublicKey)
}
