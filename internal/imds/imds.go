// Package imds serves the EC2 instance metadata service (IMDS) that an instance reaches at
// http://169.254.169.254, as an http.Handler for one instance.
//
// It speaks both IMDSv1 (plain GETs) and IMDSv2 (a session token from PUT /latest/api/token, sent
// back in X-aws-ec2-metadata-token on every read), honours the instance's MetadataOptions
// (HttpEndpoint, HttpTokens, InstanceMetadataTags) and serves the meta-data, dynamic and user-data
// trees in AWS's wire format: listings one entry a line with sub-directories ending in "/" and no
// trailing newline, values as text/plain, the instance identity document as pretty-printed JSON,
// and AWS's XHTML error pages.
//
// The handler keeps no per-instance state: metadata and options are read through a Source on every
// request, so a change (a new security group, tags turned on, the endpoint disabled) shows at once,
// and session tokens are stateless (an expiry sealed with an HMAC bound to the instance id), so
// they survive a restart of nubis when the Secret does.
//
// A Handler is safe for concurrent use.
package imds

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metadata is what one instance sees. It is read on every request (through Source), so changes
// show at once.
type Metadata struct {
	AccountID, Region, AvailabilityZone         string
	InstanceID, InstanceType, ImageID, KernelID string // KernelID usually ""
	ReservationID                               string
	Architecture                                string // "x86_64" (the default when ""), "arm64", "i386"
	LocalIPv4, PublicIPv4                       string // PublicIPv4 "" means none (then public-ipv4/public-hostname are 404)
	LocalHostname, PublicHostname               string // e.g. ip-172-31-5-9.ec2.internal ; "" for none
	MAC                                         string // 0a:..:..
	// InterfaceID is the primary network interface (eni-...); "" derives a stable one from
	// InstanceID.
	InterfaceID                          string
	VPCID, SubnetID, VPCCIDR, SubnetCIDR string
	SecurityGroups                       []string // names
	SecurityGroupIDs                     []string
	KeyName                              string            // "" -> no public-keys
	PublicKey                            string            // the OpenSSH public key line of KeyName, served as given
	BlockDevices                         map[string]string // e.g. {"ami":"/dev/xvda","root":"/dev/xvda"}
	UserData                             []byte            // nil (or empty) -> user-data is 404
	LaunchTime                           time.Time         // for pendingTime in the identity document
	// Tags are served under meta-data/tags/instance/ only when Options.InstanceMetadataTags is
	// "enabled". Keys AWS would refuse there (see validTagKey) are left out.
	Tags map[string]string
	// ManagedSSHKeys are the keys EC2 Instance Connect has pushed for OS users and that are still
	// valid, served under meta-data/managed-ssh-keys/active-keys/<user>, one key a line.
	ManagedSSHKeys map[string][]string
}

// Options are the instance's MetadataOptions as in EC2's API.
type Options struct {
	HttpEndpoint string // "enabled" (default when "") | "disabled"
	HttpTokens   string // "optional" (default when "") | "required"
	// HttpPutResponseHopLimit is recorded only. AWS enforces it by setting the IP TTL of the
	// token response; an http.Handler cannot reach the socket, and nubis serves IMDS inside the
	// instance's own network namespace, where there are no extra hops to limit.
	HttpPutResponseHopLimit int
	InstanceMetadataTags    string // "disabled" (default) | "enabled"
}

// Source returns the current metadata and options of the instance this handler serves.
// An error gives 500 (logged).
type Source func(ctx context.Context) (Metadata, Options, error)

// Config configures NewHandler.
type Config struct {
	Source Source
	// Secret keys the HMAC of tokens (random 32 bytes when nil). Tokens are stateless:
	// base64url of an expiry and a MAC over it and the instance id, so a token of one
	// instance is refused by another instance's handler even with the same secret.
	Secret []byte
	Now    func() time.Time // time.Now when nil
	Log    *slog.Logger     // discarded when nil
}

// The request and response headers of IMDSv2.
const (
	HeaderToken    = "X-aws-ec2-metadata-token"
	HeaderTokenTTL = "X-aws-ec2-metadata-token-ttl-seconds"
)

// TokenPath is where IMDSv2 session tokens are issued (PUT only). AWS serves it under "latest"
// only.
const TokenPath = "/latest/api/token"

// MaxTokenTTL is the longest session token AWS issues: six hours, in seconds.
const MaxTokenTTL = 21600

// handler is the http.Handler NewHandler returns.
type handler struct {
	source Source
	secret []byte
	now    func() time.Time
	log    *slog.Logger
}

// NewHandler returns the metadata service of the instance cfg.Source describes.
func NewHandler(cfg Config) http.Handler {
	h := &handler{source: cfg.Source, secret: cfg.Secret, now: cfg.Now, log: cfg.Log}
	if h.secret == nil {
		h.secret = make([]byte, 32)
		rand.Read(h.secret) // never fails (crypto/rand crashes the program instead)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// ServeHTTP answers one metadata request. The order of the checks: the source (500), the
// endpoint switch (403 for everything, the token path included, as AWS does when HttpEndpoint
// is disabled), then the token path, then the method (405), the token (401) and the tree (404).
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Server", "EC2ws") // AWS's IMDS names itself so; some clients check it
	hdr.Set("Cache-Control", "no-store")

	if h.source == nil {
		h.log.ErrorContext(r.Context(), "imds: no source configured")
		writeError(w, http.StatusInternalServerError)
		return
	}
	md, opts, err := h.source(r.Context())
	if err != nil {
		h.log.ErrorContext(r.Context(), "imds: reading instance metadata",
			"err", fmt.Errorf("imds: source: %w", err))
		writeError(w, http.StatusInternalServerError)
		return
	}
	if !endpointEnabled(opts) {
		h.log.DebugContext(r.Context(), "imds: endpoint disabled", "instance", md.InstanceID)
		writeError(w, http.StatusForbidden)
		return
	}

	path := ""
	if r.URL != nil {
		path = r.URL.Path
	}
	if path == TokenPath {
		h.serveToken(w, r, md)
		return
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		writeEmpty(w, http.StatusMethodNotAllowed)
		return
	}
	if vals, present := r.Header[http.CanonicalHeaderKey(HeaderToken)]; present {
		// A token header that is there but wrong is refused even when tokens are optional:
		// AWS does the same, so a broken IMDSv2 client does not silently fall back to v1.
		remaining, err := h.verifyToken(strings.Join(vals, ","), md.InstanceID)
		if err != nil {
			h.log.DebugContext(r.Context(), "imds: token refused", "instance", md.InstanceID, "err", err)
			writeError(w, http.StatusUnauthorized)
			return
		}
		hdr.Set(HeaderTokenTTL, strconv.FormatInt(remaining, 10))
	} else if tokensRequired(opts) {
		writeError(w, http.StatusUnauthorized)
		return
	}

	n := lookup(buildTree(md, opts), path)
	if n == nil {
		writeError(w, http.StatusNotFound)
		return
	}
	body, ctype := n.render()
	hdr.Set("Content-Type", ctype)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// serveToken issues an IMDSv2 session token: PUT only (AWS answers 405 with an empty body
// otherwise), no X-Forwarded-For (403: the request came through a proxy), and a TTL header of
// 1..21600 seconds (400 when missing or outside).
func (h *handler) serveToken(w http.ResponseWriter, r *http.Request, md Metadata) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", "PUT")
		writeEmpty(w, http.StatusMethodNotAllowed)
		return
	}
	if _, proxied := r.Header[http.CanonicalHeaderKey("X-Forwarded-For")]; proxied {
		h.log.DebugContext(r.Context(), "imds: token request through a proxy refused", "instance", md.InstanceID)
		writeError(w, http.StatusForbidden)
		return
	}
	ttl, err := parseTTL(r.Header.Values(HeaderTokenTTL))
	if err != nil {
		h.log.DebugContext(r.Context(), "imds: bad token request", "instance", md.InstanceID, "err", err)
		writeError(w, http.StatusBadRequest)
		return
	}
	tok := h.issueToken(md.InstanceID, ttl)
	hdr := w.Header()
	hdr.Set(HeaderTokenTTL, strconv.Itoa(ttl))
	hdr.Set("Content-Type", "text/plain")
	hdr.Set("Content-Length", strconv.Itoa(len(tok)))
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(tok))
}

// endpointEnabled reads HttpEndpoint; a value other than "", "enabled" or "disabled" fails closed.
func endpointEnabled(o Options) bool {
	return o.HttpEndpoint == "" || o.HttpEndpoint == "enabled"
}

// tokensRequired reads HttpTokens; a value other than "", "optional" or "required" fails closed.
func tokensRequired(o Options) bool {
	return o.HttpTokens != "" && o.HttpTokens != "optional"
}

// tagsEnabled reads InstanceMetadataTags; only "enabled" turns tags on.
func tagsEnabled(o Options) bool {
	return o.InstanceMetadataTags == "enabled"
}

// writeEmpty answers with a status and no body, as AWS's 405 does.
func writeEmpty(w http.ResponseWriter, code int) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(code)
}

// writeError answers with AWS's XHTML error page for code.
func writeError(w http.ResponseWriter, code int) {
	body := errorPage(code)
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}

// errorPage is the body AWS's IMDS sends with an error status, e.g. for 404:
// an XHTML 1.0 page titled and headed "404 - Not Found".
func errorPage(code int) []byte {
	title := strconv.Itoa(code) + " - " + http.StatusText(code)
	return []byte(`<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
         "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>` + title + `</title>
 </head>
 <body>
  <h1>` + title + `</h1>
 </body>
</html>`)
}
