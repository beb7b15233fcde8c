package sigv4

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// canonical holds the parts of a canonical request that do not vary between
// the candidate paths and payload hashes a request is checked against.
type canonical struct {
	method        string
	query         string
	headers       string // "name:value\n" for each signed header
	signedHeaders string
}

// request assembles the canonical request for one path and payload hash.
func (c *canonical) request(path, payloadHash string) string {
	var b strings.Builder
	b.Grow(len(c.method) + len(path) + len(c.query) + len(c.headers) + len(c.signedHeaders) + len(payloadHash) + 5)
	b.WriteString(c.method)
	b.WriteByte('\n')
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(c.query)
	b.WriteByte('\n')
	b.WriteString(c.headers)
	b.WriteByte('\n')
	b.WriteString(c.signedHeaders)
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

// stringToSign returns the string signed for a canonical request.
func stringToSign(signedAt string, s Scope, canonicalRequest string) string {
	sum := sha256.Sum256([]byte(canonicalRequest))
	return algorithm + "\n" + signedAt + "\n" + s.credentialScope() + "\n" + hex.EncodeToString(sum[:])
}

// canonicalPaths returns the canonical URI of a wire path (r.URL.EscapedPath)
// and, when it differs, that of the path normalized as botocore normalizes
// it before signing. The wire path is URI-encoded once more: for every
// service but S3 the SDKs sign the already-escaped path escaped again.
func canonicalPaths(wire string) []string {
	if wire == "" {
		wire = "/"
	}
	paths := []string{uriEncode(wire, true)}
	if n := normalizePath(wire); n != wire {
		paths = append(paths, uriEncode(n, true))
	}
	return paths
}

// normalizePath removes "." and ".." segments and empty segments, keeping a
// leading and a trailing slash, as botocore's remove_dot_segments does (and
// as the AWS test suite's normalize-path cases expect).
func normalizePath(p string) string {
	var out []string
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, seg)
		}
	}
	var b strings.Builder
	if strings.HasPrefix(p, "/") {
		b.WriteByte('/')
	}
	b.WriteString(strings.Join(out, "/"))
	if strings.HasSuffix(p, "/") && len(out) > 0 {
		b.WriteByte('/')
	}
	return b.String()
}

// canonicalQuery encodes each name and value, drops X-Amz-Signature when
// presigned, and sorts by encoded name, then encoded value.
func canonicalQuery(params queryParams, presigned bool) string {
	type pair struct{ name, value string }
	pairs := make([]pair, 0, len(params))
	for _, p := range params {
		if presigned && p.name == paramSignature {
			continue
		}
		pairs = append(pairs, pair{uriEncode(p.name, false), uriEncode(p.value, false)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// canonicalHeaders returns the "name:value\n" lines of the signed headers, in
// the order they were listed, and the list joined with ';'.
func canonicalHeaders(r *http.Request, names []string) (headers, signed string) {
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range headerValues(r, strings.ToLower(name)) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimAll(v))
		}
		b.WriteByte('\n')
	}
	return b.String(), strings.Join(names, ";")
}

// headerValues returns the values of a header as the client sent them. Go's
// server moves Host out of the header map into r.Host.
func headerValues(r *http.Request, lower string) []string {
	switch lower {
	case "host", ":authority":
		if r.Host != "" {
			return []string{r.Host}
		}
		return []string{r.URL.Host}
	}
	vs := r.Header.Values(lower)
	if len(vs) == 0 && lower == "content-length" && r.ContentLength > 0 {
		return []string{strconv.FormatInt(r.ContentLength, 10)}
	}
	return vs
}

// trimAll trims leading and trailing spaces and collapses inner runs of
// spaces into one, as the Trimall function of the SigV4 specification.
func trimAll(v string) string {
	v = strings.Trim(v, " ")
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' && i > 0 && v[i-1] == ' ' {
			continue
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// uriEncode percent-encodes, with upper-case hex, every byte outside the RFC
// 3986 unreserved set (A-Z a-z 0-9 - _ . ~), keeping '/' when keepSlash.
func uriEncode(s string, keepSlash bool) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i], keepSlash) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c, keepSlash) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(b)
}

func unreserved(c byte, keepSlash bool) bool {
	switch {
	case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return true
	case c == '-', c == '_', c == '.', c == '~':
		return true
	}
	return c == '/' && keepSlash
}
