package ec2

import (
	"github.com/nubis/nubis/internal/glob"
)

// Filter is one EC2 request filter: Filter.N.Name and Filter.N.Value.M.
type Filter struct {
	Name   string   `query:"Name"`
	Values []string `query:"Value"`
}

// checkFilters rejects a filter whose name known does not accept, as EC2 does.
func checkFilters(filters []Filter, known func(name string) bool) error {
	for _, f := range filters {
		if f.Name == "" {
			return missingParameter("Filter.Name")
		}
		if !known(f.Name) {
			return clientError("InvalidParameterValue", "The filter '%s' is invalid", f.Name)
		}
	}
	return nil
}

// matchFilters reports whether a resource passes all filters: every filter must match, and a filter
// matches when any of its values matches. field returns the resource's values for a filter name.
func matchFilters(filters []Filter, field func(name string) []string) bool {
	for _, f := range filters {
		if !matchAnyField(f.Values, field(f.Name)) {
			return false
		}
	}
	return true
}

func matchAnyField(patterns, values []string) bool {
	for _, p := range patterns {
		for _, v := range values {
			if glob.Match(p, v) {
				return true
			}
		}
	}
	return false
}

// requested is the ids a Describe call names (none: every resource): which to show, and which it
// did not find, for the NotFound error EC2 gives.
type requested struct {
	ids   []string
	found map[string]bool
}

func request(ids []string) *requested {
	return &requested{ids: ids, found: make(map[string]bool, len(ids))}
}

// shows tells whether the resource id is to be shown, and notes it as found.
func (q *requested) shows(id string) bool {
	if len(q.ids) == 0 {
		return true
	}
	for _, x := range q.ids {
		if x == id {
			q.found[id] = true
			return true
		}
	}
	return false
}

// notFound is notFoundErr of the first id named that no resource had, or nil.
func (q *requested) notFound(notFoundErr func(id string) error) error {
	for _, id := range q.ids {
		if !q.found[id] {
			return notFoundErr(id)
		}
	}
	return nil
}
