package server

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/nubis/nubis/internal/apigw/execute"
	"github.com/nubis/nubis/internal/awsproto"
	"github.com/nubis/nubis/internal/lambdaurl"
	"github.com/nubis/nubis/internal/sigv4"
	"github.com/nubis/nubis/internal/version"
)

// maxBodyBytes bounds a request body; Lambda's largest (a 50 MB zip, base64 in JSON) fits.
const maxBodyBytes = 80 << 20

// HealthPath is the one path served without authentication.
const HealthPath = "/_nubis/health"

// ServeHTTP routes a request: the health endpoint, or an AWS API call, which is authenticated with
// SigV4 and handed to the service its credential scope names.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	// A function URL's host first: every path of it is the function's.
	if _, _, ok := lambdaurl.Target(hr, s.cfg.Region); ok {
		s.lambdaURLs.ServeHTTP(w, hr)
		return
	}
	if hr.URL.Path == HealthPath {
		s.health(w, hr)
		return
	}
	if _, _, ok := execute.Target(hr); ok {
		s.execute.ServeHTTP(w, hr)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	r := &awsproto.Request{ID: awsproto.NewRequestID(), HTTP: hr, Region: s.cfg.Region}
	rec.Header().Set(awsproto.RequestIDHeader, r.ID)
	var svc string
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic serving a request", "request_id", r.ID, "service", svc, "operation", r.Operation,
				"panic", v, "stack", string(debug.Stack()))
			if !rec.wrote {
				writeGenericError(rec, r, http.StatusInternalServerError, "InternalError",
					"We encountered an internal error. Please try again.")
			}
		}
	}()
	svc = s.serve(rec, r)
	s.log.LogAttrs(hr.Context(), slog.LevelDebug, "request",
		slog.String("request_id", r.ID), slog.String("service", svc), slog.String("operation", r.Operation),
		slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
}

// serve answers an API request and returns the name of the service that did.
func (s *Server) serve(w http.ResponseWriter, r *awsproto.Request) string {
	hr := r.HTTP
	body, err := io.ReadAll(http.MaxBytesReader(w, hr.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeGenericError(w, r, http.StatusRequestEntityTooLarge, "RequestEntityTooLargeException",
				fmt.Sprintf("Request must be smaller than %d bytes.", maxBodyBytes))
		} else {
			writeGenericError(w, r, http.StatusBadRequest, "MalformedHttpRequestException", "The request body could not be read.")
		}
		return ""
	}
	r.Body = body
	scope, scopeErr := sigv4.ParseScope(hr)
	var svc awsproto.Service
	if scopeErr == nil {
		svc = s.services[scope.Service]
		if svc == nil {
			names := make([]string, 0, len(s.services))
			for n := range s.services {
				names = append(names, n)
			}
			slices.Sort(names)
			writeGenericError(w, r, http.StatusBadRequest, "UnknownService",
				fmt.Sprintf("nubis does not serve the service %q named in the request's credential scope; it serves %s.",
					scope.Service, strings.Join(names, ", ")))
			return scope.Service
		}
	} else {
		// Unsigned or unparseable: answer in the protocol of the service the request looks meant for.
		for _, c := range s.services {
			if c.Claims(hr, body) {
				svc = c
				break
			}
		}
		if svc == nil {
			e, _ := awsproto.ToError(scopeErr, awsproto.FlavorQuery)
			writeGenericError(w, r, e.Status, e.Code, e.Message)
			return ""
		}
	}
	res, err := s.verifier.Verify(hr.Context(), hr, body)
	if err != nil {
		svc.WriteError(w, r, err)
		return svc.SigningName()
	}
	key, err := s.ident.Lookup(hr.Context(), res.Scope.AccessKeyID)
	if err != nil {
		svc.WriteError(w, r, err)
		return svc.SigningName()
	}
	r.Caller = awsproto.Caller{AccountID: s.ident.Account().ID, AccessKeyID: key.ID, ARN: key.ARN, UserID: key.UserID}
	svc.ServeAWS(w, r)
	return svc.SigningName()
}

// writeGenericError answers a request that no service owns. Clients of every protocol find the code:
// XML parsers in the <Error> element, JSON clients in the X-Amzn-Errortype header.
func writeGenericError(w http.ResponseWriter, r *awsproto.Request, status int, code, msg string) {
	type errXML struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	b, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Error     errXML   `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{Error: errXML{code, msg}, RequestID: r.ID})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	w.Write(append([]byte(xml.Header), b...))
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": version.Version})
}

// statusRecorder remembers the status a handler wrote, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status, r.wrote = code, true
	r.ResponseWriter.WriteHeader(code)
}
