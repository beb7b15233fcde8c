package sigv4

import "fmt"

// Kind classifies why a request failed verification. AWS services report
// the same failure under different codes (IncompleteSignatureException,
// SignatureDoesNotMatch, ...); callers map a Kind to their service's code and
// HTTP status and use Error.Message as the message.
type Kind int

const (
	// MissingAuth: the request carries neither an Authorization header nor
	// presigned query parameters.
	MissingAuth Kind = iota + 1
	// Incomplete: the signature is malformed or lacks a required part (a
	// parameter, the date, a valid credential scope, host among the signed
	// headers, a valid X-Amz-Expires).
	Incomplete
	// UnsupportedAlgorithm: the request is signed with an algorithm other
	// than AWS4-HMAC-SHA256 (for example SigV4a).
	UnsupportedAlgorithm
	// UnknownKey: the access key id is not known. The error wraps the
	// KeyLookup error, so errors.Is(err, ErrUnknownKey) holds.
	UnknownKey
	// WrongRegion: the credential scope names a region other than the
	// verifier's.
	WrongRegion
	// Expired: the signing time is further from now than the allowed clock
	// skew (in the past or in the future), or a presigned URL is past its
	// X-Amz-Expires.
	Expired
	// BadContentHash: the x-amz-content-sha256 header is neither
	// UNSIGNED-PAYLOAD nor the SHA-256 of the body.
	BadContentHash
	// Mismatch: the signature is not the one computed for the request.
	Mismatch
)

var kindNames = [...]string{
	MissingAuth:          "MissingAuth",
	Incomplete:           "Incomplete",
	UnsupportedAlgorithm: "UnsupportedAlgorithm",
	UnknownKey:           "UnknownKey",
	WrongRegion:          "WrongRegion",
	Expired:              "Expired",
	BadContentHash:       "BadContentHash",
	Mismatch:             "Mismatch",
}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Messages worded as AWS words them.
const (
	msgMissingAuth    = "Missing Authentication Token"
	msgUnknownKey     = "The security token included in the request is invalid."
	msgWrongRegion    = "Credential should be scoped to a valid region."
	msgBadContentHash = "The provided 'x-amz-content-sha256' header does not match what was computed."
	msgMismatch       = "The request signature we calculated does not match the signature you provided. " +
		"Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	msgRequestExpired = "Request has expired"
	msgHostNotSigned  = "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
)

// Error is a verification failure. Message reads like the message AWS
// returns in the same case.
type Error struct {
	Kind    Kind
	Message string

	cause error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the error that caused e, if any (the KeyLookup error of an
// UnknownKey failure).
func (e *Error) Unwrap() error { return e.cause }

func newError(kind Kind, format string, args ...any) *Error {
	if len(args) == 0 {
		return &Error{Kind: kind, Message: format}
	}
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}
