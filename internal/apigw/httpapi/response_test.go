package httpapi

import (
	"net/http"
	"reflect"
	"testing"
)

func TestMapResponse(t *testing.T) {
	type hdr = http.Header
	jsonType := hdr{"Content-Type": {"application/json"}}
	textType := hdr{"Content-Type": {"text/plain; charset=utf-8"}}
	cases := []struct {
		name    string
		version string
		payload string
		status  int
		header  http.Header
		body    string
	}{
		// Format 2.0 infers a response from valid JSON without a statusCode: the two examples of
		// "Lambda function response for format 2.0", and more of the same.
		{"2.0 string", Version2, `"Hello from Lambda!"`, 200, jsonType, "Hello from Lambda!"},
		{"2.0 object", Version2, `{ "message": "Hello from Lambda!" }`, 200, jsonType, `{ "message": "Hello from Lambda!" }`},
		{"2.0 array", Version2, `[1, {"a": 2}]`, 200, jsonType, `[1, {"a": 2}]`},
		{"2.0 number", Version2, `42`, 200, jsonType, `42`},
		{"2.0 boolean", Version2, `true`, 200, jsonType, `true`},
		{"2.0 null", Version2, `null`, 200, jsonType, `null`},
		{"2.0 escaped string", Version2, `"line\nbreak \u00e9"`, 200, jsonType, "line\nbreak \u00e9"},
		{"2.0 surrounding space", Version2, " \n{\"a\":1}\n", 200, jsonType, `{"a":1}`},
		{"2.0 response fields without statusCode", Version2, `{"body":"x","headers":{"a":"b"}}`, 200, jsonType, `{"body":"x","headers":{"a":"b"}}`},

		// Format 2.0 with a statusCode: the custom response format.
		{"2.0 custom", Version2, `{"statusCode": 201, "headers": {"Content-Type": "text/html", "X-Id": "7"}, "body": "<p>hi</p>"}`,
			201, hdr{"Content-Type": {"text/html"}, "X-Id": {"7"}}, "<p>hi</p>"},
		{"2.0 cookies", Version2, `{"statusCode": 200, "cookies": ["a=1; Path=/", "b=2"], "headers": {"set-cookie": "c=3"}}`,
			200, hdr{"Set-Cookie": {"a=1; Path=/", "b=2", "c=3"}}, ""},
		{"2.0 base64", Version2, `{"statusCode": 200, "isBase64Encoded": true, "headers": {"content-type": "image/gif"}, "body": "R0lGODlh"}`,
			200, hdr{"Content-Type": {"image/gif"}}, "GIF89a"},
		{"2.0 default content type", Version2, `{"statusCode": 200, "body": "plain"}`, 200, textType, "plain"},
		// The walkthrough's handler returns {"statusCode": 200, "body": mean(...)}: a number.
		{"2.0 number body", Version2, `{"statusCode": 200, "body": 2.0}`, 200, textType, "2.0"},
		{"2.0 no body", Version2, `{"statusCode": 204}`, 204, hdr{}, ""},
		{"2.0 null fields", Version2, `{"statusCode": 200, "headers": null, "cookies": null, "body": null, "isBase64Encoded": null}`, 200, hdr{}, ""},
		{"2.0 string statusCode", Version2, `{"statusCode": "404", "body": "gone"}`, 404, textType, "gone"},
		{"2.0 integral float statusCode", Version2, `{"statusCode": 302.0, "headers": {"Location": "/x"}}`, 302, hdr{"Location": {"/x"}}, ""},
		{"2.0 multiValueHeaders ignored", Version2, `{"statusCode": 200, "multiValueHeaders": {"X-A": ["1", "2"]}}`, 200, hdr{}, ""},
		{"2.0 scalar header values", Version2, `{"statusCode": 200, "headers": {"X-N": 5, "X-B": true, "X-Null": null}}`,
			200, hdr{"X-N": {"5"}, "X-B": {"true"}}, ""},
		{"2.0 invalid header name dropped", Version2, `{"statusCode": 200, "headers": {"Bad Name": "x", "": "y", "Ok": "a\r\nb"}}`,
			200, hdr{"Ok": {"a  b"}}, ""},

		// Format 1.0: the REST-shaped response.
		{"1.0 basic", Version1, `{"isBase64Encoded": false, "statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{\"ok\":true}"}`,
			200, jsonType, `{"ok":true}`},
		{"1.0 merged headers", Version1, `{"statusCode": 200, "headers": {"A": "1", "B": "x"}, "multiValueHeaders": {"b": ["y", "z"], "C": ["1", "2"]}, "body": "ok"}`,
			200, hdr{"A": {"1"}, "B": {"y", "z"}, "C": {"1", "2"}, "Content-Type": {"text/plain; charset=utf-8"}}, "ok"},
		{"1.0 base64", Version1, `{"statusCode": 200, "isBase64Encoded": true, "body": "aGVsbG8="}`, 200, textType, "hello"},
		{"1.0 cookies ignored", Version1, `{"statusCode": 200, "cookies": ["a=1"]}`, 200, hdr{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := MapResponse(c.version, []byte(c.payload))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != c.status || string(resp.Body) != c.body || !reflect.DeepEqual(resp.Header, c.header) {
				t.Errorf("MapResponse(%s) = %d %v %q; want %d %v %q", c.payload, resp.Status, resp.Header, resp.Body,
					c.status, c.header, c.body)
			}
		})
	}
}

func TestMapResponseErrors(t *testing.T) {
	cases := []struct{ version, payload string }{
		{Version2, ``},
		{Version2, `Hello from Lambda!`},
		{Version2, `{"statusCode": 200`},
		{Version2, `{"a":1} {"b":2}`},
		{Version2, `{"statusCode": "abc"}`},
		{Version2, `{"statusCode": null}`},
		{Version2, `{"statusCode": 99}`},
		{Version2, `{"statusCode": 600}`},
		{Version2, `{"statusCode": 200.5}`},
		{Version2, `{"statusCode": true}`},
		{Version2, `{"statusCode": 200, "body": {"a": 1}}`},
		{Version2, `{"statusCode": 200, "body": {"mean": 5}}`},
		{Version2, `{"statusCode": 200, "isBase64Encoded": true, "body": "not base64!"}`},
		{Version2, `{"statusCode": 200, "isBase64Encoded": "yes"}`},
		{Version2, `{"statusCode": 200, "headers": ["a"]}`},
		{Version2, `{"statusCode": 200, "headers": {"a": {"b": 1}}}`},
		{Version2, `{"statusCode": 200, "cookies": "a=1"}`},
		{Version2, `{"statusCode": 200, "cookies": [1]}`},
		{Version1, `{"message": "Hello"}`},
		{Version1, `"Hello from Lambda!"`},
		{Version1, `42`},
		{Version1, `{"statusCode": 200, "multiValueHeaders": {"a": "b"}}`},
		{Version1, `not json`},
		{"3.0", `{"statusCode": 200}`},
		{"", `{"statusCode": 200}`},
	}
	for _, c := range cases {
		if resp, err := MapResponse(c.version, []byte(c.payload)); err == nil {
			t.Errorf("MapResponse(%q, %s) = %+v, want an error", c.version, c.payload, resp)
		}
	}
}

func TestMessage(t *testing.T) {
	r := Message(http.StatusNotFound, "Not Found")
	if r.Status != 404 || string(r.Body) != `{"message":"Not Found"}` || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Message = %+v %s", r, r.Body)
	}
}

func FuzzMapResponse(f *testing.F) {
	for _, p := range []string{
		`"Hello from Lambda!"`, `{ "message": "Hello from Lambda!" }`, `null`,
		`{"statusCode": 200, "headers": {"a": "b"}, "cookies": ["c=d"], "body": "x"}`,
		`{"statusCode": "201", "isBase64Encoded": true, "body": "aGk="}`,
		`{"statusCode": 200, "multiValueHeaders": {"a": ["b", "c"]}, "headers": {"A": 1}}`,
		`{"statusCode": 1e2}`, `{"statusCode": -0}`, `[`, "",
	} {
		f.Add(true, []byte(p))
		f.Add(false, []byte(p))
	}
	f.Fuzz(func(t *testing.T, v2 bool, payload []byte) {
		version := Version1
		if v2 {
			version = Version2
		}
		resp, err := MapResponse(version, payload)
		if err != nil {
			return
		}
		if resp.Status < 100 || resp.Status > 599 || resp.Header == nil {
			t.Fatalf("MapResponse(%s, %q) = %+v", version, payload, resp)
		}
		for name := range resp.Header {
			if !validFieldName(name) {
				t.Fatalf("invalid header name %q", name)
			}
		}
	})
}
