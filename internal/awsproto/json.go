package awsproto

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// writeJSONError renders an error for the JSON protocols: the code in the X-Amzn-Errortype header
// and in the body's __type, which every SDK reads; typeField adds Lambda's "Type": "User"|"Service".
func writeJSONError(w http.ResponseWriter, r *Request, f Flavor, err error, typeField bool, log *slog.Logger) {
	e, known := ToError(err, f)
	if !known && log != nil {
		log.Error("internal error", "request_id", r.ID, "operation", r.Operation, "err", err)
	}
	body := map[string]string{"message": e.Message}
	if f == FlavorJSON {
		body["__type"] = e.Code
	}
	if typeField {
		// Lambda's error shapes are {"Type": "User"|"Service", "Message": ...}.
		body = map[string]string{"Message": e.Message, "Type": "User"}
		if !e.Sender() {
			body["Type"] = "Service"
		}
	}
	for k, v := range e.Fields {
		body[k] = v
	}
	w.Header().Set("X-Amzn-Errortype", e.Code)
	writeJSON(w, f, e.Status, body)
}

func writeJSON(w http.ResponseWriter, f Flavor, status int, v any) {
	var b []byte
	if v != nil {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	}
	ct := "application/json"
	if f == FlavorJSON {
		ct = "application/x-amz-json-1.1"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// DecodeJSON decodes a JSON request body into v; an empty body leaves v as it is. Malformed JSON is
// a *ParamError, which the JSON protocols answer with a validation/serialization error.
func DecodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &ParamError{Name: "body", Reason: "the request body is not valid JSON: " + err.Error()}
	}
	return nil
}

// RawBody is a REST handler result that is sent as it is rather than encoded as JSON.
type RawBody struct {
	ContentType string
	Header      http.Header
	Body        []byte
}

// RESTHandler runs one REST-JSON operation and returns the HTTP status and the value to encode as
// the JSON response body (nil for none).
type RESTHandler func(ctx context.Context, r *Request) (status int, out any, err error)

// RESTJSONService serves a REST-JSON service: operations are routed by method and path pattern
// (net/http.ServeMux patterns, whose wildcards handlers read with r.HTTP.PathValue).
type RESTJSONService struct {
	name      string
	prefixes  []string
	typeField bool
	mux       *http.ServeMux
	log       *slog.Logger
}

// NewRESTJSONService returns a REST-JSON service with no operations. typeField adds the "Type"
// member Lambda's error bodies have. pathPrefixes are the paths the service's API lives under
// ("/2015-03-31/"), by which an unsigned request is recognised as meant for it.
func NewRESTJSONService(signingName string, typeField bool, log *slog.Logger, pathPrefixes ...string) *RESTJSONService {
	s := &RESTJSONService{name: signingName, prefixes: pathPrefixes, typeField: typeField, mux: http.NewServeMux(), log: log}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, hr *http.Request) {
		r := requestFrom(hr)
		s.WriteError(w, r, &Error{Status: 404, Code: "UnknownOperationException",
			Message: "Unknown operation " + hr.Method + " " + hr.URL.Path})
	})
	return s
}

// Handle registers the operation named op at pattern, such as "GET /2015-03-31/functions/{name}".
func (s *RESTJSONService) Handle(pattern, op string, h RESTHandler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, hr *http.Request) {
		r := requestFrom(hr)
		r.HTTP = hr
		r.Operation = op
		status, out, err := h(hr.Context(), r)
		if err != nil {
			s.WriteError(w, r, err)
			return
		}
		if raw, ok := out.(RawBody); ok {
			for k, vs := range raw.Header {
				w.Header()[k] = vs
			}
			w.Header().Set("Content-Type", raw.ContentType)
			w.Header().Set("Content-Length", strconv.Itoa(len(raw.Body)))
			w.WriteHeader(status)
			w.Write(raw.Body)
			return
		}
		writeJSON(w, FlavorRESTJSON, status, out)
	})
}

type requestKey struct{}

func requestFrom(hr *http.Request) *Request { return hr.Context().Value(requestKey{}).(*Request) }

// SigningName implements Service.
func (s *RESTJSONService) SigningName() string { return s.name }

// Claims implements Service: a request under one of the service's path prefixes, not carrying an
// X-Amz-Target (which JSON 1.1 services own).
func (s *RESTJSONService) Claims(r *http.Request, _ []byte) bool {
	if r.Header.Get("X-Amz-Target") != "" {
		return false
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(r.URL.Path, p) {
			return true
		}
	}
	return false
}

// ServeAWS implements Service.
func (s *RESTJSONService) ServeAWS(w http.ResponseWriter, r *Request) {
	hr := r.HTTP.WithContext(context.WithValue(r.HTTP.Context(), requestKey{}, r))
	r.HTTP = hr
	s.mux.ServeHTTP(w, hr)
}

// WriteError implements Service.
func (s *RESTJSONService) WriteError(w http.ResponseWriter, r *Request, err error) {
	writeJSONError(w, r, FlavorRESTJSON, err, s.typeField, s.log)
}

// JSONHandler runs one JSON 1.1 operation: it decodes r.Body (with DecodeJSON) and returns the value
// to encode as the response body.
type JSONHandler func(ctx context.Context, r *Request) (any, error)

// JSONService serves a JSON 1.1 service, whose operation is named by the X-Amz-Target header
// ("Logs_20140328.CreateLogGroup").
type JSONService struct {
	// Name is the SigV4 signing name ("logs").
	Name string
	// TargetPrefix is the part of X-Amz-Target before the dot ("Logs_20140328").
	TargetPrefix string
	// Actions maps an operation name to its handler.
	Actions map[string]JSONHandler
	// Log receives internal errors.
	Log *slog.Logger
}

var _ Service = (*JSONService)(nil)

// SigningName implements Service.
func (s *JSONService) SigningName() string { return s.Name }

// Claims implements Service: a request whose X-Amz-Target names this service.
func (s *JSONService) Claims(r *http.Request, _ []byte) bool {
	prefix, _, ok := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	return ok && prefix == s.TargetPrefix
}

// ServeAWS implements Service.
func (s *JSONService) ServeAWS(w http.ResponseWriter, r *Request) {
	target := r.HTTP.Header.Get("X-Amz-Target")
	prefix, op, ok := strings.Cut(target, ".")
	r.Operation = op
	if r.HTTP.Method != http.MethodPost || !ok || prefix != s.TargetPrefix {
		s.WriteError(w, r, &Error{Status: 400, Code: "UnknownOperationException",
			Message: "The X-Amz-Target header " + strconv.Quote(target) + " does not name an operation of this service."})
		return
	}
	h, ok := s.Actions[op]
	if !ok {
		s.WriteError(w, r, &Error{Status: 400, Code: "UnknownOperationException",
			Message: "Unknown operation " + op + "."})
		return
	}
	out, err := h(r.Context(), r)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	if out == nil {
		out = struct{}{}
	}
	writeJSON(w, FlavorJSON, http.StatusOK, out)
}

// WriteError implements Service.
func (s *JSONService) WriteError(w http.ResponseWriter, r *Request, err error) {
	writeJSONError(w, r, FlavorJSON, err, false, s.Log)
}
