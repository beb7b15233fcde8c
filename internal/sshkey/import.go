package sshkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// maxMaterialLen bounds the size of the key material Import examines. The
// largest accepted key, 4096-bit RSA in base64-of-RFC-4716 form, is well under
// 2 KiB; the margin leaves room for long comments.
const maxMaterialLen = 64 << 10

// RFC 4716 ("SSH2") public key armour.
const (
	rfc4716Begin = "---- BEGIN SSH2 PUBLIC KEY ----"
	rfc4716End   = "---- END SSH2 PUBLIC KEY ----"
)

// FormatError is the error Import returns for material it does not accept.
// It wraps ErrInvalidFormat, and also ErrUnsupportedKey when the material is
// a well-formed public key of a kind or size EC2 does not accept.
type FormatError struct {
	// Reason says precisely what is wrong with the material, in a form fit
	// to show the user.
	Reason string
	// Unsupported is set when the material is a well-formed but
	// unsupported public key.
	Unsupported bool
}

// Error implements error.
func (e *FormatError) Error() string { return ErrInvalidFormat.Error() + ": " + e.Reason }

// Unwrap returns ErrInvalidFormat and, for unsupported keys,
// ErrUnsupportedKey.
func (e *FormatError) Unwrap() []error {
	if e.Unsupported {
		return []error{ErrInvalidFormat, ErrUnsupportedKey}
	}
	return []error{ErrInvalidFormat}
}

// invalid returns a FormatError for malformed material.
func invalid(format string, args ...any) error {
	return &FormatError{Reason: fmt.Sprintf(format, args...)}
}

// unsupported returns a FormatError for a well-formed key EC2 does not take.
func unsupported(format string, args ...any) error {
	return &FormatError{Reason: fmt.Sprintf(format, args...), Unsupported: true}
}

// privateKeyError rejects private key material.
func privateKeyError(what string) error {
	return invalid("the material is a private key (%s); ImportKeyPair takes only the public key", what)
}

// Imported is a validated public key from ImportKeyPair.
type Imported struct {
	Type Type
	// PublicKey is the key as a normalised OpenSSH line, "ssh-rsa AAAA..."
	// or "ssh-ed25519 AAAA...", without comment or trailing newline,
	// whatever form the material had.
	PublicKey string
	// Comment is the comment the material carried (the third field of an
	// OpenSSH line, or an RFC 4716 Comment header), if any.
	Comment string
	// Fingerprint is the fingerprint AWS reports for an imported key:
	// FingerprintRSAPublic for RSA, FingerprintED25519 for ED25519.
	Fingerprint string
	// Bits is the RSA modulus size, or 256 for ED25519.
	Bits int
}

// Import parses and validates public key material as ImportKeyPair accepts
// it. The SDKs send PublicKeyMaterial base64-encoded on the wire; material
// is what remains once the caller has decoded that once. Accepted are:
//
//   - an OpenSSH public key line, "ssh-rsa AAAA... comment" or
//     "ssh-ed25519 AAAA... comment" (comment optional);
//   - for RSA only: a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS#1)
//     block, the same DER base64-encoded without PEM armour, or an RFC 4716
//     "---- BEGIN SSH2 PUBLIC KEY ----" block;
//   - any of those base64-encoded once more, since AWS accepts material that
//     was base64-encoded twice.
//
// RSA moduli must be MinImportRSABits to MaxImportRSABits bits inclusive.
// Anything else, including DSA, ECDSA and security-key keys, certificates,
// private keys and malformed data, yields a *FormatError, which wraps
// ErrInvalidFormat.
func Import(material []byte) (*Imported, error) {
	if len(material) > maxMaterialLen {
		return nil, invalid("the key material is %d bytes long; at most %d are accepted", len(material), maxMaterialLen)
	}
	return importText(material, 0)
}

// importText recognises the form of material. depth counts the base64 layers
// Import has removed itself.
func importText(material []byte, depth int) (*Imported, error) {
	text := strings.TrimSpace(strings.TrimPrefix(string(material), "\ufeff"))
	if text == "" {
		return nil, invalid("the key material is empty")
	}
	switch {
	case strings.HasPrefix(text, "-----BEGIN "):
		return importPEM(text)
	case strings.HasPrefix(text, "---- BEGIN "):
		return importRFC4716(text)
	case strings.HasPrefix(text, "PuTTY-User-Key-File-"):
		return nil, privateKeyError("a PuTTY .ppk file")
	}
	firstLine, _, _ := strings.Cut(text, "\n")
	if strings.ContainsAny(firstLine, " \t") || hasKeyTypePrefix(text) {
		return importAuthorizedKey(text)
	}

	// No spaces: base64, either of a key in one of the forms above (material
	// base64-encoded twice) or of a DER-encoded key.
	data, ok := decodeBase64(text)
	if !ok {
		return nil, invalid(`unrecognised key format; expected an OpenSSH public key such as "ssh-rsa AAAA... comment"`)
	}
	if looksLikeText(data) {
		if depth > 0 {
			return nil, tooMuchBase64()
		}
		return importText(data, depth+1)
	}
	if inner, ok := decodeBase64(string(data)); ok && looksLikeText(inner) {
		return nil, tooMuchBase64()
	}
	return importDER(data)
}

// tooMuchBase64 rejects material wrapped in more base64 layers than AWS
// unwraps.
func tooMuchBase64() error {
	return invalid("the key material is base64-encoded more than twice")
}

// hasKeyTypePrefix reports whether s starts like an SSH key type name.
func hasKeyTypePrefix(s string) bool {
	for _, p := range []string{"ssh-", "ecdsa-", "sk-"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// looksLikeText reports whether data, once decoded from base64, is itself
// textual key material rather than DER.
func looksLikeText(data []byte) bool {
	s := strings.TrimSpace(strings.TrimPrefix(string(data), "\ufeff"))
	return hasKeyTypePrefix(s) ||
		strings.HasPrefix(s, "-----BEGIN ") ||
		strings.HasPrefix(s, "---- BEGIN ") ||
		strings.HasPrefix(s, "PuTTY-User-Key-File-")
}

// decodeBase64 decodes standard base64, padded or not, ignoring whitespace.
func decodeBase64(s string) ([]byte, bool) {
	s = strings.Join(strings.Fields(s), "")
	if data, err := base64.StdEncoding.DecodeString(s); err == nil && len(data) > 0 {
		return data, true
	}
	if data, err := base64.RawStdEncoding.DecodeString(s); err == nil && len(data) > 0 {
		return data, true
	}
	return nil, false
}

// importAuthorizedKey parses an OpenSSH public key line:
// "<type> <base64 blob> [comment]".
func importAuthorizedKey(text string) (*Imported, error) {
	line, more, _ := strings.Cut(text, "\n")
	if strings.TrimSpace(more) != "" {
		return nil, invalid("the key material holds more than one line; supply a single public key")
	}
	line = strings.TrimSpace(line)
	keyType, rest := cutField(line)
	b64, comment := cutField(rest)
	if strings.ContainsAny(keyType, `=",`) {
		return nil, invalid("authorized_keys options (%q) are not accepted; supply only the public key", clip(keyType))
	}
	if err := checkKeyType(keyType); err != nil {
		return nil, err
	}
	if b64 == "" {
		return nil, invalid("no key data follows the key type %q", keyType)
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, invalid("the %s key data is not valid base64", keyType)
	}
	pub, err := parseSSHBlob(blob)
	if err != nil {
		return nil, err
	}
	if pub.Type() != keyType {
		return nil, invalid("the key type %q does not match the key data, which holds a %q key", keyType, pub.Type())
	}
	return importSSHKey(pub, comment, "")
}

// cutField splits s at its first run of spaces or tabs.
func cutField(s string) (field, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// checkKeyType accepts the SSH key types EC2 imports and explains why any
// other is refused.
func checkKeyType(keyType string) error {
	const use = "use an RSA (2048 to 4096 bits) or ED25519 key"
	switch {
	case keyType == ssh.KeyAlgoRSA || keyType == ssh.KeyAlgoED25519:
		return nil
	case strings.Contains(keyType, "-cert-v01@openssh.com"):
		return unsupported("SSH certificates (%s) are not accepted; supply the plain public key", clip(keyType))
	case keyType == ssh.KeyAlgoDSA:
		return unsupported("DSA keys (ssh-dss) are not supported; %s", use)
	case strings.HasPrefix(keyType, "ecdsa-sha2-"):
		return unsupported("ECDSA keys (%s) are not supported; %s", clip(keyType), use)
	case strings.HasPrefix(keyType, "sk-"):
		return unsupported("security key (FIDO) keys (%s) are not supported; %s", clip(keyType), use)
	default:
		return invalid("unknown key type %q; %s", clip(keyType), use)
	}
}

// parseSSHBlob parses an SSH wire-format public key blob of a type EC2
// imports.
func parseSSHBlob(blob []byte) (ssh.PublicKey, error) {
	if len(blob) < 4 || uint64(binary.BigEndian.Uint32(blob)) > uint64(len(blob)-4) {
		return nil, invalid("the key data is truncated")
	}
	n := int(binary.BigEndian.Uint32(blob))
	keyType := string(blob[4 : 4+n])
	if err := checkKeyType(keyType); err != nil {
		return nil, err
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, invalid("the key data is not a valid %s public key (%v)", keyType, err)
	}
	return pub, nil
}

// importSSHKey finishes importing a parsed SSH public key. form names the
// container it came in, or is empty for an OpenSSH line.
func importSSHKey(pub ssh.PublicKey, comment, form string) (*Imported, error) {
	switch pub.Type() {
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return nil, invalid("the RSA key cannot be decoded")
		}
		rsaPub, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return nil, invalid("the RSA key cannot be decoded")
		}
		return importRSA(rsaPub, comment)
	case ssh.KeyAlgoED25519:
		if form != "" {
			return nil, ed25519FormError(form)
		}
		return &Imported{
			Type:        TypeED25519,
			PublicKey:   authorizedKey(pub, ""),
			Comment:     comment,
			Fingerprint: fingerprintSHA256(pub),
			Bits:        256,
		}, nil
	default:
		if err := checkKeyType(pub.Type()); err != nil {
			return nil, err
		}
		return nil, invalid("unknown key type %q", clip(pub.Type()))
	}
}

// ed25519FormError rejects an ED25519 key given in a form other than an
// OpenSSH line.
func ed25519FormError(form string) error {
	return unsupported(`ED25519 keys are accepted only as an OpenSSH public key ("ssh-ed25519 AAAA..."), not as %s`, form)
}

// importRSA validates an RSA public key and builds its Imported value.
func importRSA(k *rsa.PublicKey, comment string) (*Imported, error) {
	if k.N == nil || k.N.Sign() <= 0 || k.N.Bit(0) == 0 {
		return nil, invalid("the RSA modulus is not a positive odd number")
	}
	// 2^24 is also golang.org/x/crypto/ssh's bound, so the normalised key
	// stays parseable.
	if k.E < 3 || k.E&1 == 0 || k.E >= 1<<24 {
		return nil, invalid("the RSA public exponent %d is not valid", k.E)
	}
	bits := k.N.BitLen()
	if bits < MinImportRSABits || bits > MaxImportRSABits {
		return nil, unsupported("the RSA key is %d bits long; the key length must be %d to %d bits", bits, MinImportRSABits, MaxImportRSABits)
	}
	pub, err := ssh.NewPublicKey(k)
	if err != nil {
		return nil, invalid("the RSA key cannot be encoded: %v", err)
	}
	fp, err := FingerprintRSAPublic(k)
	if err != nil {
		return nil, invalid("the RSA key cannot be encoded: %v", err)
	}
	return &Imported{
		Type:        TypeRSA,
		PublicKey:   authorizedKey(pub, ""),
		Comment:     comment,
		Fingerprint: fp,
		Bits:        bits,
	}, nil
}

// importPEM parses a PEM-armoured public key.
func importPEM(text string) (*Imported, error) {
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, invalid("malformed PEM block")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, invalid("unexpected data after the PEM %q block", clip(block.Type))
	}
	switch t := block.Type; {
	case t == "PUBLIC KEY":
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, invalid("the PEM PUBLIC KEY block is not a valid public key (%v)", err)
		}
		return importCryptoKey(key, "a PEM PUBLIC KEY block")
	case t == "RSA PUBLIC KEY":
		key, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, invalid("the PEM RSA PUBLIC KEY block is not a valid PKCS#1 public key (%v)", err)
		}
		return importRSA(key, "")
	case strings.HasSuffix(t, "PRIVATE KEY"):
		return nil, privateKeyError(fmt.Sprintf("a PEM %s block", clip(t)))
	case t == "CERTIFICATE":
		return nil, invalid("X.509 certificates are not accepted; supply the public key")
	default:
		return nil, invalid("unsupported PEM block type %q", clip(t))
	}
}

// importCryptoKey imports a key parsed from PKIX DER; only RSA is accepted in
// that form.
func importCryptoKey(key any, form string) (*Imported, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return importRSA(k, "")
	case ed25519.PublicKey:
		return nil, ed25519FormError(form)
	case *ecdsa.PublicKey:
		return nil, unsupported("ECDSA keys are not supported; use an RSA (2048 to 4096 bits) or ED25519 key")
	default:
		return nil, unsupported("only RSA keys are accepted as %s", form)
	}
}

// importDER parses a DER-encoded public key, PKIX or PKCS#1.
func importDER(der []byte) (*Imported, error) {
	if key, err := x509.ParsePKIXPublicKey(der); err == nil {
		return importCryptoKey(key, "base64 DER")
	}
	if key, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return importRSA(key, "")
	}
	if isPrivateKeyDER(der) {
		return nil, privateKeyError("base64 DER")
	}
	if pub, err := ssh.ParsePublicKey(der); err == nil {
		return nil, invalid(`the key data lacks its key type; supply it as "%s AAAA..."`, pub.Type())
	}
	return nil, invalid(`unrecognised key format; expected an OpenSSH public key such as "ssh-rsa AAAA... comment"`)
}

// isPrivateKeyDER reports whether der is a PKCS#1, PKCS#8 or SEC 1 private
// key.
func isPrivateKeyDER(der []byte) bool {
	if _, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return true
	}
	if _, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return true
	}
	_, err := x509.ParseECPrivateKey(der)
	return err == nil
}

// importRFC4716 parses an RFC 4716 public key:
//
//	---- BEGIN SSH2 PUBLIC KEY ----
//	Comment: "a comment"
//	<base64 of the SSH wire-format blob, over one or more lines>
//	---- END SSH2 PUBLIC KEY ----
//
// Header lines are "Tag: value"; a line ending in a backslash continues on
// the next one.
func importRFC4716(text string) (*Imported, error) {
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n"), "\n")
	if first := strings.TrimSpace(lines[0]); first != rfc4716Begin {
		if strings.Contains(first, "PRIVATE KEY") {
			return nil, privateKeyError("an SSH2 private key")
		}
		return nil, invalid("unsupported key block %q", clip(first))
	}
	var comment string
	i := 1
	for ; i < len(lines) && strings.Contains(lines[i], ":"); i++ {
		header := strings.TrimRight(lines[i], " \t")
		for strings.HasSuffix(header, `\`) && i+1 < len(lines) {
			i++
			header = header[:len(header)-1] + strings.TrimRight(lines[i], " \t")
		}
		tag, value, _ := strings.Cut(header, ":")
		if strings.EqualFold(strings.TrimSpace(tag), "Comment") {
			comment = unquote(strings.TrimSpace(value))
		}
	}
	var body strings.Builder
	end := -1
	for ; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == rfc4716End {
			end = i
			break
		}
		if strings.HasPrefix(line, "---") {
			return nil, invalid("unexpected %q in the SSH2 public key", clip(line))
		}
		body.WriteString(line)
	}
	if end < 0 {
		return nil, invalid("the SSH2 public key has no %q line", rfc4716End)
	}
	for _, line := range lines[end+1:] {
		if strings.TrimSpace(line) != "" {
			return nil, invalid("unexpected data after the SSH2 public key")
		}
	}
	if body.Len() == 0 {
		return nil, invalid("the SSH2 public key holds no key data")
	}
	blob, err := base64.StdEncoding.DecodeString(body.String())
	if err != nil {
		return nil, invalid("the SSH2 public key data is not valid base64")
	}
	pub, err := parseSSHBlob(blob)
	if err != nil {
		return nil, err
	}
	return importSSHKey(pub, comment, "an SSH2 (RFC 4716) public key")
}

// unquote strips one pair of surrounding double quotes.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// clip shortens user-supplied text quoted in an error message.
func clip(s string) string {
	const maxLen = 40
	if len(s) <= maxLen {
		return s
	}
	return s[:maxLen] + "..."
}
