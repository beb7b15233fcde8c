// Package sshkey creates and imports SSH key pairs the way Amazon EC2 does.
//
// It backs the EC2 CreateKeyPair and ImportKeyPair actions. The key material
// it produces, and the fingerprints it reports, are meant to be
// indistinguishable from AWS's:
//
//   - Generate makes a 2048-bit RSA or an ED25519 key pair and returns the
//     private key in the format CreateKeyPair's KeyFormat asks for: "pem"
//     (PKCS#1 "RSA PRIVATE KEY" for RSA, the OpenSSH private key format for
//     ED25519) or "ppk" (an unencrypted PuTTY private key file, format
//     version 2).
//   - Import validates the public key material given to ImportKeyPair:
//     OpenSSH authorized_keys lines for RSA and ED25519, and for RSA also
//     PEM, base64 DER and RFC 4716 ("SSH2") public keys. Material that is
//     itself base64 of one of those is accepted too.
//   - The fingerprints follow AWS's three different rules: see
//     [FingerprintRSAPrivate], [FingerprintRSAPublic] and
//     [FingerprintED25519].
//
// Private keys are returned to the caller once and never retained by this
// package.
package sshkey

import (
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Type is an EC2 key pair type, as in CreateKeyPair's KeyType.
type Type string

// The key types EC2 supports.
const (
	TypeRSA     Type = "rsa"
	TypeED25519 Type = "ed25519"
)

// Valid reports whether t is a key type EC2 supports.
func (t Type) Valid() bool { return t == TypeRSA || t == TypeED25519 }

// Format is the encoding of a generated private key, as in CreateKeyPair's
// KeyFormat.
type Format string

// The private key formats CreateKeyPair supports.
const (
	FormatPEM Format = "pem"
	FormatPPK Format = "ppk"
)

// Valid reports whether f is a private key format CreateKeyPair supports.
func (f Format) Valid() bool { return f == FormatPEM || f == FormatPPK }

// Key sizes.
const (
	// GeneratedRSABits is the size of the RSA keys CreateKeyPair makes.
	GeneratedRSABits = 2048
	// MinImportRSABits and MaxImportRSABits bound, inclusively, the RSA
	// modulus sizes Import accepts.
	MinImportRSABits = 2048
	MaxImportRSABits = 4096
)

// ErrInvalidFormat is wrapped by every error Import returns for key material
// it does not accept.
var ErrInvalidFormat = errors.New("invalid key format")

// ErrUnsupportedKey is additionally wrapped by Import's errors when the
// material is a well-formed public key that EC2 does not accept: a DSA or
// ECDSA key, an RSA key of the wrong size, a certificate. Callers that map
// such cases to InvalidParameterValue rather than InvalidKey.Format can test
// for it with errors.Is.
var ErrUnsupportedKey = errors.New("unsupported key")

// Generated is a new key pair.
type Generated struct {
	Type Type
	// PrivateKey is the private key in the requested format, ending in a
	// newline. It is returned to the user once and must never be stored.
	PrivateKey string
	// PublicKey is the public key as an OpenSSH authorized_keys line
	// ("ssh-rsa AAAA... comment"), without a trailing newline.
	PublicKey string
	// Fingerprint is the fingerprint AWS reports for a created key pair:
	// FingerprintRSAPrivate for RSA, FingerprintED25519 for ED25519.
	Fingerprint string
}

// Generate makes a key pair as EC2 CreateKeyPair does: a 2048-bit RSA key or
// an ED25519 key, with the private key encoded in format f. The comment (the
// key pair's name) goes into the public key line and, for PPK and OpenSSH
// private keys, into the private key file; it must not contain control
// characters.
func Generate(t Type, f Format, comment string) (*Generated, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("sshkey: unsupported key format %q", f)
	}
	if err := checkComment(comment); err != nil {
		return nil, err
	}
	switch t {
	case TypeRSA:
		key, err := rsa.GenerateKey(rand.Reader, GeneratedRSABits)
		if err != nil {
			return nil, fmt.Errorf("sshkey: generating RSA key: %w", err)
		}
		if key, err = canonicalRSA(key); err != nil {
			return nil, err
		}
		return encodeRSA(key, f, comment)
	case TypeED25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("sshkey: generating ED25519 key: %w", err)
		}
		return encodeED25519(key, f, comment)
	default:
		return nil, fmt.Errorf("sshkey: unsupported key type %q", t)
	}
}

// checkComment rejects comments that would corrupt a PPK file or an
// authorized_keys line.
func checkComment(comment string) error {
	for _, r := range comment {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("sshkey: key comment %q contains a control character", comment)
		}
	}
	return nil
}

// canonicalRSA returns key with its primes in the order p > q, the order
// OpenSSL and PuTTY keep them in. The PKCS#1 and PKCS#8 encodings, and so the
// CreateKeyPair fingerprint, depend on that order; keeping PuTTY's means a
// PPK file converted back to PEM by puttygen still matches the fingerprint.
func canonicalRSA(key *rsa.PrivateKey) (*rsa.PrivateKey, error) {
	if len(key.Primes) != 2 {
		return nil, fmt.Errorf("sshkey: need a two-prime RSA key, got %d primes", len(key.Primes))
	}
	p, q := key.Primes[0], key.Primes[1]
	if p.Cmp(q) > 0 {
		key.Precompute()
		return key, nil
	}
	k := &rsa.PrivateKey{PublicKey: key.PublicKey, D: key.D, Primes: []*big.Int{q, p}}
	k.Precompute()
	if err := k.Validate(); err != nil {
		return nil, fmt.Errorf("sshkey: reordering RSA primes: %w", err)
	}
	return k, nil
}

// encodeRSA builds the Generated value for an RSA key.
func encodeRSA(key *rsa.PrivateKey, f Format, comment string) (*Generated, error) {
	pub, err := ssh.NewPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sshkey: encoding RSA public key: %w", err)
	}
	fp, err := FingerprintRSAPrivate(key)
	if err != nil {
		return nil, err
	}
	g := &Generated{Type: TypeRSA, PublicKey: authorizedKey(pub, comment), Fingerprint: fp}
	switch f {
	case FormatPEM:
		g.PrivateKey = string(pem.EncodeToMemory(&pem.Block{
			Type:  "RSA PRIVATE KEY",
			Bytes: x509.MarshalPKCS1PrivateKey(key),
		}))
	case FormatPPK:
		g.PrivateKey, err = encodePPK(ppkVersion, key, comment)
		if err != nil {
			return nil, err
		}
	}
	return g, nil
}

// encodeED25519 builds the Generated value for an ED25519 key.
func encodeED25519(key ed25519.PrivateKey, f Format, comment string) (*Generated, error) {
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return nil, fmt.Errorf("sshkey: encoding ED25519 public key: %w", err)
	}
	g := &Generated{
		Type:        TypeED25519,
		PublicKey:   authorizedKey(pub, comment),
		Fingerprint: fingerprintSHA256(pub),
	}
	switch f {
	case FormatPEM:
		block, err := ssh.MarshalPrivateKey(key, comment)
		if err != nil {
			return nil, fmt.Errorf("sshkey: encoding ED25519 private key: %w", err)
		}
		// OpenSSH refuses an OpenSSH-format key file whose last line lacks
		// its newline; pem.EncodeToMemory always writes one.
		g.PrivateKey = string(pem.EncodeToMemory(block))
	case FormatPPK:
		g.PrivateKey, err = encodePPK(ppkVersion, key, comment)
		if err != nil {
			return nil, err
		}
	}
	return g, nil
}

// authorizedKey formats pub as an authorized_keys line without a newline.
func authorizedKey(pub ssh.PublicKey, comment string) string {
	line := pub.Type() + " " + base64.StdEncoding.EncodeToString(pub.Marshal())
	if comment != "" {
		line += " " + comment
	}
	return line
}

// FingerprintRSAPrivate returns the fingerprint AWS reports for an RSA key
// pair made by CreateKeyPair: the SHA-1 digest of the DER-encoded PKCS#8
// (unencrypted PrivateKeyInfo) form of the private key, as lower-case hex
// bytes separated by colons. It equals
//
//	openssl pkcs8 -in key.pem -inform PEM -outform DER -topk8 -nocrypt | openssl sha1 -c
//
// run on the PEM private key CreateKeyPair returned. The digest depends on
// the order of the primes in the encoding; Generate keeps p > q.
func FingerprintRSAPrivate(key *rsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("sshkey: encoding PKCS#8 private key: %w", err)
	}
	sum := sha1.Sum(der)
	return colonHex(sum[:]), nil
}

// FingerprintRSAPublic returns the fingerprint AWS reports for an RSA key
// imported with ImportKeyPair: the MD5 digest of the DER-encoded PKIX
// SubjectPublicKeyInfo form of the public key, as lower-case hex bytes
// separated by colons. This is not what "ssh-keygen -E md5 -l" prints (that
// hashes the SSH wire-format blob); it equals
//
//	ssh-keygen -e -f key.pub -m PEM | openssl rsa -RSAPublicKey_in -outform DER | openssl md5 -c
func FingerprintRSAPublic(key *rsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("sshkey: encoding PKIX public key: %w", err)
	}
	sum := md5.Sum(der)
	return colonHex(sum[:]), nil
}

// FingerprintED25519 returns the fingerprint AWS reports for an ED25519 key
// pair, whether created or imported: the SHA-256 digest of the SSH wire-format
// public key blob, base64-encoded with the standard alphabet and with its '='
// padding, without the "SHA256:" prefix. It is what "ssh-keygen -l" prints
// after "SHA256:", plus the trailing '='.
func FingerprintED25519(key ed25519.PublicKey) (string, error) {
	pub, err := ssh.NewPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("sshkey: encoding ED25519 public key: %w", err)
	}
	return fingerprintSHA256(pub), nil
}

// fingerprintSHA256 is FingerprintED25519 for an already-encoded key.
func fingerprintSHA256(pub ssh.PublicKey) string {
	sum := sha256.Sum256(pub.Marshal())
	return base64.StdEncoding.EncodeToString(sum[:])
}

// colonHex formats b as lower-case hex bytes separated by colons.
func colonHex(b []byte) string {
	var s strings.Builder
	s.Grow(len(b) * 3)
	for i, c := range b {
		if i > 0 {
			s.WriteByte(':')
		}
		s.WriteString(hex.EncodeToString([]byte{c}))
	}
	return s.String()
}
