package sshkey

import (
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math/big"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ppkVersion is the PuTTY private key file format version Generate writes.
//
// EC2's CreateKeyPair with KeyFormat=ppk returns "PuTTY-User-Key-File-2"
// files, which every PuTTY release since 0.52 (and WinSCP, and the other
// tools that read PPK) can load; format 3 needs PuTTY 0.75 or later.
// encodePPK can also write version 3, should AWS ever switch.
const ppkVersion = 2

// ppkLineLen is the number of base64 characters per line in a PPK file, as
// PuTTY writes them.
const ppkLineLen = 64

// ppkMACKeyLabel is hashed with the (empty) passphrase to key a version 2
// file's MAC.
const ppkMACKeyLabel = "putty-private-key-file-mac-key"

// encodePPK writes key, unencrypted, as a PuTTY private key file of the given
// format version (2 or 3), following appendix C of the PuTTY manual:
//
//	PuTTY-User-Key-File-<version>: <algorithm>
//	Encryption: none
//	Comment: <comment>
//	Public-Lines: <n>
//	<the SSH wire-format public key blob, base64, 64 columns>
//	Private-Lines: <n>
//	<the algorithm-specific private key blob, base64, 64 columns>
//	Private-MAC: <hex MAC>
//
// The MAC covers the algorithm name, the encryption type, the comment and
// both blobs, each encoded as an SSH string. In version 2 it is HMAC-SHA-1
// keyed with SHA-1("putty-private-key-file-mac-key" || passphrase); in
// version 3 it is HMAC-SHA-256 keyed with the Argon2-derived MAC key, which
// is empty for an unencrypted file. With no encryption the private blob
// carries no padding.
func encodePPK(version int, key crypto.PrivateKey, comment string) (string, error) {
	var (
		alg      string
		pub      ssh.PublicKey
		privBlob []byte
		err      error
	)
	switch k := key.(type) {
	case *rsa.PrivateKey:
		alg = ssh.KeyAlgoRSA
		if pub, err = ssh.NewPublicKey(&k.PublicKey); err != nil {
			return "", fmt.Errorf("sshkey: encoding RSA public key: %w", err)
		}
		if privBlob, err = ppkRSAPrivateBlob(k); err != nil {
			return "", err
		}
	case ed25519.PrivateKey:
		alg = ssh.KeyAlgoED25519
		if pub, err = ssh.NewPublicKey(k.Public()); err != nil {
			return "", fmt.Errorf("sshkey: encoding ED25519 public key: %w", err)
		}
		privBlob = ppkED25519PrivateBlob(k)
	default:
		return "", fmt.Errorf("sshkey: cannot write a %T as a PPK file", key)
	}
	if err := checkComment(comment); err != nil {
		return "", err
	}
	pubBlob := pub.Marshal()

	var newMAC func() hash.Hash
	switch version {
	case 2:
		macKey := sha1.Sum([]byte(ppkMACKeyLabel)) // followed by the empty passphrase
		newMAC = func() hash.Hash { return hmac.New(sha1.New, macKey[:]) }
	case 3:
		newMAC = func() hash.Hash { return hmac.New(sha256.New, nil) }
	default:
		return "", fmt.Errorf("sshkey: unsupported PPK format version %d", version)
	}
	const encryption = "none"
	mac := newMAC()
	mac.Write(ssh.Marshal(struct {
		Algorithm, Encryption, Comment string
		Public, Private                []byte
	}{alg, encryption, comment, pubBlob, privBlob}))

	var b strings.Builder
	fmt.Fprintf(&b, "PuTTY-User-Key-File-%d: %s\n", version, alg)
	fmt.Fprintf(&b, "Encryption: %s\n", encryption)
	fmt.Fprintf(&b, "Comment: %s\n", comment)
	writePPKLines(&b, "Public-Lines", pubBlob)
	writePPKLines(&b, "Private-Lines", privBlob)
	fmt.Fprintf(&b, "Private-MAC: %s\n", hex.EncodeToString(mac.Sum(nil)))
	return b.String(), nil
}

// writePPKLines writes a "<label>: <count>" line followed by blob in base64,
// wrapped at ppkLineLen columns.
func writePPKLines(b *strings.Builder, label string, blob []byte) {
	enc := base64.StdEncoding.EncodeToString(blob)
	n := (len(enc) + ppkLineLen - 1) / ppkLineLen
	fmt.Fprintf(b, "%s: %d\n", label, n)
	for len(enc) > ppkLineLen {
		b.WriteString(enc[:ppkLineLen])
		b.WriteByte('\n')
		enc = enc[ppkLineLen:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
}

// ppkRSAPrivateBlob encodes the private half of an RSA key as PuTTY does:
// mpint d, mpint p, mpint q, mpint iqmp, where iqmp = q⁻¹ mod p. PuTTY keeps
// p as the larger prime (it swaps them, recomputing iqmp, when loading a key
// with p < q), so the same order is used here.
func ppkRSAPrivateBlob(k *rsa.PrivateKey) ([]byte, error) {
	if len(k.Primes) != 2 {
		return nil, fmt.Errorf("sshkey: PPK needs a two-prime RSA key, got %d primes", len(k.Primes))
	}
	p, q := k.Primes[0], k.Primes[1]
	if p.Cmp(q) < 0 {
		p, q = q, p
	}
	iqmp := new(big.Int).ModInverse(q, p)
	if iqmp == nil {
		return nil, fmt.Errorf("sshkey: invalid RSA key: q has no inverse modulo p")
	}
	return ssh.Marshal(struct{ D, P, Q, Iqmp *big.Int }{k.D, p, q, iqmp}), nil
}

// ppkED25519PrivateBlob encodes the private half of an ED25519 key as PuTTY
// does: an SSH string holding the 32-byte seed (the "private key" of
// RFC 8032). PuTTY reads the string as a little-endian integer; it writes all
// 32 bytes, trailing zero bytes included, and so does this.
func ppkED25519PrivateBlob(k ed25519.PrivateKey) []byte {
	return ssh.Marshal(struct{ K []byte }{k.Seed()})
}
