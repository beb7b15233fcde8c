package sshkey

import (
	"errors"
	"testing"
)

// FuzzImport checks that Import never panics, that every error it returns
// wraps ErrInvalidFormat, and that what it accepts is stable: the normalised
// key imports again to the same result.
func FuzzImport(f *testing.F) {
	for _, name := range []string{"rsa1024.pub", "rsa2048.pub", "rsa3072.pub", "ed25519.pub", "dsa.pub", "ecdsa.pub"} {
		line := readFixture(f, name)
		f.Add([]byte(line))
		f.Add([]byte(b64(line)))
		f.Add([]byte(rfc4716(fixtureBlob(f, name), `Comment: "fuzz \`, `seed"`)))
	}
	rsa := fixtureRSA(f, "rsa2048.pub")
	f.Add([]byte(pemString("PUBLIC KEY", mustPKIX(f, rsa))))
	f.Add([]byte(pemString("RSA PUBLIC KEY", mustPKIX(f, rsa)[24:])))
	f.Add([]byte("PuTTY-User-Key-File-2: ssh-rsa\n"))
	f.Add([]byte("ssh-rsa AAAAB3Nz"))
	f.Add([]byte(""))

	f.Fuzz(func(t *testing.T, material []byte) {
		imp, err := Import(material)
		if err != nil {
			if !errors.Is(err, ErrInvalidFormat) {
				t.Fatalf("error %v does not wrap ErrInvalidFormat", err)
			}
			return
		}
		if !imp.Type.Valid() || imp.Fingerprint == "" || imp.Bits == 0 {
			t.Fatalf("Import accepted an incomplete key: %+v", *imp)
		}
		again, err := Import([]byte(imp.PublicKey))
		if err != nil {
			t.Fatalf("the normalised key %q does not import: %v", imp.PublicKey, err)
		}
		if again.PublicKey != imp.PublicKey || again.Fingerprint != imp.Fingerprint || again.Bits != imp.Bits {
			t.Fatalf("re-import of %q gave %+v, first import %+v", imp.PublicKey, *again, *imp)
		}
	})
}
