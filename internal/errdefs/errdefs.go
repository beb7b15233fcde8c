// Package errdefs defines the kinds of error that nubis components return to each other.
//
// Components wrap one of these sentinels with %w; the API edge (package awsproto) maps a kind to the
// AWS error code and HTTP status of the protocol it speaks, once. Service-specific AWS codes
// (such as InvalidKeyPair.NotFound) are carried by awsproto.Error instead.
package errdefs

import "errors"

var (
	// ErrNotFound means the thing asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a thing with the same identity exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument means the caller's input is not acceptable.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrConflict means the request conflicts with the current state (a failed precondition).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable means the component cannot serve now (closed, shutting down, overloaded).
	ErrUnavailable = errors.New("unavailable")
)
