package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// Target finds what a data-plane request is for: the id its host names (idOf says which, if
// any) or, for clients that cannot set a host, the id after pathPrefix in its path. path is the
// rest of the path, still percent-encoded.
func Target(r *http.Request, idOf func(host string) (string, bool), pathPrefix string) (id, path string, ok bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if id, ok := idOf(strings.ToLower(host)); ok && id != "" {
		return id, r.URL.EscapedPath(), true
	}
	if rest, found := strings.CutPrefix(r.URL.EscapedPath(), pathPrefix); found {
		id, p, _ := strings.Cut(rest, "/")
		return id, "/" + p, id != ""
	}
	return "", "", false
}
