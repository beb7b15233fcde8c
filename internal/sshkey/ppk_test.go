package sshkey

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testSeed returns a fixed ED25519 seed whose last byte is last.
func testSeed(last byte) []byte {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(7*i + 1)
	}
	seed[len(seed)-1] = last
	return seed
}

// TestPPKGolden compares encodePPK with files puttygen 0.78 wrote for the
// same keys (puttygen key -O private -C <comment> --ppk-param version=N).
func TestPPKGolden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version int
		last    byte
		comment string
		want    string
	}{
		{"v2", 2, 0xd9, "golden-key", golden2},
		{"v2 trailing zero", 2, 0, "golden key with spaces", golden2Zero},
		{"v3", 3, 0xd9, "golden-key", golden3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := ed25519.NewKeyFromSeed(testSeed(tc.last))
			got, err := encodePPK(tc.version, key, tc.comment)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("encodePPK =\n%s\nwant\n%s", got, tc.want)
			}
			parsePPK(t, got)
		})
	}
}

const golden2 = `PuTTY-User-Key-File-2: ssh-ed25519
Encryption: none
Comment: golden-key
Public-Lines: 2
AAAAC3NzaC1lZDI1NTE5AAAAIMl5PQyyNgl80njIZCwH1WmUg7Z+N2kbMJqBv4LE
2U1c
Private-Lines: 1
AAAAIAEIDxYdJCsyOUBHTlVcY2pxeH+GjZSboqmwt77FzNPZ
Private-MAC: 72c9a925a5c4f15a03302e5bb955679776a00c6f
`

// golden2Zero's seed ends in a zero byte, which PuTTY still writes.
const golden2Zero = `PuTTY-User-Key-File-2: ssh-ed25519
Encryption: none
Comment: golden key with spaces
Public-Lines: 2
AAAAC3NzaC1lZDI1NTE5AAAAIKGdCX/dmPRJCsMop58pqH2V/Bi0Ox11n+Gh1FWl
lacI
Private-Lines: 1
AAAAIAEIDxYdJCsyOUBHTlVcY2pxeH+GjZSboqmwt77FzNMA
Private-MAC: 64ab58d1719a9916ce4fb53c93bf3832dbadac45
`

const golden3 = `PuTTY-User-Key-File-3: ssh-ed25519
Encryption: none
Comment: golden-key
Public-Lines: 2
AAAAC3NzaC1lZDI1NTE5AAAAIMl5PQyyNgl80njIZCwH1WmUg7Z+N2kbMJqBv4LE
2U1c
Private-Lines: 1
AAAAIAEIDxYdJCsyOUBHTlVcY2pxeH+GjZSboqmwt77FzNPZ
Private-MAC: 1c7a8499b7f020104a85d74476e26faaa926e7258a74e48e8485084dd7a6e0d6
`

func TestEncodePPKRejects(t *testing.T) {
	key := ed25519.NewKeyFromSeed(testSeed(1))
	if _, err := encodePPK(1, key, "k"); err == nil {
		t.Errorf("encodePPK accepted version 1")
	}
	if _, err := encodePPK(2, key, "a\nb"); err == nil {
		t.Errorf("encodePPK accepted a comment with a newline")
	}
	if _, err := encodePPK(2, "not a key", "k"); err == nil {
		t.Errorf("encodePPK accepted a string")
	}
}

// TestPPKMatchesPuttygen converts keys to PPK with puttygen and checks that
// encodePPK writes exactly the same file, for both format versions.
func TestPPKMatchesPuttygen(t *testing.T) {
	requireTools(t, "puttygen")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// The same key with its primes in the other order: PuTTY swaps them to
	// keep p > q, and encodePPK must do the same.
	p, q := rsaKey.Primes[0], rsaKey.Primes[1]
	if p.Cmp(q) < 0 {
		p, q = q, p
	}
	rsaSwapped := &rsa.PrivateKey{PublicKey: rsaKey.PublicKey, D: rsaKey.D, Primes: []*big.Int{q, p}}
	rsaSwapped.Precompute()
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.Signer{
		"rsa":          rsaKey,
		"rsa-p<q":      rsaSwapped,
		"ed25519":      edKey,
		"ed25519-zero": ed25519.NewKeyFromSeed(testSeed(0)),
	}
	seed := testSeed(0)
	seed[30] = 0
	keys["ed25519-zero2"] = ed25519.NewKeyFromSeed(seed)

	dir := t.TempDir()
	for name, key := range keys {
		for _, version := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/v%d", name, version), func(t *testing.T) {
				comment := "nubis " + name
				block, err := ssh.MarshalPrivateKey(key, comment)
				if err != nil {
					t.Fatal(err)
				}
				in := writeFile(t, dir, name+".key", pem.EncodeToMemory(block))
				out := filepath.Join(dir, fmt.Sprintf("%s-v%d.ppk", name, version))
				runTool(t, nil, "puttygen", in, "-O", "private", "-o", out, "-C", comment,
					"--ppk-param", fmt.Sprintf("version=%d", version))
				want, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				got, err := encodePPK(version, key, comment)
				if err != nil {
					t.Fatal(err)
				}
				if got != string(want) {
					t.Errorf("encodePPK differs from puttygen:\n%s\nputtygen wrote:\n%s", got, want)
				}
				if !strings.HasPrefix(got, fmt.Sprintf("PuTTY-User-Key-File-%d: ", version)) {
					t.Errorf("wrong header: %q", strings.SplitN(got, "\n", 2)[0])
				}
			})
		}
	}
}
