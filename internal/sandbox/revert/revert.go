// Package revert is an Incus-style revert stack for multi-step host setup: each step that
// succeeds pushes its undo, and unless the whole sequence succeeds the undos run in reverse order.
//
//	r := revert.New()
//	defer r.Fail()
//	... create something; r.Add(func() { remove it })
//	r.Success()
//
// It lives under internal/sandbox because the sandbox, netns and image packages share it; it has
// no dependency on them and can move to internal/revert unchanged.
package revert

// Reverter collects undo functions. It is not safe for concurrent use.
type Reverter struct {
	undo []func()
}

// New returns an empty Reverter.
func New() *Reverter { return &Reverter{} }

// Add pushes an undo function, to run on Fail before those added earlier.
func (r *Reverter) Add(f func()) { r.undo = append(r.undo, f) }

// Fail runs the undo functions in reverse order, unless Success was called first. It is meant
// to be deferred right after New.
func (r *Reverter) Fail() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
	r.undo = nil
}

// Success forgets the undo functions: the setup is kept.
func (r *Reverter) Success() { r.undo = nil }

// Clone returns a Reverter holding the same undo functions, for handing the undo of a finished
// setup to its owner (for example a Close method) after calling Success on the original.
func (r *Reverter) Clone() *Reverter {
	return &Reverter{undo: append([]func(){}, r.undo...)}
}
