// Package awsproto implements the AWS wire protocols that nubis speaks: Query (form-encoded in, XML
// out) in its EC2 and awsQuery flavours, REST-JSON, and JSON 1.1 (X-Amz-Target). It decodes requests,
// dispatches them to the operations a service registers, renders results, and maps every error to
// the AWS error shape, code and HTTP status of the protocol, once, at the edge.
//
// A service (ec2, sts, lambda, ...) builds one of QueryService, RESTJSONService or JSONService and
// hands it to the server as a Service.
package awsproto

import (
	"context"
	"net/http"

	"github.com/google/uuid"
)

// Service is the API of one AWS service as the server routes to it: by the service name of the
// SigV4 credential scope.
type Service interface {
	// SigningName is the service in the SigV4 credential scope ("ec2", "sts", "lambda", ...).
	SigningName() string
	// ServeAWS answers a request whose signature has been verified.
	ServeAWS(w http.ResponseWriter, r *Request)
	// WriteError writes err as this service's protocol renders errors.
	WriteError(w http.ResponseWriter, r *Request, err error)
	// Claims reports whether an unsigned (or unparseably signed) request looks like one for this
	// service, so that its authentication error can be rendered in the protocol the client expects.
	Claims(r *http.Request, body []byte) bool
}

// Caller is the authenticated principal of a request.
type Caller struct {
	AccountID   string
	AccessKeyID string
	// ARN is the principal's ARN, such as arn:aws:iam::123456789012:root.
	ARN string
	// UserID is the principal's unique id (the account id for the root user).
	UserID string
}

// Request is one API request as services see it.
type Request struct {
	// ID is the request id, returned to the client in every response.
	ID string
	// HTTP is the underlying request; its Body has been read into Body.
	HTTP *http.Request
	// Body is the complete request body.
	Body []byte
	// Caller is who signed the request (zero when authentication failed).
	Caller Caller
	// Region is the region the server serves.
	Region string
	// Operation is the AWS operation name, set once the protocol has decoded it (for logs).
	Operation string
}

// Context returns the request's context.
func (r *Request) Context() context.Context { return r.HTTP.Context() }

// NewRequestID returns a new request id in AWS's format (a random UUID).
func NewRequestID() string { return uuid.NewString() }

// RequestIDHeader is the response header that carries the request id.
const RequestIDHeader = "X-Amzn-Requestid"
