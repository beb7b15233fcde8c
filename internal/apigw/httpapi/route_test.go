package httpapi

import (
	"maps"
	"strings"
	"testing"
)

func TestValidRouteKey(t *testing.T) {
	valid := []string{
		"$default", "GET /", "ANY /{proxy+}", "POST /pets/{id}/toys/{toy}", "DELETE /files/{path+}",
		"OPTIONS /a.b-c_d", "HEAD /v1/{id}/x", "PATCH /{a}", "PUT /x/y/z",
	}
	for _, k := range valid {
		if err := ValidRouteKey(k); err != nil {
			t.Errorf("ValidRouteKey(%q) = %v, want nil", k, err)
		}
	}
	invalid := []string{
		"", "$DEFAULT", "default", "get /pets", "FETCH /pets", "GET", "GET pets", "GET /pets/",
		"GET //pets", "GET /pets//toys", "GET /a/{proxy+}/b", "GET /{}", "GET /{+}", "GET /a{b}",
		"GET /{a}b", "GET /{a}/{a}", "GET  /pets", "GET /pets?x=1", "GET /pets#x", "GET /a b",
		"GET /{a b}", "GET /{a}}", "GET /pets\t", "ANY",
	}
	for _, k := range invalid {
		if err := ValidRouteKey(k); err == nil {
			t.Errorf("ValidRouteKey(%q) = nil, want an error", k)
		}
	}
}

func TestNewRouterRefuses(t *testing.T) {
	for _, keys := range [][]string{
		{"GET /pets", "GET /pets"},
		{"$default", "$default"},
		{"GET /pets/{id}", "GET /pets/{name}"},
		{"ANY /{proxy+}", "ANY /{path+}"},
		{"GET /pets", "bad key"},
	} {
		if _, err := NewRouter(keys); err == nil {
			t.Errorf("NewRouter(%q) = nil error, want one", keys)
		}
	}
	// The same shape under another method is a different route.
	if _, err := NewRouter([]string{"GET /pets/{id}", "POST /pets/{name}", "ANY /pets/{x}"}); err != nil {
		t.Errorf("NewRouter: %v", err)
	}
}

// TestMatch covers every precedence rule of "Routing API requests" in "Create routes for HTTP
// APIs in API Gateway", starting with the documentation's own example.
func TestMatch(t *testing.T) {
	awsExample := []string{"GET /pets/dog/{id}", "GET /pets/{proxy+}", "ANY /{proxy+}", "$default"}
	type params = map[string]string
	cases := []struct {
		name         string
		routes       []string
		method, path string
		want         string // "" for no match
		params       params
	}{
		// The documentation's example table.
		{"doc full match", awsExample, "GET", "/pets/dog/1", "GET /pets/dog/{id}", params{"id": "1"}},
		{"doc greedy with method", awsExample, "GET", "/pets/cat/1", "GET /pets/{proxy+}", params{"proxy": "cat/1"}},
		{"doc ANY greedy", awsExample, "POST", "/test/5", "ANY /{proxy+}", params{"proxy": "test/5"}},
		// A route of another method does not match: the next best route that does is chosen.
		{"doc method mismatch", awsExample, "POST", "/pets/dog/1", "ANY /{proxy+}", params{"proxy": "pets/dog/1"}},
		{"doc root to $default", awsExample, "GET", "/", "$default", nil},

		// Literal segments over variables, variables over greedy variables.
		{"literal over param", []string{"GET /pets/{id}", "GET /pets/mine"}, "GET", "/pets/mine", "GET /pets/mine", nil},
		{"param when literal differs", []string{"GET /pets/{id}", "GET /pets/mine"}, "GET", "/pets/7", "GET /pets/{id}", params{"id": "7"}},
		{"param over greedy", []string{"GET /pets/{proxy+}", "GET /pets/{id}"}, "GET", "/pets/7", "GET /pets/{id}", params{"id": "7"}},
		{"greedy for deeper paths", []string{"GET /pets/{proxy+}", "GET /pets/{id}"}, "GET", "/pets/7/toys", "GET /pets/{proxy+}", params{"proxy": "7/toys"}},
		{"full match over greedy with more literals", []string{"GET /{a}/{b}/{c}", "GET /x/y/{proxy+}"}, "GET", "/x/y/z", "GET /{a}/{b}/{c}", params{"a": "x", "b": "y", "c": "z"}},
		{"leftmost difference decides", []string{"GET /{a}/b", "GET /a/{b}"}, "GET", "/a/b", "GET /a/{b}", params{"b": "b"}},
		{"more specific greedy", []string{"ANY /{proxy+}", "GET /api/{proxy+}"}, "GET", "/api/v1/x", "GET /api/{proxy+}", params{"proxy": "v1/x"}},
		{"greedy after variable over greedy", []string{"GET /a/{proxy+}", "GET /a/{id}/{rest+}"}, "GET", "/a/1/2", "GET /a/{id}/{rest+}", params{"id": "1", "rest": "2"}},

		// The request's method over ANY; the path first.
		{"method over ANY", []string{"ANY /pets", "GET /pets"}, "GET", "/pets", "GET /pets", nil},
		{"ANY for other methods", []string{"ANY /pets", "GET /pets"}, "POST", "/pets", "ANY /pets", nil},
		{"ANY matches any method", []string{"ANY /pets"}, "PROPFIND", "/pets", "ANY /pets", nil},
		{"path before method", []string{"ANY /pets/mine", "GET /pets/{id}"}, "GET", "/pets/mine", "ANY /pets/mine", nil},
		{"ANY full match over method greedy", []string{"ANY /pets/{id}", "GET /{proxy+}"}, "GET", "/pets/1", "ANY /pets/{id}", params{"id": "1"}},
		{"method greedy over ANY greedy", []string{"ANY /pets/{proxy+}", "GET /pets/{proxy+}"}, "GET", "/pets/1", "GET /pets/{proxy+}", params{"proxy": "1"}},
		{"HEAD is not GET", []string{"GET /pets"}, "HEAD", "/pets", "", nil},
		{"methods are case-sensitive", []string{"GET /pets"}, "get", "/pets", "", nil},

		// $default and no match.
		{"$default fallback", []string{"GET /pets", "$default"}, "GET", "/cats", "$default", nil},
		{"$default for another method", []string{"GET /pets", "$default"}, "DELETE", "/pets", "$default", nil},
		{"only $default", []string{"$default"}, "GET", "/anything/at/all", "$default", nil},
		{"no match", []string{"GET /pets"}, "GET", "/cats", "", nil},
		{"no routes", nil, "GET", "/", "", nil},
		{"path case matters", []string{"GET /Pets"}, "GET", "/pets", "", nil},

		// Trailing slashes and empty segments are significant.
		{"trailing slash", []string{"GET /pets", "$default"}, "GET", "/pets/", "$default", nil},
		{"trailing slash no variable", []string{"GET /pets/{id}"}, "GET", "/pets/", "", nil},
		{"trailing slash no greedy", []string{"GET /pets/{proxy+}"}, "GET", "/pets/", "", nil},
		{"greedy keeps trailing slash", []string{"GET /pets/{proxy+}"}, "GET", "/pets/a/", "GET /pets/{proxy+}", params{"proxy": "a/"}},
		{"trailing slash on variable", []string{"GET /pets/{id}"}, "GET", "/pets/7/", "", nil},
		{"empty segment", []string{"GET /a/{id}/c"}, "GET", "/a//c", "", nil},
		{"greedy needs a segment", []string{"GET /pets/{proxy+}"}, "GET", "/pets", "", nil},

		// The root path.
		{"root route", []string{"GET /", "ANY /{proxy+}"}, "GET", "/", "GET /", nil},
		{"root and greedy", []string{"GET /", "ANY /{proxy+}"}, "GET", "/x", "ANY /{proxy+}", params{"proxy": "x"}},
		{"greedy does not match root", []string{"ANY /{proxy+}"}, "GET", "/", "", nil},
		{"empty path is root", []string{"GET /"}, "GET", "", "GET /", nil},
		{"relative path", []string{"GET /", "$default"}, "GET", "pets", "$default", nil},

		// Paths are percent-decoded before routing, except %25.
		{"decoded variable", []string{"GET /pets/{id}"}, "GET", "/pets/a%20b", "GET /pets/{id}", params{"id": "a b"}},
		{"encoded slash splits", []string{"GET /pets/{id}/{x}"}, "GET", "/pets/a%2Fb", "GET /pets/{id}/{x}", params{"id": "a", "x": "b"}},
		{"encoded percent", []string{"GET /pets/{id}"}, "GET", "/pets/100%25", "GET /pets/{id}", params{"id": "100%"}},
		{"encoded literal", []string{"GET /caf\u00e9"}, "GET", "/caf%C3%A9", "GET /caf\u00e9", nil},
		{"malformed escape", []string{"GET /pets/{id}"}, "GET", "/pets/%zz", "GET /pets/{id}", params{"id": "%zz"}},
		{"custom greedy name", []string{"GET /files/{path+}"}, "GET", "/files/a/b.txt", "GET /files/{path+}", params{"path": "a/b.txt"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := NewRouter(c.routes)
			if err != nil {
				t.Fatal(err)
			}
			// The order routes are given in must not matter.
			reversed := make([]string, len(c.routes))
			for i, k := range c.routes {
				reversed[len(c.routes)-1-i] = k
			}
			r2, err := NewRouter(reversed)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range []*Router{r, r2} {
				key, params, ok := r.Match(c.method, c.path)
				if ok != (c.want != "") || key != c.want {
					t.Fatalf("Match(%q, %q) = %q, %v; want %q", c.method, c.path, key, ok, c.want)
				}
				if !maps.Equal(params, c.params) || (params == nil) != (c.params == nil) {
					t.Fatalf("Match(%q, %q) params = %v, want %v", c.method, c.path, params, c.params)
				}
			}
		})
	}
}

func TestDecodePath(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b":        "/a/b",
		"/a%20b":      "/a b",
		"/a%2Fb":      "/a/b",
		"/a%2fb":      "/a/b",
		"/100%25":     "/100%25",
		"/a%252Eb":    "/a%252Eb",
		"/%zz/%4":     "/%zz/%4",
		"/%":          "/%",
		"/caf%C3%A9":  "/caf\u00e9",
		"/%E2%82%AC%": "/\u20ac%",
	} {
		if got := decodePath(in); got != want {
			t.Errorf("decodePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("GET /pets/dog/{id}\nGET /pets/{proxy+}\nANY /{proxy+}\n$default", "GET", "/pets/dog/1")
	f.Add("GET /\nGET /{a}/{b}", "GET", "/x/%2F")
	f.Add("ANY /{proxy+}", "POST", "")
	f.Add("GET /a/{b}", "GET", "/a/%25%")
	f.Fuzz(func(t *testing.T, keys, method, path string) {
		r, err := NewRouter(strings.Split(keys, "\n"))
		if err != nil {
			return
		}
		key, params, ok := r.Match(method, path)
		if !ok {
			if key != "" || params != nil {
				t.Fatalf("no match, yet key %q params %v", key, params)
			}
			return
		}
		if !strings.Contains("\n"+keys+"\n", "\n"+key+"\n") {
			t.Fatalf("matched %q, which is not one of the routes", key)
		}
		if m, _, _ := strings.Cut(key, " "); key != DefaultRouteKey && m != "ANY" && m != method {
			t.Fatalf("route %q matched method %q", key, method)
		}
		for name, v := range params {
			if v == "" || !strings.Contains(key, "{"+name) {
				t.Fatalf("route %q: bad parameter %q=%q", key, name, v)
			}
		}
	})
}
