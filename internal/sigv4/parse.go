package sigv4

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Query parameters of the presigned form.
const (
	paramAlgorithm     = "X-Amz-Algorithm"
	paramCredential    = "X-Amz-Credential"
	paramDate          = "X-Amz-Date"
	paramExpires       = "X-Amz-Expires"
	paramSignedHeaders = "X-Amz-SignedHeaders"
	paramSignature     = "X-Amz-Signature"
)

// signature is what a request claims about its own signing, in either form.
type signature struct {
	presigned     bool
	scope         Scope
	signedHeaders []string
	signature     string
	signedAt      time.Time
	expires       time.Duration // presigned form only
	query         []queryParam
}

// parseSignature reads and checks the shape of r's signature, but nothing
// that needs a key or the clock.
func parseSignature(r *http.Request) (*signature, *Error) {
	query := parseQuery(r.URL.RawQuery)
	header := r.Header.Get("Authorization")
	presigned := query.has(paramAlgorithm) || query.has(paramCredential) || query.has(paramSignature)
	switch {
	case header != "" && presigned:
		return nil, newError(Incomplete, "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "+
			"Signature query string parameter or the Authorization header should be specified")
	case header != "":
		return parseHeaderForm(r, header, query)
	case presigned:
		return parseQueryForm(query)
	default:
		return nil, newError(MissingAuth, msgMissingAuth)
	}
}

func parseHeaderForm(r *http.Request, header string, query queryParams) (*signature, *Error) {
	date := r.Header.Get("X-Amz-Date")
	if date == "" {
		date = r.Header.Get("Date")
	}
	auth, err := parseAuthorization(header, date != "")
	if err != nil {
		return nil, err
	}
	s := &signature{query: query, signature: auth.Signature}
	if s.scope, err = parseCredential(auth.Credential); err != nil {
		return nil, err
	}
	if s.signedHeaders, err = parseSignedHeaders(auth.SignedHeaders); err != nil {
		return nil, err
	}
	if s.signedAt, err = parseDate(date, true); err != nil {
		return nil, err
	}
	if err := checkScopeDate(s.scope, s.signedAt, date); err != nil {
		return nil, err
	}
	return s, nil
}

func parseQueryForm(query queryParams) (*signature, *Error) {
	alg, _ := query.get(paramAlgorithm)
	cred, _ := query.get(paramCredential)
	date, _ := query.get(paramDate)
	expires, _ := query.get(paramExpires)
	signed, _ := query.get(paramSignedHeaders)
	sig, _ := query.get(paramSignature)
	if alg == "" || cred == "" || date == "" || expires == "" || signed == "" || sig == "" {
		return nil, newError(Incomplete, "Query-string authentication version 4 requires the X-Amz-Algorithm, "+
			"X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
	}
	if alg != algorithm {
		return nil, newError(UnsupportedAlgorithm, "X-Amz-Algorithm only supports \"%s\"", algorithm)
	}
	s := &signature{presigned: true, query: query, signature: sig}
	var err *Error
	if s.expires, err = parseExpires(expires); err != nil {
		return nil, err
	}
	if s.scope, err = parseCredential(cred); err != nil {
		return nil, err
	}
	if s.signedHeaders, err = parseSignedHeaders(signed); err != nil {
		return nil, err
	}
	if s.signedAt, err = parseDate(date, false); err != nil {
		return nil, err
	}
	if err := checkScopeDate(s.scope, s.signedAt, date); err != nil {
		return nil, err
	}
	return s, nil
}

// authorization is the content of an Authorization header.
type authorization struct {
	Algorithm     string
	Credential    string
	SignedHeaders string
	Signature     string
}

// String formats a as an SDK does.
func (a authorization) String() string {
	return a.Algorithm + " Credential=" + a.Credential + ", SignedHeaders=" + a.SignedHeaders +
		", Signature=" + a.Signature
}

// parseAuthorization parses an Authorization header value. Like AWS it
// separates the parameters at commas and blanks, and reports every missing
// part at once; haveDate says whether the request has a date header, whose
// absence is reported with them.
func parseAuthorization(value string, haveDate bool) (authorization, *Error) {
	var a authorization
	alg, rest, _ := strings.Cut(strings.Trim(value, " \t"), " ")
	a.Algorithm = alg
	params := strings.FieldsFunc(rest, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })
	for _, p := range params {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			return authorization{}, newError(Incomplete,
				"'%s' not a valid key=value pair (missing equal-sign) in Authorization header: '%s'.", p, value)
		}
		switch k {
		case "Credential":
			a.Credential = v
		case "SignedHeaders":
			a.SignedHeaders = v
		case "Signature":
			a.Signature = v
		}
	}
	if a.Algorithm != algorithm {
		return authorization{}, newError(UnsupportedAlgorithm, "Unsupported AWS 'algorithm': '%s'.", a.Algorithm)
	}
	var missing strings.Builder
	if a.Credential == "" {
		missing.WriteString("Authorization header requires 'Credential' parameter. ")
	}
	if a.Signature == "" {
		missing.WriteString("Authorization header requires 'Signature' parameter. ")
	}
	if a.SignedHeaders == "" {
		missing.WriteString("Authorization header requires 'SignedHeaders' parameter. ")
	}
	if !haveDate {
		missing.WriteString("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ")
	}
	if missing.Len() > 0 {
		return authorization{}, newError(Incomplete, "%sAuthorization=%s", missing.String(), value)
	}
	return a, nil
}

// parseCredential parses AKID/yyyymmdd/region/service/aws4_request.
func parseCredential(cred string) (Scope, *Error) {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return Scope{}, newError(Incomplete, "Credential must have exactly 5 slash-delimited elements, "+
			"e.g. keyid/date/region/service/term, got '%s'", cred)
	}
	if parts[4] != scopeTerminator {
		return Scope{}, newError(Incomplete,
			"Credential should be scoped with a valid terminator: '%s', not '%s'.", scopeTerminator, parts[4])
	}
	for _, p := range parts[:4] {
		if p == "" {
			return Scope{}, newError(Incomplete, "Credential must not have empty elements, "+
				"e.g. keyid/date/region/service/term, got '%s'", cred)
		}
	}
	return Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}, nil
}

// parseSignedHeaders splits a SignedHeaders list, which must name the host.
func parseSignedHeaders(list string) ([]string, *Error) {
	names := strings.Split(list, ";")
	host := false
	for _, n := range names {
		if n == "" {
			return nil, newError(Incomplete, "SignedHeaders must be a ';'-separated list of header names, got '%s'.", list)
		}
		host = host || strings.EqualFold(n, "host") || n == ":authority"
	}
	if !host {
		return nil, newError(Incomplete, msgHostNotSigned)
	}
	return names, nil
}

// parseDate parses the signing time, in ISO 8601 basic format. A Date header
// may also be an HTTP date.
func parseDate(value string, httpDate bool) (time.Time, *Error) {
	t, err := time.Parse(timeFormat, value)
	if err != nil && httpDate {
		t, err = http.ParseTime(value)
	}
	if err != nil {
		return time.Time{}, newError(Incomplete,
			"Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", value)
	}
	return t.UTC(), nil
}

func checkScopeDate(s Scope, signedAt time.Time, raw string) *Error {
	if day := signedAt.Format(dayFormat); s.Date != day {
		return newError(Incomplete, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "+
			"of date from HTTP: '%s' != '%s', from '%s'.", s.Date, day, raw)
	}
	return nil
}

func parseExpires(value string) (time.Duration, *Error) {
	n, err := strconv.Atoi(value)
	switch {
	case err != nil:
		return 0, newError(Incomplete, "X-Amz-Expires should be a number")
	case n < 0:
		return 0, newError(Incomplete, "X-Amz-Expires must be non-negative")
	case n == 0:
		return 0, newError(Incomplete, "X-Amz-Expires must be at least 1 second")
	case n > maxExpires:
		return 0, newError(Incomplete, "X-Amz-Expires must be less than a week (in seconds) that is %d", maxExpires)
	}
	return time.Duration(n) * time.Second, nil
}

// queryParam is one decoded name=value pair of a query string.
type queryParam struct{ name, value string }

type queryParams []queryParam

// parseQuery splits a raw query string into decoded pairs, keeping order and
// repeats. A '+' is a space, as in url.ParseQuery; a malformed escape is
// kept as sent.
func parseQuery(raw string) queryParams {
	var params queryParams
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		params = append(params, queryParam{unescapeQuery(name), unescapeQuery(value)})
	}
	return params
}

func unescapeQuery(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// get returns the first value of name.
func (q queryParams) get(name string) (string, bool) {
	for _, p := range q {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

func (q queryParams) has(name string) bool {
	_, ok := q.get(name)
	return ok
}
