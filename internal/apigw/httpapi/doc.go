// Package httpapi is the protocol-level heart of the data plane of API Gateway HTTP APIs, with no
// I/O of its own: it selects the route of a request (Router), builds the event a Lambda proxy
// integration receives in payload format 1.0 or 2.0 (Event), maps the function's result back to
// an HTTP response the way API Gateway does (MapResponse), and answers CORS the way an API with a
// CORS configuration does (CORSPreflight, CORSHeaders, ApplyCORS).
//
// The behaviour follows AWS's documentation ("Create AWS Lambda proxy integrations for HTTP APIs",
// "Create routes for HTTP APIs", "Configure CORS for HTTP APIs") and, where the documentation is
// silent, events and responses captured from real HTTP APIs:
//
//   - The request path API Gateway works with is percent-decoded, except that "%25" stays as it
//     is; rawPath (2.0), path (1.0) and the routing all use that form. For a named stage the
//     path in the event still starts with "/{stage}"; routes are matched without it.
//   - A request body is passed as text only for text/*, application/json, application/xml and
//     application/javascript; any other body (including one without a Content-Type, and
//     application/x-www-form-urlencoded) is base64-encoded with isBase64Encoded true.
//   - A response without a Content-Type gets "text/plain; charset=utf-8", except the inferred
//     2.0 response (a result without statusCode), which is application/json.
//
// Everything here is safe for concurrent use; a Router is immutable once built.
package httpapi
