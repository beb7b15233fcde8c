package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Response is the HTTP response API Gateway sends the client.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Message returns the response API Gateway gives for its own errors: a JSON body
// {"message":"..."}, for example 404 "Not Found", 500 "Internal Server Error", 429 "Too Many
// Requests" or 503 "Service Unavailable".
func Message(status int, message string) Response {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	return Response{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: body}
}

// defaultContentType is what API Gateway sends for a response body of no declared type.
const defaultContentType = "text/plain; charset=utf-8"

// MapResponse maps a Lambda function's result to the HTTP response, as API Gateway does for
// payload format version ("1.0" or "2.0").
//
// Format 2.0: a JSON object with a "statusCode" is a response description: statusCode, headers
// (name to value), cookies (each becomes a Set-Cookie header, before any Set-Cookie of headers),
// body (a string) and isBase64Encoded (the body is base64 and is sent decoded). Any other valid
// JSON is the body of a 200 application/json response: an object, array, number, boolean or null
// as it is, a string as its value. multiValueHeaders is not part of format 2.0 and is ignored.
//
// Format 1.0: the result must be an object with a statusCode; headers and multiValueHeaders are
// merged (a name in multiValueHeaders replaces the same name in headers); body and
// isBase64Encoded as above.
//
// A result that is not valid JSON or does not describe a response is an error, for which API
// Gateway answers 500 {"message":"Internal Server Error"} (see Message).
func MapResponse(version string, payload []byte) (Response, error) {
	switch version {
	case Version1, Version2:
	default:
		return Response{}, fmt.Errorf("unsupported payload format version %q", version)
	}
	trimmed := bytes.TrimSpace(payload)
	if !json.Valid(trimmed) {
		return Response{}, errors.New("the function's result is not valid JSON")
	}
	var fields map[string]json.RawMessage
	if trimmed[0] == '{' {
		if err := json.Unmarshal(trimmed, &fields); err != nil {
			return Response{}, fmt.Errorf("the function's result: %w", err)
		}
	}
	if _, described := fields["statusCode"]; described {
		return describedResponse(version, fields)
	}
	if version == Version1 {
		return Response{}, errors.New("the function's result has no statusCode")
	}
	body := trimmed
	if trimmed[0] == '"' {
		var s string
		if err := json.Unmarshal(trimmed, &s); err != nil {
			return Response{}, fmt.Errorf("the function's result: %w", err)
		}
		body = []byte(s)
	}
	return Response{
		Status: http.StatusOK,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   bytes.Clone(body),
	}, nil
}

func describedResponse(version string, fields map[string]json.RawMessage) (Response, error) {
	status, err := statusCode(fields["statusCode"])
	if err != nil {
		return Response{}, err
	}
	resp := Response{Status: status, Header: http.Header{}}
	headers, err := stringMap(fields["headers"])
	if err != nil {
		return Response{}, fmt.Errorf("headers: %w", err)
	}
	if version == Version2 {
		cookies, err := stringList(fields["cookies"])
		if err != nil {
			return Response{}, fmt.Errorf("cookies: %w", err)
		}
		for _, c := range cookies {
			resp.Header.Add("Set-Cookie", c)
		}
		for _, name := range sortedKeys(headers) {
			addHeader(resp.Header, name, headers[name])
		}
	} else {
		multi := map[string][]string{}
		if raw, ok := fields["multiValueHeaders"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &multi); err != nil {
				return Response{}, fmt.Errorf("multiValueHeaders: want an object of string lists: %w", err)
			}
		}
		for _, name := range sortedKeys(headers) {
			if !hasName(multi, name) {
				addHeader(resp.Header, name, headers[name])
			}
		}
		for _, name := range sortedKeys(multi) {
			for _, v := range multi[name] {
				addHeader(resp.Header, name, v)
			}
		}
	}
	// A number or boolean body is sent as its JSON text, as API Gateway does for a handler that
	// returns {"statusCode": 200, "body": 2.0}; an object or array is a malformed response.
	var body string
	if raw, ok := fields["body"]; ok {
		text, _, err := scalarText(bytes.TrimSpace(raw))
		if err != nil {
			return Response{}, fmt.Errorf("body: %w", err)
		}
		body = text
	}
	var b64 bool
	if raw, ok := fields["isBase64Encoded"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &b64); err != nil {
			return Response{}, errors.New("isBase64Encoded: want a boolean")
		}
	}
	resp.Body = []byte(body)
	if b64 {
		if resp.Body, err = base64.StdEncoding.DecodeString(body); err != nil {
			return Response{}, fmt.Errorf("body: %w", err)
		}
	}
	if len(resp.Body) > 0 && resp.Header.Get("Content-Type") == "" {
		resp.Header.Set("Content-Type", defaultContentType)
	}
	return resp, nil
}

// statusCode reads a status code: an integer from 100 to 599, as a JSON number or a string
// holding one (API Gateway takes "201" as well as 201).
func statusCode(raw json.RawMessage) (int, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil && n != "" {
		if f, err := strconv.ParseFloat(string(n), 64); err == nil && f == math.Trunc(f) && f >= 100 && f <= 599 {
			return int(f), nil
		}
	}
	return 0, fmt.Errorf("statusCode %s: want an integer from 100 to 599", truncate(raw))
}

// stringMap reads a JSON object whose values are strings; numbers and booleans are taken as
// their text, null values are left out.
func stringMap(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("want an object")
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, ok, err := scalarText(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		if ok {
			out[k] = s
		}
	}
	return out, nil
}

func stringList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, errors.New("want a list of strings")
	}
	return l, nil
}

func scalarText(v json.RawMessage) (string, bool, error) {
	switch {
	case isNull(v):
		return "", false, nil
	case v[0] == '"':
		var s string
		err := json.Unmarshal(v, &s)
		return s, err == nil, err
	case v[0] == '{' || v[0] == '[':
		return "", false, errors.New("want a string")
	default: // a number or a boolean
		return string(v), true, nil
	}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// addHeader adds a header unless its name is not a valid HTTP field name, which no client could
// receive.
func addHeader(h http.Header, name, value string) {
	if !validFieldName(name) {
		return
	}
	h.Add(name, strings.NewReplacer("\r", " ", "\n", " ").Replace(value))
}

func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func hasName[V any](m map[string]V, name string) bool {
	for k := range m {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func truncate(raw json.RawMessage) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "..."
	}
	return string(raw)
}

// Write sends the response (as JSON when it has a body and no Content-Type).
func (resp Response) Write(w http.ResponseWriter) {
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	if resp.Header.Get("Content-Type") == "" && len(resp.Body) > 0 {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
}
