// Package sigv4 verifies AWS Signature Version 4 signed requests the way AWS
// services do, and presigns URLs that it will itself accept.
//
// A request is signed either with an Authorization header
//
//	Authorization: AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/lambda/aws4_request,
//	    SignedHeaders=host;x-amz-date, Signature=<64 hex digits>
//
// plus an X-Amz-Date (or Date) header, or with presigned query parameters
// (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
// X-Amz-SignedHeaders, X-Amz-Signature). ParseScope reads the credential
// scope of either form without verifying anything, so that a server can route
// the request to the service it is addressed to; Verifier.Verify checks it.
//
// Canonicalization follows the rules for every AWS service except S3: the
// canonical URI is the path as sent on the wire, URI-encoded once more (the
// SDKs double-encode); a path the client normalized (dot segments and empty
// segments removed, as botocore does) is accepted too.
package sigv4

import "net/http"

const (
	algorithm       = "AWS4-HMAC-SHA256"
	scopeTerminator = "aws4_request"
	timeFormat      = "20060102T150405Z"
	dayFormat       = "20060102"
	unsignedPayload = "UNSIGNED-PAYLOAD"

	// maxExpires is the longest X-Amz-Expires AWS accepts: a week, in seconds.
	maxExpires = 7 * 24 * 60 * 60
)

// Scope is the credential scope of a request:
// AKID/yyyymmdd/region/service/aws4_request.
type Scope struct {
	AccessKeyID string
	Date        string // yyyymmdd
	Region      string
	Service     string
}

// String returns the credential as it appears in a request:
// AKID/yyyymmdd/region/service/aws4_request.
func (s Scope) String() string {
	return s.AccessKeyID + "/" + s.credentialScope()
}

// credentialScope is the scope without the access key id, as it appears in
// the string to sign.
func (s Scope) credentialScope() string {
	return s.Date + "/" + s.Region + "/" + s.Service + "/" + scopeTerminator
}

// ParseScope finds the scope of a signed request without verifying it, from
// the Authorization header or the presigned query parameters. It is meant
// for routing a request to a service before verification. Missing or
// malformed authentication is reported as an *Error.
func ParseScope(r *http.Request) (Scope, error) {
	s, err := parseSignature(r)
	if err != nil {
		return Scope{}, err
	}
	return s.scope, nil
}
