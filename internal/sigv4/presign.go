package sigv4

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Presign returns u with the presigned query parameters added, signed with
// secret for scope at signedAt and valid for expires (1s to 7 days, whole
// seconds). Only the host header is signed and the payload is
// UNSIGNED-PAYLOAD, so any client (curl included) can use the URL with the
// given method. A default port (:80 for http, :443 for https) is removed
// from the host, since clients do not send it in the Host header.
//
// scope.Date may be empty; it is then the day of signedAt, which it must
// otherwise equal. Existing X-Amz-* signing parameters in u are replaced.
func Presign(u *url.URL, method string, scope Scope, secret string, signedAt time.Time, expires time.Duration) (*url.URL, error) {
	if u == nil || u.Host == "" {
		return nil, errors.New("sigv4: presign: URL has no host")
	}
	if method == "" {
		method = "GET"
	}
	signedAt = signedAt.UTC()
	day := signedAt.Format(dayFormat)
	if scope.Date == "" {
		scope.Date = day
	}
	if scope.Date != day {
		return nil, fmt.Errorf("sigv4: presign: scope date %s is not the day of %s", scope.Date, signedAt.Format(timeFormat))
	}
	if _, err := parseCredential(scope.String()); err != nil {
		return nil, fmt.Errorf("sigv4: presign: bad scope %q", scope.String())
	}
	if expires < time.Second || expires > maxExpires*time.Second {
		return nil, fmt.Errorf("sigv4: presign: expiry %v is not between 1s and 7 days", expires)
	}

	out := *u
	out.Host = hostForHeader(u)
	out.ForceQuery = false
	var params queryParams
	for _, p := range parseQuery(u.RawQuery) {
		if !signingParam(p.name) {
			params = append(params, p)
		}
	}
	params = append(params,
		queryParam{paramAlgorithm, algorithm},
		queryParam{paramCredential, scope.String()},
		queryParam{paramDate, signedAt.Format(timeFormat)},
		queryParam{paramExpires, strconv.Itoa(int(expires / time.Second))},
		queryParam{paramSignedHeaders, "host"},
	)
	c := canonical{
		method:        method,
		query:         canonicalQuery(params, false),
		headers:       "host:" + trimAll(out.Host) + "\n",
		signedHeaders: "host",
	}
	path := canonicalPaths(out.EscapedPath())[0]
	key := signingKeys.get(secret, scope)
	sig := hmacSHA256(key, stringToSign(signedAt.Format(timeFormat), scope, c.request(path, unsignedPayload)))
	out.RawQuery = c.query + "&" + paramSignature + "=" + hex.EncodeToString(sig)
	return &out, nil
}

func signingParam(name string) bool {
	switch name {
	case paramAlgorithm, paramCredential, paramDate, paramExpires, paramSignedHeaders, paramSignature:
		return true
	}
	return false
}

// hostForHeader returns u.Host without a default port.
func hostForHeader(u *url.URL) string {
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return u.Host
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return u.Host
}
