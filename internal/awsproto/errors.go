package awsproto

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/nubis/nubis/internal/errdefs"
	"github.com/nubis/nubis/internal/sigv4"
)

// Error is an AWS API error: the code and message the client sees, and the HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
	// Fields are further members of the error shape that JSON protocols render in the body
	// (such as Lambda's Reason on TooManyRequestsException).
	Fields map[string]string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sender reports whether the error is the client's fault (a 4xx).
func (e *Error) Sender() bool { return e.Status < 500 }

// Flavor selects the error codes and statuses a protocol family uses for the generic error kinds.
type Flavor int

const (
	// FlavorEC2 is EC2's Query dialect.
	FlavorEC2 Flavor = iota
	// FlavorQuery is the awsQuery protocol (STS, IAM, ...).
	FlavorQuery
	// FlavorRESTJSON is REST-JSON (Lambda, API Gateway).
	FlavorRESTJSON
	// FlavorJSON is JSON 1.1 with X-Amz-Target (CloudWatch Logs).
	FlavorJSON
)

// internalMessage is what clients see of an unexpected server-side failure; the cause is logged.
const internalMessage = "We encountered an internal error. Please try again."

// ToError maps any error to the AWS error the flavour's clients expect. Errors that are neither an
// *Error nor of a known kind become a 500 internal error; ok is false for those so the caller logs them.
func ToError(err error, f Flavor) (apiErr *Error, ok bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	var se *sigv4.Error
	if errors.As(err, &se) {
		return authError(se, f), true
	}
	var pe *ParamError
	if errors.As(err, &pe) {
		return paramError(pe, f), true
	}
	json := f == FlavorRESTJSON || f == FlavorJSON
	pick := func(status int, query, jsonCode string) *Error {
		code := query
		if json {
			code = jsonCode
		}
		return &Error{Status: status, Code: code, Message: err.Error()}
	}
	switch {
	case errors.Is(err, errdefs.ErrInvalidArgument):
		if f == FlavorQuery {
			return pick(400, "ValidationError", ""), true
		}
		return pick(400, "InvalidParameterValue", "ValidationException"), true
	case errors.Is(err, errdefs.ErrNotFound):
		if json {
			return pick(404, "", "ResourceNotFoundException"), true
		}
		return pick(400, "InvalidParameterValue", ""), true
	case errors.Is(err, errdefs.ErrAlreadyExists), errors.Is(err, errdefs.ErrConflict):
		if json {
			return pick(409, "", "ResourceConflictException"), true
		}
		return pick(400, "IncorrectState", ""), true
	case errors.Is(err, errdefs.ErrUnavailable), errors.Is(err, context.Canceled):
		return &Error{Status: 503, Code: "ServiceUnavailable", Message: "The service is unavailable. Please try again shortly."}, true
	}
	code := map[Flavor]string{FlavorEC2: "InternalError", FlavorQuery: "InternalFailure",
		FlavorRESTJSON: "ServiceException", FlavorJSON: "ServiceUnavailableException"}[f]
	return &Error{Status: http.StatusInternalServerError, Code: code, Message: internalMessage}, false
}

// authError maps a signature verification failure to the code, status and message the SDKs of the
// flavour expect. EC2 answers most failures with AuthFailure (401); awsQuery services with
// InvalidClientTokenId / SignatureDoesNotMatch (403); JSON services with *Exception codes, 403 for
// REST-JSON and 400 for JSON 1.1.
func authError(e *sigv4.Error, f Flavor) *Error {
	msg := e.Message
	switch f {
	case FlavorEC2:
		switch e.Kind {
		case sigv4.MissingAuth:
			return &Error{Status: 401, Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials: " + msg}
		case sigv4.Incomplete, sigv4.UnsupportedAlgorithm:
			return &Error{Status: 400, Code: "IncompleteSignature", Message: msg}
		case sigv4.Expired:
			return &Error{Status: 400, Code: "RequestExpired", Message: "Request has expired. " + msg}
		case sigv4.UnknownKey, sigv4.Mismatch, sigv4.WrongRegion, sigv4.BadContentHash:
			return &Error{Status: 401, Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials: " + msg}
		}
	case FlavorQuery:
		switch e.Kind {
		case sigv4.MissingAuth:
			return &Error{Status: 403, Code: "MissingAuthenticationToken", Message: msg}
		case sigv4.Incomplete, sigv4.UnsupportedAlgorithm:
			return &Error{Status: 400, Code: "IncompleteSignature", Message: msg}
		case sigv4.UnknownKey:
			return &Error{Status: 403, Code: "InvalidClientTokenId", Message: msg}
		case sigv4.Mismatch, sigv4.Expired, sigv4.WrongRegion, sigv4.BadContentHash:
			return &Error{Status: 403, Code: "SignatureDoesNotMatch", Message: msg}
		}
	case FlavorRESTJSON, FlavorJSON:
		status := 403
		if f == FlavorJSON {
			status = 400
		}
		switch e.Kind {
		case sigv4.MissingAuth:
			return &Error{Status: status, Code: "MissingAuthenticationTokenException", Message: msg}
		case sigv4.Incomplete, sigv4.UnsupportedAlgorithm:
			return &Error{Status: status, Code: "IncompleteSignatureException", Message: msg}
		case sigv4.UnknownKey:
			return &Error{Status: status, Code: "UnrecognizedClientException", Message: msg}
		case sigv4.Mismatch, sigv4.Expired, sigv4.WrongRegion, sigv4.BadContentHash:
			return &Error{Status: status, Code: "InvalidSignatureException", Message: msg}
		}
	}
	return &Error{Status: 403, Code: "AccessDenied", Message: msg}
}

// paramError maps a request-decoding failure.
func paramError(e *ParamError, f Flavor) *Error {
	switch f {
	case FlavorEC2:
		if e.Unknown {
			return &Error{Status: 400, Code: "UnknownParameter", Message: e.Error()}
		}
		return &Error{Status: 400, Code: "InvalidParameterValue", Message: e.Error()}
	case FlavorQuery:
		return &Error{Status: 400, Code: "ValidationError", Message: e.Error()}
	case FlavorJSON:
		return &Error{Status: 400, Code: "SerializationException", Message: e.Error()}
	default:
		return &Error{Status: 400, Code: "ValidationException", Message: e.Error()}
	}
}
