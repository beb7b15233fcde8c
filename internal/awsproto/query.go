package awsproto

import (
	"bytes"
	"context"
	"encoding/xml"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
)

// QueryHandler runs one Query-protocol operation. It decodes p (usually with p.Decode) and returns
// the result, an XML-marshalable struct whose fields become the children of the response element,
// or an error.
type QueryHandler func(ctx context.Context, r *Request, p Params) (any, error)

// QueryService serves a service that speaks the Query protocol: EC2's dialect or awsQuery.
type QueryService struct {
	// Name is the SigV4 signing name ("ec2", "sts").
	Name string
	// Version is the API version clients send ("2016-11-15").
	Version string
	// Namespace is the XML namespace of responses.
	Namespace string
	// Flavor is FlavorEC2 or FlavorQuery.
	Flavor Flavor
	// Actions maps an Action to its handler.
	Actions map[string]QueryHandler
	// Log receives internal errors.
	Log *slog.Logger
}

var _ Service = (*QueryService)(nil)

// SigningName implements Service.
func (s *QueryService) SigningName() string { return s.Name }

// Claims implements Service: a form or query string with this service's API version.
func (s *QueryService) Claims(r *http.Request, body []byte) bool {
	p, err := ParseParams(formBody(r, body), r.URL.RawQuery)
	return err == nil && p.Action != "" && p.Version == s.Version
}

// formBody returns body if the request is form-encoded.
func formBody(r *http.Request, body []byte) []byte {
	if r.Method != http.MethodPost {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil
	}
	return body
}

// ServeAWS implements Service.
func (s *QueryService) ServeAWS(w http.ResponseWriter, r *Request) {
	p, err := ParseParams(formBody(r.HTTP, r.Body), r.HTTP.URL.RawQuery)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	p.memberStyle = s.Flavor == FlavorQuery
	r.Operation = p.Action
	if p.Action == "" {
		s.WriteError(w, r, Errorf(400, "MissingAction", "The request must contain the parameter Action."))
		return
	}
	h, ok := s.Actions[p.Action]
	if !ok {
		msg := "The action " + p.Action + " is not valid for this web service."
		if s.Flavor == FlavorQuery {
			msg = "Could not find operation " + p.Action + " for version " + s.Version
		}
		s.WriteError(w, r, &Error{Status: 400, Code: "InvalidAction", Message: msg})
		return
	}
	out, err := h(r.Context(), r, p)
	if err != nil {
		s.WriteError(w, r, err)
		return
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := s.encodeResult(&buf, r, p.Action, out); err != nil {
		s.WriteError(w, r, err)
		return
	}
	writeXML(w, http.StatusOK, buf.Bytes())
}

// encodeResult writes the success response. EC2:
//
//	<ActionResponse xmlns="..."><requestId>id</requestId>...result fields...</ActionResponse>
//
// awsQuery:
//
//	<ActionResponse xmlns="..."><ActionResult>...</ActionResult><ResponseMetadata><RequestId>id</RequestId></ResponseMetadata></ActionResponse>
func (s *QueryService) encodeResult(buf *bytes.Buffer, r *Request, action string, out any) error {
	enc := xml.NewEncoder(buf)
	start := xml.StartElement{Name: xml.Name{Local: action + "Response"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: s.Namespace}}}
	if err := enc.EncodeToken(start); err != nil {
		return err
	}
	if s.Flavor == FlavorEC2 {
		if err := enc.EncodeElement(r.ID, xml.StartElement{Name: xml.Name{Local: "requestId"}}); err != nil {
			return err
		}
		if out != nil {
			// The result's fields go directly under the response element: encode the result under
			// a placeholder element and keep only its inside.
			var inner bytes.Buffer
			ienc := xml.NewEncoder(&inner)
			if err := ienc.EncodeElement(out, xml.StartElement{Name: xml.Name{Local: "x"}}); err != nil {
				return err
			}
			if err := ienc.Flush(); err != nil {
				return err
			}
			b := inner.Bytes()
			if bytes.HasPrefix(b, []byte("<x>")) && bytes.HasSuffix(b, []byte("</x>")) {
				if err := enc.Flush(); err != nil {
					return err
				}
				buf.Write(b[3 : len(b)-4])
			}
		}
	} else {
		if out != nil {
			if err := enc.EncodeElement(out, xml.StartElement{Name: xml.Name{Local: action + "Result"}}); err != nil {
				return err
			}
		}
		meta := struct {
			RequestID string `xml:"RequestId"`
		}{r.ID}
		if err := enc.EncodeElement(meta, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}}); err != nil {
			return err
		}
	}
	if err := enc.EncodeToken(start.End()); err != nil {
		return err
	}
	return enc.Flush()
}

// WriteError implements Service. EC2:
//
//	<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
//
// awsQuery:
//
//	<ErrorResponse xmlns="..."><Error><Type>Sender</Type><Code/><Message/></Error><RequestId/></ErrorResponse>
func (s *QueryService) WriteError(w http.ResponseWriter, r *Request, err error) {
	e, known := ToError(err, s.Flavor)
	if !known && s.Log != nil {
		s.Log.Error("internal error", "request_id", r.ID, "operation", r.Operation, "err", err)
	}
	var body any
	if s.Flavor == FlavorEC2 {
		type errXML struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		body = struct {
			XMLName   xml.Name `xml:"Response"`
			Errors    []errXML `xml:"Errors>Error"`
			RequestID string   `xml:"RequestID"`
		}{Errors: []errXML{{e.Code, e.Message}}, RequestID: r.ID}
	} else {
		typ := "Sender"
		if !e.Sender() {
			typ = "Receiver"
		}
		body = struct {
			XMLName xml.Name `xml:"ErrorResponse"`
			Xmlns   string   `xml:"xmlns,attr"`
			Error   struct {
				Type    string `xml:"Type"`
				Code    string `xml:"Code"`
				Message string `xml:"Message"`
			} `xml:"Error"`
			RequestID string `xml:"RequestId"`
		}{Xmlns: s.Namespace, Error: struct {
			Type    string `xml:"Type"`
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}{typ, e.Code, e.Message}, RequestID: r.ID}
	}
	b, merr := xml.Marshal(body)
	if merr != nil {
		http.Error(w, merr.Error(), http.StatusInternalServerError)
		return
	}
	writeXML(w, e.Status, append([]byte(xml.Header), b...))
}

func writeXML(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// List is an XML list as EC2 renders it: the wrapper element is always present (empty for an empty
// list) and each member is an <item>.
type List[T any] []T

// MarshalXML implements xml.Marshaler.
func (l List[T]) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	item := xml.StartElement{Name: xml.Name{Local: "item"}}
	for _, v := range l {
		if err := e.EncodeElement(v, item); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}
