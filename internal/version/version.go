// Package version holds the version of nubis, set at build time with
// -ldflags "-X github.com/nubis/nubis/internal/version.Version=...".
package version

// Version is the nubis release, or "dev" for an untagged build.
var Version = "dev"
